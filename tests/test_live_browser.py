"""The studio in a real browser, beyond the main flow (tests/test_browser.py): the dashboard
stays live (with nothing running it keeps a slow heartbeat that brings in jobs made elsewhere,
and a hidden tab makes no polls at all until it shows again), and pages fit a phone."""

from __future__ import annotations

import time

from tests.helpers import (
    ARGS,
    BROWSER,
    CHROMIUM,
    CSP_LISTENER,
    csp_violations,
    new_job,
    playwright_session,
    watch_errors,
)

POLL_PATH = "/jobs/cards/"
HEARTBEAT = 2  # seconds, instead of the 20 s of a real dashboard

pytestmark = BROWSER

# Makes the page believe its tab is hidden (or shown again), as switching tabs would.
SET_VISIBILITY = """(state) => {
    Object.defineProperty(document, "visibilityState", {value: state, configurable: true});
    Object.defineProperty(document, "hidden", {value: state === "hidden", configurable: true});
    document.dispatchEvent(new Event("visibilitychange"));
}"""


def log_in(page, live_server) -> None:  # noqa: ANN001
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "alice-pass-1")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def test_an_idle_dashboard_shows_a_job_made_elsewhere_and_a_hidden_one_does_not_poll(
    live_server, transactional_db, settings, owner, team, portrait, audio, monkeypatch
):
    settings.DASHBOARD_IDLE_POLL_SECONDS = HEARTBEAT
    with playwright_session(monkeypatch) as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        polls: list[float] = []
        page.on("request", lambda r: POLL_PATH in r.url and polls.append(time.monotonic()))
        errors: list[str] = []
        watch_errors(page, errors)
        page.add_init_script(CSP_LISTENER)

        log_in(page, live_server)
        assert page.locator("text=Make your first talking avatar").is_visible()

        # Nothing runs, yet the page keeps asking, slowly.
        page.wait_for_timeout(HEARTBEAT * 1000 * 2 + 500)
        assert 1 <= len(polls) <= 3, polls

        # A job made elsewhere (the API and teammates go through the same service) shows up
        # within one heartbeat, without a reload.
        made = new_job(team, owner, portrait, audio)
        page.locator(f"#job-{made.code}").wait_for(timeout=(HEARTBEAT + 2) * 1000)
        assert page.locator("#empty-state").count() == 0

        # Hidden: no polls, even though a job now runs (the fast poll) and time passes.
        page.evaluate(SET_VISIBILITY, "hidden")
        hidden_at = time.monotonic()
        page.wait_for_timeout(HEARTBEAT * 1000 * 2 + 500)
        assert [t for t in polls if t > hidden_at + 0.2] == []

        # Shown again: it asks at once, not a heartbeat later.
        shown_at = time.monotonic()
        with page.expect_request(lambda r: POLL_PATH in r.url, timeout=1000):
            page.evaluate(SET_VISIBILITY, "visible")
        assert polls[-1] - shown_at < 1

        assert csp_violations(page) == []
        assert errors == []
        browser.close()


PHONE = {"width": 390, "height": 844}


def test_the_api_docs_fit_a_phone_with_styled_code_blocks(
    live_server, transactional_db, owner, team, monkeypatch
):
    with playwright_session(monkeypatch) as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport=PHONE)
        errors: list[str] = []
        watch_errors(page, errors)
        page.add_init_script(CSP_LISTENER)
        log_in(page, live_server)
        page.goto(f"{live_server.url}/api/docs/")
        # No sideways scrolling of the page: long commands scroll inside their own box.
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        blocks = page.locator("pre")
        assert blocks.count() > 3
        for i in range(blocks.count()):
            box = blocks.nth(i).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
            assert blocks.nth(i).evaluate("e => getComputedStyle(e).overflowX") == "auto"
        # Styled: a box of its own, not bare monospace text on the page.
        style = blocks.first.evaluate(
            "e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).paddingLeft]"
        )
        assert style[0] not in ("rgba(0, 0, 0, 0)", "transparent") and style[1] != "0px"
        assert csp_violations(page) == [] and errors == []
        browser.close()


def test_number_inputs_look_like_the_other_inputs(
    live_server, transactional_db, owner, team, monkeypatch
):
    with playwright_session(monkeypatch) as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        log_in(page, live_server)
        page.goto(f"{live_server.url}/teams/{team.code}/")
        look = (
            "e => { const s = getComputedStyle(e);"
            " return [s.borderRadius, s.paddingLeft, s.borderTopColor, s.fontSize]; }"
        )
        number = page.locator("input[type=number]").first.evaluate(look)
        text = page.locator("input[type=text], input[type=search]").first.evaluate(look)
        assert number == text
        browser.close()
