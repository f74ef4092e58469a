"""Every persona's journey through the portal, in a real Chromium at a desktop and a phone size.

One test per screen size walks the whole story the way people meet it:

1. the owner creates a team, adds a viewer by name and makes an invite link;
2. a newcomer opens the invite, signs up and lands in the team;
3. the member makes a draft job from files and one from a written script and watches both
   finish live, while a second tab sees the new jobs arrive without a reload;
4. the viewer watches and downloads, and is refused every write;
5. the owner shares a result, an anonymous visitor plays it, the owner revokes it and the
   visitor is told plainly that the link no longer works;
6. someone who forgot their password resets it through the mail the studio prints.

Every page on the way is checked for console errors, CSP violations, failed requests and
horizontal overflow; a refusal the journey provokes on purpose is declared where it happens.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from jobs.models import AvatarJob, Membership, Team
from tests.helpers import (
    ARGS,
    BROWSER,
    CHROMIUM,
    CSP_LISTENER,
    SIZES,
    Aborts,
    axe_violations,
    make_audio_file,
    playwright_session,
)

pytestmark = [*BROWSER, pytest.mark.slow]

TIMEOUT_MS = 90_000  # a draft render on a busy 2-core machine

OVERFLOW = """() => {
    const root = document.documentElement;
    const over = root.scrollWidth - root.clientWidth;
    if (over <= 0) return null;
    const wide = [...document.querySelectorAll('body *')]
        .filter(e => e.getBoundingClientRect().right > root.clientWidth + 1)
        .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
             + (e.className && typeof e.className === 'string'
                ? '.' + e.className.trim().split(/\\s+/).join('.') : ''))
        .slice(0, 5);
    return over + ' px too wide: ' + wide.join(', ');
}"""


@dataclass
class Persona:
    """One person in their own browser context, with everything that went wrong on the way."""

    name: str
    base: str
    page: Any
    problems: list[str]
    allowed: list[tuple[str, int]] = field(default_factory=list)  # (path regex, status)
    aborts: list[Aborts] = field(default_factory=list)  # one per tab
    axe: str = ""  # axe-core's source: every page checked is checked against WCAG 2.1 AA

    @classmethod
    def open(
        cls, browser: Any, name: str, base: str, size: dict, problems: list[str], axe: str
    ) -> Persona:
        context = browser.new_context(viewport=size, accept_downloads=True)
        context.add_init_script(CSP_LISTENER)
        person = cls(name=name, base=base, page=context.new_page(), problems=problems, axe=axe)
        person.watch(person.page)
        return person

    def watch(self, page: Any) -> None:
        who = self.name
        page.on("pageerror", lambda e: self.problems.append(f"{who}: script error {e}"))
        page.on("console", self._console)
        self.aborts.append(Aborts(page))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        # The browser also logs each refused response; a refusal on purpose is not a fault.
        path = message.location.get("url", "").removeprefix(self.base)
        if "Failed to load resource" in message.text and self._expected(path):
            return
        self.problems.append(f"{self.name}: console {message.text} ({path})")

    def _expected(self, path: str, status: int | None = None) -> bool:
        return any(re.search(rx, path) and status in (None, st) for rx, st in self.allowed)

    def _failed(self, request: Any) -> None:
        # A video is loaded in ranges the player gives up as it pleases.
        if request.failure == "net::ERR_ABORTED" and request.resource_type == "media":
            return
        if any(tab.failed(request) for tab in self.aborts if request.frame.page == tab.page):
            return
        self.problems.append(f"{self.name}: {request.url} failed ({request.failure})")

    def _response(self, response: Any) -> None:
        if response.status < 400:
            return
        path = response.url.removeprefix(self.base)
        if self._expected(path, response.status):
            return
        self.problems.append(f"{self.name}: {response.status} from {path}")

    @contextlib.contextmanager
    def refused(self, path_rx: str, status: int) -> Iterator[None]:
        """A refusal the journey provokes on purpose: not counted as a failed request."""
        self.allowed.append((path_rx, status))
        try:
            yield
        finally:
            self.allowed.remove((path_rx, status))

    def goto(self, path: str) -> Any:
        response = self.page.goto(self.base + path)
        self.check()
        return response

    def check(self) -> None:
        """What every page must be: no CSP violation, nothing wider than the screen, no WCAG 2.1
        A/AA violation axe-core can find."""
        page = self.page
        page.wait_for_load_state()
        where = page.url.removeprefix(self.base)
        for violation in page.evaluate("window.__csp || []"):
            self.problems.append(f"{self.name}: CSP {violation}")
        page.evaluate("window.__csp = []")
        for tab in self.aborts:
            self.problems.extend(f"{self.name}: {fault}" for fault in tab.faults())
        overflow = page.evaluate(OVERFLOW)
        if overflow:
            self.problems.append(f"{self.name}: {where} is {overflow}")
        self.problems.extend(f"{self.name}: {v}" for v in axe_violations(page, self.axe))

    def click(self, selector: str, *, wait_url: str | re.Pattern[str] | None = None) -> None:
        if wait_url is None:
            self.page.click(selector)
        else:
            with self.page.expect_navigation(url=wait_url):
                self.page.click(selector)
        self.check()

    def log_in(self, username: str, password: str) -> None:
        self.goto("/accounts/login/")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", password)
        self.click("form button[type=submit]", wait_url=f"{self.base}/")

    def switch_team(self, name: str) -> None:
        """The team switcher in the header (a select that submits itself)."""
        with self.page.expect_navigation():
            self.page.select_option("#team-switch", label=name)
        self.check()

    def post_from_page(self, path: str) -> int:
        """A write the page itself does not offer, sent with the page's own CSRF token."""
        return self.page.evaluate(
            """async path => {
                const token = document.querySelector('[name=csrfmiddlewaretoken]')?.value
                    || document.cookie.match(/csrftoken=([^;]+)/)?.[1] || '';
                const r = await fetch(path, {method: 'POST', headers: {'X-CSRFToken': token}});
                return r.status;
            }""",
            path,
        )


def wait_for_card(page: Any, code: Any, status: str) -> None:
    page.wait_for_selector(f"#job-{code}.is-{status}", timeout=TIMEOUT_MS)


@pytest.fixture
def journey_files(tmp_path: Path, portrait_path: Path) -> dict[str, Path]:
    return {"portrait": portrait_path, "audio": make_audio_file(tmp_path / "welcome.mp3", 2.5)}


@pytest.mark.parametrize("size", list(SIZES), ids=list(SIZES))
def test_every_persona_journey(  # noqa: C901 - one story, told in order
    size, live_server, worker, owner, viewer, journey_files, monkeypatch, settings, capfd, axe
):
    base = live_server.url
    problems: list[str] = []
    # The viewer account exists, but only in the owner's personal team: the owner adds them.
    Membership.objects.filter(user=viewer).exclude(team__personal=True).delete()
    Membership.objects.filter(user=viewer, team__personal=True, role="viewer").delete()
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    settings.DASHBOARD_IDLE_POLL_SECONDS = 2

    with playwright_session(monkeypatch) as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        open_ = lambda name: Persona.open(browser, name, base, SIZES[size], problems, axe)  # noqa: E731

        # 1. The owner creates a team, adds the viewer and makes an invite link.
        alice = open_("owner")
        alice.log_in("alice", "alice-pass-1")
        alice.goto("/teams/new/")
        alice.page.fill("#id_name", "Acme Studio")
        alice.click("main form button[type=submit]", wait_url=re.compile(r"/teams/[0-9a-f-]+/$"))
        team = Team.objects.get(name="Acme Studio")
        team_path = f"/teams/{team.code}/"
        alice.page.fill("#id_login", "vera")
        alice.page.select_option("form[action$='/members/add/'] #id_role", "viewer")
        alice.click("button:has-text('Add to team')", wait_url=re.compile(team_path))
        assert Membership.objects.get(team=team, user=viewer).role == "viewer"
        alice.page.select_option("form[action$='/invites/new/'] select", "member")
        alice.click("button:has-text('Create invite link')", wait_url=re.compile(team_path))
        invite_url = alice.page.locator("#new-invite-url").input_value()
        assert invite_url.startswith(f"{base}/invites/")
        alice.page.reload()  # the page shown after making an invite survives a reload
        alice.check()
        assert alice.page.locator("h1").is_visible()

        # 2. A newcomer opens the invite, signs up and is in the team.
        nina = open_("newcomer")
        nina.page.goto(invite_url)
        nina.check()
        assert "Acme Studio" in nina.page.locator("main").inner_text()
        nina.click("a:has-text('Create an account')")
        nina.page.fill("#id_username", "nina")
        nina.page.fill("#id_email", "nina@example.com")
        nina.page.fill("#id_password1", "a long new password 42")
        nina.page.fill("#id_password2", "a long new password 42")
        nina.click("main form button[type=submit]", wait_url=re.compile(rf"{base}/.*"))
        assert Membership.objects.get(team=team, user__username="nina").role == "member"
        assert "Acme Studio" in nina.page.locator("#team-switch option[selected]").inner_text()

        # 3. The member makes a draft from files and one from a script, watching both finish;
        #    a second tab of the dashboard sees them arrive without a reload.
        second = nina.page.context.new_page()
        nina.watch(second)
        second.goto(f"{base}/")
        second.evaluate("window.__sameDocument = true")
        nina.goto("/jobs/new/")
        nina.page.set_input_files("#id_portrait", str(journey_files["portrait"]))
        nina.page.locator("#field-portrait .preview").wait_for()
        nina.page.set_input_files("#id_audio", str(journey_files["audio"]))
        nina.page.locator("#field-audio .preview audio").wait_for()
        nina.page.check("input[name=mode][value=draft]")
        nina.page.fill("#id_name", "Welcome for Acme")
        nina.page.fill("#id_prompt", "Smile and greet the viewer")
        nina.click("button:has-text('Create job')", wait_url=re.compile(r"/\?new="))
        first = AvatarJob.objects.get(name="Welcome for Acme")
        wait_for_card(nina.page, first.code, "succeeded")
        nina.check()

        nina.goto("/jobs/new/")
        nina.page.click(f"#field-portrait .tiles input[value='{first.portrait.code}']")
        nina.page.locator("#field-portrait .preview").wait_for()
        nina.page.check("input[name=mode][value=draft]")
        nina.page.click("#vo-writer summary")
        nina.page.fill("#vo-script", "Hello from Acme. This is our new studio.")
        nina.page.click("button:has-text('Make the voice-over')")
        nina.page.locator("#field-audio .preview audio").wait_for(timeout=TIMEOUT_MS)
        nina.check()
        nina.page.fill("#id_prompt", "Speak warmly")
        nina.click("button:has-text('Create job')", wait_url=re.compile(r"/\?new="))
        scripted = AvatarJob.objects.exclude(pk=first.pk).get(team=team)
        assert scripted.name.startswith("Speak warmly") or scripted.name.startswith("Hello")
        wait_for_card(nina.page, scripted.code, "succeeded")
        nina.check()
        for job in (first, scripted):
            wait_for_card(second, job.code, "succeeded")
        assert second.evaluate("window.__sameDocument") is True  # never reloaded
        card = nina.page.locator(f"#job-{first.code}")
        assert "Welcome for Acme" in card.locator(".title").inner_text()
        assert "Smile and greet the viewer" in card.inner_text()
        second.close()

        # 4. The viewer watches and downloads, and is refused writes.
        vera = open_("viewer")
        vera.log_in("vera", "vera-pass-1")
        vera.switch_team("Acme Studio")
        vera.goto(f"/jobs/{first.code}/")
        vera.page.locator("video.player").wait_for()
        assert vera.page.locator("a:has-text('Download MP4')").count() == 1
        for label in ("Cancel", "Retry", "Delete", "Rename", "Create share link"):
            assert vera.page.locator(f"main button:has-text('{label}')").count() == 0, label
        with vera.refused(r"^/jobs/new/$", 403):
            vera.goto("/jobs/new/")
        with vera.refused(rf"^/jobs/{first.code}/", 403):
            for action in ("delete", "share", "rename"):
                status = vera.post_from_page(f"/jobs/{first.code}/{action}/")
                assert status == 403, (action, status)
        assert AvatarJob.objects.filter(pk=first.pk).exists()

        # 5. The owner shares a result; a visitor plays it; the owner revokes it.
        alice.switch_team("Acme Studio")
        alice.goto(f"/jobs/{first.code}/")
        alice.click("button:has-text('Create share link')")
        share_url = alice.page.locator("#new-share-url").input_value()
        visitor = open_("visitor")
        visitor.page.goto(share_url)
        visitor.check()
        assert "Welcome for Acme" in visitor.page.title()
        assert "portrait" not in visitor.page.title().lower()
        player = visitor.page.locator("video")
        player.evaluate("v => { v.muted = true; return v.play(); }")
        visitor.page.wait_for_function(
            "() => { const v = document.querySelector('video');"
            " return v.readyState >= 2 && v.currentTime > 0.3; }",
            timeout=15_000,
        )
        alice.goto(f"/jobs/{first.code}/")
        alice.click("#share .share-links button:has-text('Revoke')")
        with visitor.refused(r"^/s/", 404), visitor.refused(r"^/s/", 410):
            response = visitor.page.goto(share_url)
            visitor.check()
        assert response.status in (404, 410)
        words = visitor.page.locator("main").inner_text()
        assert "no longer works" in words
        assert "team" not in words.lower() or "added" not in words.lower()

        # 6. Forgot password: the mail the studio prints holds a link that sets a new one.
        capfd.readouterr()
        forgetful = open_("forgetful")
        forgetful.goto("/accounts/login/")
        forgetful.click("a:has-text('Forgot password?')")
        forgetful.page.fill("#id_email", "vera@example.com")
        forgetful.click(
            "main form button[type=submit]", wait_url=re.compile("/password_reset/done/")
        )
        mail = capfd.readouterr().out
        link = re.search(r"https?://[^\s]+/accounts/reset/[^\s]+/", mail)
        assert link, mail[-2000:]
        forgetful.page.goto(link.group(0))
        forgetful.check()
        forgetful.page.fill("#id_new_password1", "another long password 77")
        forgetful.page.fill("#id_new_password2", "another long password 77")
        forgetful.click("main form button[type=submit]", wait_url=re.compile("/reset/done/"))
        forgetful.log_in("vera", "another long password 77")

        browser.close()

    assert problems == [], "\n".join(problems)
