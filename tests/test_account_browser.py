"""A person with no email address, in Chromium: the new-job page says why "Email me" is off and
links to the account page; they add an address there with their password and come back to a
box they can tick. At a desktop and a phone size, with the journeys' checks on every page."""

from __future__ import annotations

import re

import pytest

from tests.helpers import ARGS, BROWSER, CHROMIUM, SIZES, playwright_session
from tests.test_journeys import Persona

pytestmark = [*BROWSER, pytest.mark.slow]


@pytest.mark.parametrize("size", list(SIZES), ids=list(SIZES))
def test_a_member_adds_an_email_address_to_get_job_mail(size, live_server, owner, monkeypatch, axe):
    owner.email = ""
    owner.save()
    problems: list[str] = []
    with playwright_session(monkeypatch) as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        alice = Persona.open(browser, "member", live_server.url, SIZES[size], problems, axe)
        alice.log_in("alice", "alice-pass-1")
        alice.goto("/jobs/new/")
        assert alice.page.locator("#id_notify_by_email").is_disabled()
        alice.click(
            "a:has-text('Add an email address to your account')",
            wait_url=re.compile("/accounts/profile/$"),
        )
        alice.page.fill("#id_email", "alice@studio.example")
        alice.page.fill("#id_password", "not my password")
        alice.click(
            "button:has-text('Save email address')", wait_url=re.compile("/accounts/profile/$")
        )
        assert "That is not your password" in alice.page.locator("main").inner_text()
        alice.page.fill("#id_password", "alice-pass-1")
        alice.click(
            "button:has-text('Save email address')", wait_url=re.compile("/accounts/profile/$")
        )
        assert "Your email address is now alice@studio.example." in alice.page.inner_text(
            ".messages"
        )
        alice.goto("/jobs/new/")
        box = alice.page.locator("#id_notify_by_email")
        assert box.is_enabled()
        box.check()
        assert "One email to alice@studio.example" in alice.page.inner_text("#notify-help")
        # The header's Account link is there at both sizes.
        alice.click("header a:has-text('Account')", wait_url=re.compile("/accounts/profile/$"))
        browser.close()
    owner.refresh_from_db()
    assert owner.email == "alice@studio.example"
    assert problems == []
