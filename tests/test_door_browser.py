"""The way into a team in a real browser: the owner makes an invite link, a newcomer opens it in
a fresh browser, signs up and lands in the team. Chromium posts every form (CSRF with its real
Origin and referrer policy); no script error, CSP violation or failed request; nothing is wider
than the screen on a laptop or a phone."""

from __future__ import annotations

import pytest

from jobs.models import Membership, Team
from tests.helpers import (
    ARGS,
    BROWSER,
    CHROMIUM,
    CSP_LISTENER,
    Aborts,
    axe_violations,
    csp_violations,
    playwright_session,
    watch_errors,
)

pytestmark = BROWSER

SIZES = [(1366, 900), (390, 844)]
OVERFLOW = "() => document.documentElement.scrollWidth <= window.innerWidth"


def watch(page, errors: list[str]) -> Aborts:  # noqa: ANN001
    """Script errors and CSP reports (watch_errors), plus requests that failed or got 4xx/5xx."""
    watch_errors(page, errors)
    aborts = Aborts(page)
    page.on(
        "requestfailed",
        lambda r: aborts.failed(r) or errors.append(f"failed: {r.url} {r.failure}"),
    )
    page.on(
        "response",
        lambda r: (
            r.status >= 400
            and not r.url.endswith("/favicon.ico")
            and errors.append(f"{r.status}: {r.url}")
        ),
    )
    return aborts


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_a_newcomer_joins_a_team_by_invite_link(
    live_server, owner, width, height, monkeypatch, axe
):
    studio = Team.objects.create(name="Studio North")
    Membership.objects.create(user=owner, team=studio, role=Membership.Role.ADMIN)
    errors: list[str] = []
    violations: list[str] = []
    wide: list[str] = []
    inaccessible: list[str] = []
    tabs: dict[object, Aborts] = {}

    def check(page) -> None:  # noqa: ANN001
        page.wait_for_load_state()
        errors.extend(tabs[page].faults())
        violations.extend(csp_violations(page))
        if not page.evaluate(OVERFLOW):
            wide.append(page.url)
        inaccessible.extend(axe_violations(page, axe))

    with playwright_session(monkeypatch) as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        viewport = {"width": width, "height": height}

        # The owner logs in and makes an invite link on the team page.
        context = browser.new_context(viewport=viewport)
        context.add_init_script(CSP_LISTENER)
        page = context.new_page()
        tabs[page] = watch(page, errors)
        page.goto(f"{live_server.url}/accounts/login/")
        check(page)
        page.fill("#id_username", "alice")
        page.fill("#id_password", "alice-pass-1")
        page.click("main button[type=submit]")
        page.wait_for_url(f"{live_server.url}/")
        page.goto(f"{live_server.url}/teams/{studio.code}/")
        check(page)
        page.select_option("#id_role", "member")
        page.click("button:has-text('Create invite link')")
        page.wait_for_url(f"{live_server.url}/teams/{studio.code}/")
        invite_url = page.locator("#new-invite-url").input_value()
        assert "/invites/" in invite_url
        check(page)
        page.reload()  # a GET again: no re-post, no 405; the link is not shown twice
        assert page.locator("h1").inner_text() == "Studio North"
        assert page.locator("#new-invite-url").count() == 0
        check(page)

        # A newcomer opens it in a fresh browser: the login page names the team.
        fresh = browser.new_context(viewport=viewport)
        fresh.add_init_script(CSP_LISTENER)
        newcomer = fresh.new_page()
        tabs[newcomer] = watch(newcomer, errors)
        newcomer.goto(invite_url)
        assert "Studio North invited you: log in or create an account" in newcomer.inner_text(
            ".invite-banner"
        )
        check(newcomer)
        newcomer.click("a:has-text('Create an account and join')")
        newcomer.wait_for_url("**/signup/")
        check(newcomer)
        newcomer.fill("#id_username", "nina")
        newcomer.fill("#id_email", "nina@example.com")
        newcomer.fill("#id_password1", "Quiet-harbour-2291")
        newcomer.fill("#id_password2", "Quiet-harbour-2291")
        newcomer.click("button:has-text('Create account and join')")
        newcomer.wait_for_url(f"{live_server.url}/teams/{studio.code}/")
        assert "Welcome to Studio North" in newcomer.inner_text(".messages")
        assert newcomer.locator("h1").inner_text() == "Studio North"
        assert "alice@example.com" not in newcomer.content()  # a member sees no emails
        check(newcomer)
        assert Membership.objects.get(team=studio, user__username="nina").role == "member"

        fresh.close()
        context.close()
        browser.close()

    assert violations == []
    assert errors == []
    assert wide == []
    assert inaccessible == [], "\n".join(inaccessible)
