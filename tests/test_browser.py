"""The studio in a real browser: Chromium driven by Playwright against a live server and a real
worker. One flow, start to finish: log in, pick files (and see them checked), make a draft job,
watch its card finish without a reload, play the video, and see the polling stop."""

from __future__ import annotations

import base64
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from jobs.models import AvatarJob
from tests.helpers import (
    ARGS,
    BROWSER,
    CHROMIUM,
    CSP_LISTENER,
    csp_violations,
    make_audio_file,
    playwright_session,
    watch_errors,
)

POLL_PATH = "/jobs/cards/"

pytestmark = BROWSER


@pytest.fixture
def shots() -> Path:
    """Screenshots outlive the test (their paths are printed), so not pytest's tmp_path."""
    return Path(tempfile.mkdtemp(prefix="studio-shots-"))


def dropped(page, path: Path, content_type: str):  # noqa: ANN001, ANN201
    """A DataTransfer holding one file, as the browser makes for a drag and drop."""
    return page.evaluate_handle(
        """([name, b64, type]) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, {type}));
            return dt;
        }""",
        [path.name, base64.b64encode(path.read_bytes()).decode(), content_type],
    )


def test_a_draft_job_from_upload_to_playing_video(
    live_server, worker, owner, portrait_path, tmp_path, shots, monkeypatch
):
    # Hold the worker back until the queued card is on screen, so the test sees it change.
    # (Killed, not stopped: it holds no task yet, and a graceful stop takes seconds.)
    worker.kill()
    voice = make_audio_file(tmp_path / "hello.mp3", 3.0)
    not_audio = tmp_path / "notes.mp3"
    not_audio.write_text("these are my notes, not a recording")

    with playwright_session(monkeypatch) as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        polls: list[float] = []
        page.on("request", lambda r: POLL_PATH in r.url and polls.append(time.monotonic()))
        checks: list[str] = []
        page.on("request", lambda r: "/jobs/new/check/" in r.url and checks.append(r.url))
        errors: list[str] = []  # script errors, CSP violations, failed loads
        watch_errors(page, errors)
        page.add_init_script(CSP_LISTENER)
        violations: list[str] = []  # collected on each page before leaving it

        # Log in through the form.
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("#id_username", "alice")
        page.fill("#id_password", "alice-pass-1")
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/")
        assert page.locator("text=Make your first talking avatar").is_visible()

        # Each file is checked the moment it is chosen.
        violations += csp_violations(page)
        page.goto(f"{live_server.url}/jobs/new/")
        page.set_input_files("#id_portrait", str(portrait_path))
        preview = page.locator("#field-portrait .preview")
        preview.wait_for()
        assert "480×600 px" in preview.inner_text()
        # Dropping a file on the zone goes through the same check (the same bytes: same file).
        with page.expect_response(lambda r: "/jobs/new/check/portrait/" in r.url):
            page.dispatch_event(
                "#field-portrait [data-dropzone]",
                "drop",
                {"dataTransfer": dropped(page, portrait_path, "image/jpeg")},
            )
        page.wait_for_function("() => !document.querySelector('#field-portrait.htmx-request')")
        assert "480×600 px" in page.locator("#field-portrait .preview").inner_text()
        assert [url.rsplit("/", 2)[-2] for url in checks] == ["portrait", "portrait"]
        page.set_input_files("#id_audio", str(not_audio))
        problem = page.locator("#field-audio .errors")
        problem.wait_for()
        assert "not" in problem.inner_text().lower()  # explained next to the field
        page.set_input_files("#id_audio", str(voice))
        page.locator("#field-audio .preview audio").wait_for()
        assert "0:03" in page.locator("#field-audio .preview").inner_text()
        assert page.locator("#field-audio .errors").count() == 0
        page.fill("#id_prompt", "Smile, then nod")
        assert page.locator("#prompt-count").inner_text() == "15 / 2,500"

        # Submit: the new card is on top of the dashboard, queued, and the page polls.
        violations += csp_violations(page)
        page.click("button:has-text('Create job')")
        page.wait_for_url(re.compile(r"/\?new="))
        job = AvatarJob.objects.get()
        card = page.locator(f"#job-{job.code}")
        assert page.locator("article.card").first.get_attribute("id") == f"job-{job.code}"
        assert "is-queued" in card.get_attribute("class")
        page.evaluate(
            """code => {
                window.__sameDocument = true;  // survives only if the page never reloads
                const status = () => {
                    const card = document.getElementById('job-' + code);
                    const found = card && card.className.split(' ').find(
                        c => c.startsWith('is-') && c !== 'is-new');
                    return found && found.slice(3);
                };
                window.__seen = [status()];
                new MutationObserver(() => {
                    const now = status();
                    const last = window.__seen[window.__seen.length - 1];
                    if (now && last !== now) window.__seen.push(now);
                }).observe(document.body, {childList: true, subtree: true, attributes: true});
            }""",
            str(job.code),
        )
        worker.start()
        page.wait_for_selector(f"#job-{job.code}.is-succeeded", timeout=90_000)
        done_at = time.monotonic()
        assert page.evaluate("window.__sameDocument") is True
        seen = page.evaluate("window.__seen")
        assert seen[0] == "queued" and seen[-1] == "succeeded", seen
        assert polls, "the dashboard never polled"
        assert card.locator(".length").inner_text() == "0:03"

        # Polling stops by itself: nothing on the page is running any more.
        page.wait_for_timeout(7_000)
        assert [t for t in polls if t > done_at + 0.5] == []
        assert page.locator("#poller[data-live]").count() == 0
        page.screenshot(path=str(shots / "dashboard.png"), full_page=True)

        # The job page plays the video.
        violations += csp_violations(page)
        card.locator(".title a").click()
        page.wait_for_url(f"{live_server.url}/jobs/{job.code}/")
        video = page.locator("video.player")
        video.evaluate("v => { v.muted = true; return v.play(); }")
        page.wait_for_function(
            "() => { const v = document.querySelector('video.player');"
            " return v.readyState >= 2 && v.currentTime > 0.3; }",
            timeout=15_000,
        )
        assert video.evaluate("v => v.duration") == pytest.approx(3.0, abs=0.3)
        assert page.locator("a:has-text('Download MP4')").get_attribute("download").endswith(".mp4")
        page.screenshot(path=str(shots / "job.png"), full_page=True)

        # Share it: the link is shown once, with a Copy button, and listed as live.
        page.select_option("#share-expires", "7")
        page.check("#share-download")
        page.click("button:has-text('Create share link')")
        link_field = page.locator("#new-share-url")
        link_field.wait_for()
        share_url = link_field.input_value()
        assert re.fullmatch(rf"{re.escape(live_server.url)}/s/[\w-]{{32,}}/", share_url)
        assert page.locator("button[data-copy='new-share-url']").is_visible()
        assert "Live" in page.locator("#share .share-links").inner_text()
        page.screenshot(path=str(shots / "share.png"), full_page=True)
        violations += csp_violations(page)

        # The team pages render under the same CSP.
        for label in ("Team", "Usage", "API tokens"):
            page.click(f"header nav a:has-text('{label}')")
            page.wait_for_load_state()
            assert page.locator("h1").is_visible()
            violations += csp_violations(page)

        # A stranger with the link: a fresh, logged-out browser context plays the video.
        stranger = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
        stranger.add_init_script(CSP_LISTENER)
        shared = stranger.new_page()
        watch_errors(shared, errors)
        response = shared.goto(share_url)
        assert response.status == 200
        assert response.headers["referrer-policy"] == "no-referrer"
        assert shared.locator("text=Log in").count() + shared.locator("#id_password").count() == 0
        player = shared.locator("video")
        player.evaluate("v => { v.muted = true; return v.play(); }")
        shared.wait_for_function(
            "() => { const v = document.querySelector('video');"
            " return v.readyState >= 2 && v.currentTime > 0.3; }",
            timeout=15_000,
        )
        shared.screenshot(path=str(shots / "shared.png"), full_page=True)
        violations += csp_violations(shared)
        stranger.close()
        browser.close()
    worker.kill()  # the job is done; nothing to wait for

    assert violations == []
    assert [e for e in errors if "Content Security Policy" in e] == []
    assert errors == []
    print(f"\nscreenshots: {shots}")


def teardown_module() -> None:
    # Keep only the last run's screenshots around (each run makes a new directory).
    tmp = Path(tempfile.gettempdir())
    runs = sorted(tmp.glob("studio-shots-*"), key=lambda p: p.stat().st_mtime)
    for old in runs[:-1]:
        shutil.rmtree(old, ignore_errors=True)
