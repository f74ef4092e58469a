"""Accessibility in a real Chromium: the pages the persona journeys do not reach (the error
pages 400, 403, 404, 405, 413, 500 and a refused CSRF check, jobs in every status, a failed
job, dead share links, library, usage, API docs and tokens) pass axe-core's WCAG 2.1 A and AA
rules at a laptop and a phone size; one person does a whole job with the keyboard alone, always
seeing where the focus is; and with reduced motion asked for, nothing on the page moves."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.template.loader import render_to_string
from django.utils import timezone

from jobs.models import Asset, AvatarJob, ShareLink
from jobs.services.api_tokens import api_token_create
from jobs.services.sharing import share_create, share_revoke
from tests.helpers import (
    ARGS,
    BROWSER,
    CHROMIUM,
    CSP_LISTENER,
    SIZES,
    axe_violations,
    csp_violations,
    finish,
    new_job,
    playwright_session,
)

pytestmark = BROWSER

TIMEOUT_MS = 90_000  # a draft render on a busy 2-core machine


def log_in(page: Any, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_navigation(url=f"{base}/"):
        page.click("main button[type=submit]")


def error_page(code: int) -> Any:
    """A route handler answering with the error page Django would render."""
    html = render_to_string(f"{code}.html")
    return lambda route: route.fulfill(status=code, body=html, content_type="text/html")


@pytest.mark.parametrize("size", list(SIZES), ids=list(SIZES))
def test_pages_beyond_the_journeys_pass_axe(  # noqa: PLR0915 - one list of pages
    size, live_server, owner, viewer, team, portrait, audio, done, failed, queued, monkeypatch, axe
):
    base = live_server.url
    now = timezone.now()
    for status, mode in (("processing", "std"), ("submitting", "pro"), ("canceled", "draft")):
        new_job(team, owner, portrait, audio, status=status, mode=mode, processing_at=now)
    _, live_token = share_create(job=done, by=owner)
    revoked, revoked_token = share_create(job=done, by=owner, allow_download=True)
    share_revoke(link=revoked)
    expired, expired_token = share_create(job=done, by=owner, expires_at=now + timedelta(days=1))
    ShareLink.objects.filter(pk=expired.pk).update(expires_at=now - timedelta(hours=1))
    api_token_create(user=owner, team=team, name="CI")
    problems: list[str] = []

    def check(page: Any, path: str | None = None) -> None:
        if path is not None:
            page.goto(base + path)
        page.wait_for_load_state()
        problems.extend(csp_violations(page))
        problems.extend(axe_violations(page, axe))

    with playwright_session(monkeypatch) as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)

        def context() -> Any:
            ctx = browser.new_context(viewport=SIZES[size])
            ctx.add_init_script(CSP_LISTENER)
            return ctx.new_page()

        # Nobody signed in: the door, dead links, a refused CSRF check, 404, 400 and 500.
        anonymous = context()
        for path in (
            "/accounts/login/",
            "/accounts/password_reset/",
            "/accounts/signup/",
            "/invites/not-a-real-invite/",
            f"/s/{live_token}/",
            f"/s/{revoked_token}/",
            f"/s/{expired_token}/",
            "/no-such-page/",
        ):
            check(anonymous, path)
        anonymous.goto(f"{base}/accounts/login/")
        stale = "e => { e.value = 'x'.repeat(64); }"  # a form from before the token changed
        anonymous.eval_on_selector("main [name=csrfmiddlewaretoken]", stale)
        anonymous.fill("#id_username", "alice")
        anonymous.fill("#id_password", "alice-pass-1")
        with anonymous.expect_navigation():
            anonymous.click("main button[type=submit]")
        assert anonymous.locator("h1").count() == 1
        check(anonymous)
        # 400, 413 and 500 are not provoked from a browser page: their pages, served as is.
        for code in (400, 413, 500):
            anonymous.route(f"{base}/__{code}/", error_page(code))
            check(anonymous, f"/__{code}/")

        # The owner: every studio page, jobs in every status.
        studio = context()
        log_in(studio, base, "alice", "alice-pass-1")
        check(studio)
        for path in (
            "/?status=failed",
            f"/jobs/{done.code}/",
            f"/jobs/{failed.code}/",
            f"/jobs/{queued.code}/",
            f"/jobs/{done.code}/delete/",
            "/jobs/new/",
            "/voiceovers/new/",
            "/library/",
            f"/teams/{team.code}/",
            f"/teams/{team.code}/usage/",
            f"/teams/{team.code}/settings/",
            "/teams/new/",
            "/api/docs/",
            "/api/tokens/",
            "/accounts/password_change/",
            f"/jobs/{done.code}/cancel/",  # a GET of a POST-only address: the 405 page
        ):
            check(studio, path)

        # A viewer is refused the new-job page and a job's deletion (403).
        watcher = context()
        log_in(watcher, base, "vera", "vera-pass-1")
        check(watcher, "/jobs/new/")
        check(watcher, f"/jobs/{done.code}/delete/")
        assert "Not allowed" in watcher.title()
        browser.close()

    assert problems == [], "\n".join(problems)


FOCUS_SHOWN = """() => {
    // The focused element, or the box drawn around it (a tile around its radio, a card around
    // its link), has a visible outline.
    for (let el = document.activeElement, i = 0; el && i < 4; el = el.parentElement, i++) {
        const style = getComputedStyle(el);
        if (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2) return true;
    }
    return false;
}"""
DESCRIBE_FOCUS = """() => {
    const el = document.activeElement;
    return el ? el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
        + (el.getAttribute('name') ? '[name=' + el.getAttribute('name') + ']' : '')
        + ' ' + (el.textContent || el.value || '').trim().slice(0, 40) : 'nothing';
}"""


def tab_to(page: Any, selector: str, *, limit: int = 80, back: bool = False) -> None:
    """Press Tab until the focus is on `selector`, checking the focus ring at every stop."""
    for _ in range(limit):
        page.keyboard.press("Shift+Tab" if back else "Tab")
        if page.evaluate("document.activeElement === document.body"):
            continue  # the focus entering the page, or leaving the browser's chrome
        where = page.evaluate(DESCRIBE_FOCUS)
        assert page.evaluate(FOCUS_SHOWN), f"no visible focus on {where} ({page.url})"
        if page.evaluate("s => document.activeElement?.matches(s) || false", selector):
            return
    raise AssertionError(f"{selector} never took the focus ({page.url})")


def test_a_job_made_shared_and_revoked_with_the_keyboard_alone(
    live_server, worker, owner, team, portrait, audio, monkeypatch, axe
):
    base = live_server.url
    # A voice-over from a written script: its video gets captions.
    Asset.objects.filter(pk=audio.pk).update(script="Hello from Acme. Captions follow the voice.")
    with playwright_session(monkeypatch) as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(viewport=SIZES["desktop"])
        context.add_init_script(CSP_LISTENER)
        page = context.new_page()
        page.goto(f"{base}/accounts/login/")
        tab_to(page, "#id_username")
        page.keyboard.type("alice")
        tab_to(page, "#id_password")
        page.keyboard.type("alice-pass-1")
        with page.expect_navigation(url=f"{base}/"):
            page.keyboard.press("Enter")

        tab_to(page, "a.nav-new")
        with page.expect_navigation(url=re.compile(r"/jobs/new/")):
            page.keyboard.press("Enter")
        # The library's files are radio tiles: Tab into a group, Space picks one.
        tab_to(page, f"#field-portrait input[value='{portrait.code}']")
        page.keyboard.press("Space")
        page.locator("#field-portrait .preview").wait_for()
        tab_to(page, f"#field-audio input[value='{audio.code}']")
        page.keyboard.press("Space")
        page.locator("#field-audio .preview").wait_for()
        tab_to(page, "input[name=mode]")
        while not page.evaluate("document.activeElement.value === 'draft'"):
            page.keyboard.press("ArrowDown")
        tab_to(page, "#id_name")
        page.keyboard.type("Keyboard only")
        tab_to(page, "#new-job .actions button[type=submit]")
        with page.expect_navigation(url=re.compile(r"/\?new=")):
            page.keyboard.press("Enter")
        job = AvatarJob.objects.get(name="Keyboard only")
        page.wait_for_selector(f"#job-{job.code}.is-succeeded", timeout=TIMEOUT_MS)

        tab_to(page, f"#open-{job.code}")
        with page.expect_navigation(url=re.compile(rf"/jobs/{job.code}/")):
            page.keyboard.press("Enter")
        page.wait_for_function(  # the captions loaded under the page's CSP
            "() => document.querySelector('video.player track')?.track.cues?.length === 2"
        )
        tab_to(page, "#share button[type=submit]")
        page.keyboard.press("Enter")
        page.locator("#new-share-url").wait_for()
        assert ShareLink.objects.filter(job=job, revoked_at__isnull=True).count() == 1
        tab_to(page, "#share .share-links button")
        page.keyboard.press("Enter")
        page.locator("#share .share-links .badge:text('Revoked')").wait_for()
        assert ShareLink.objects.get(job=job).revoked_at is not None
        problems = csp_violations(page) + axe_violations(page, axe)
        browser.close()
    assert problems == [], "\n".join(problems)


MOTION = """() => [...document.querySelectorAll(
        '.pulse, .shimmer, .steps li.current, .card, .button, button, progress')]
    .map(el => [el, getComputedStyle(el)])
    .filter(([el, s]) => s.animationName !== 'none'
        || s.transitionDuration.split(',').some(d => parseFloat(d) > 0))
    .map(([el, s]) => el.tagName.toLowerCase() + '.' + el.className + ': '
        + s.animationName + ' ' + s.transitionDuration)"""


def test_reduced_motion_stops_every_animation(
    live_server, owner, team, portrait, audio, monkeypatch
):
    new_job(team, owner, portrait, audio, status="processing", processing_at=timezone.now())
    finish(new_job(team, owner, portrait, audio))
    with playwright_session(monkeypatch) as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        moving: dict[str, list[str]] = {}
        for motion in ("no-preference", "reduce"):
            page = browser.new_context(viewport=SIZES["desktop"], reduced_motion=motion).new_page()
            log_in(page, live_server.url, "alice", "alice-pass-1")
            page.locator(".card.is-processing .pulse").wait_for()
            moving[motion] = page.evaluate(MOTION)
        browser.close()
    assert moving["no-preference"], "nothing animates: the check would prove nothing"
    assert moving["reduce"] == []
