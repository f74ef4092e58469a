"""Plain helpers shared by the test modules: logging in, small valid media, jobs made without
the renderer, the Kling simulator's fast config, a real worker process, and the browser tests'
Playwright set-up. Fixtures live in conftest.py; test modules import from here, never from one
another."""

from __future__ import annotations

import base64
import contextlib
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.files.base import ContentFile
from django.db import connection, connections
from django.utils import timezone
from PIL import Image, ImageDraw

from jobs.ffmpeg import run_ffmpeg
from jobs.kling.simulator import KlingSimulator, SimulatorConfig
from jobs.models import AvatarJob
from jobs.services.jobs import job_create

ROOT = Path(__file__).resolve().parent.parent
HTMX = {"HX-Request": "true"}


# --- logging in --------------------------------------------------------------------------


def login(client, user, team=None):
    client.force_login(user)
    if team is not None:  # work in that team rather than the personal one
        session = client.session
        session["team"] = str(team.code)
        session.save()
    return client


# --- small valid media -------------------------------------------------------------------


def make_portrait_bytes(size: tuple[int, int] = (480, 600), fmt: str = "JPEG") -> bytes:
    image = Image.new("RGB", size, (200, 170, 150))
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.ellipse((w * 0.25, h * 0.15, w * 0.75, h * 0.7), fill=(235, 200, 175))
    draw.ellipse((w * 0.38, h * 0.35, w * 0.45, h * 0.4), fill=(40, 40, 40))
    draw.ellipse((w * 0.55, h * 0.35, w * 0.62, h * 0.4), fill=(40, 40, 40))
    draw.arc((w * 0.4, h * 0.45, w * 0.6, h * 0.58), 20, 160, fill=(120, 40, 40), width=4)
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def make_audio_file(path: Path, seconds: float = 3.0, frequency: int = 220) -> Path:
    run_ffmpeg(
        [
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency={frequency}:duration={seconds}",
            str(path),
        ],
        timeout=30,
    )
    return path


# --- jobs without the renderer -----------------------------------------------------------


def new_job(team, user, portrait, audio, **fields) -> AvatarJob:
    job = job_create(
        team=team, user=user, portrait=portrait, audio=audio, prompt=fields.pop("prompt", "")
    )
    if fields:
        AvatarJob.objects.filter(pk=job.pk).update(**fields)
        job.refresh_from_db()
    return job


def finish(job: AvatarJob, seconds: float = 12.0) -> AvatarJob:
    """Mark a job done with a poster and a (stand-in) video, without running the renderer."""
    poster = io.BytesIO()
    Image.new("RGB", (64, 80), (90, 120, 200)).save(poster, "JPEG")
    job.poster.save(f"{job.code}.jpg", ContentFile(poster.getvalue()), save=False)
    job.video.save(f"{job.code}.mp4", ContentFile(b"\0\0\0\x18ftypmp42" + b"\0" * 64), save=False)
    now = timezone.now()
    job.status = AvatarJob.Status.SUCCEEDED
    job.processing_at = now - timedelta(seconds=seconds)
    job.finished_at = now
    job.duration = 3.0
    job.save()
    return job


# --- the Kling simulator, fast -----------------------------------------------------------


def jpeg(width: int = 400, height: int = 500, fmt: str = "JPEG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (210, 180, 160)).save(out, fmt)
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@cache
def _tiny_mp4() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "tiny.mp4"
        run_ffmpeg(
            [
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=64x64:rate=5:duration=1",
                "-f",
                "lavfi",
                "-i",
                "sine=duration=1",
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-shortest",
                str(out),
            ],
            timeout=60,
        )
        return out.read_bytes()


def tiny_video_factory(image: bytes, audio: bytes) -> bytes:
    """A real (1 s, 64 px) MP4 made once per test run: fast stand-in for the draft renderer."""
    return _tiny_mp4()


def fast_config(**changes: Any) -> SimulatorConfig:
    """Short timings and the tiny video, so a task finishes in about a quarter of a second."""
    options: dict[str, Any] = {
        "submitted_seconds": 0.05,
        "processing_seconds": 0.15,
        "video_factory": tiny_video_factory,
        "seed": 7,
    }
    options.update(changes)
    return SimulatorConfig(**options)


@contextlib.contextmanager
def simulated_kling(
    settings: Any, config: SimulatorConfig | None = None, *, http_timeout: float | None = None
) -> Iterator[KlingSimulator]:
    """The simulator on loopback, with the studio pointed at it (an API key, no callbacks)."""
    with KlingSimulator(config or fast_config()) as simulator:
        settings.KLING_BASE_URL = simulator.base_url
        settings.KLING_API_KEY = simulator.config.api_key
        settings.KLING_ACCESS_KEY = settings.KLING_SECRET_KEY = ""
        if http_timeout is not None:
            settings.KLING_HTTP_TIMEOUT = http_timeout
        settings.PUBLIC_BASE_URL = ""
        yield simulator


# --- a real worker -----------------------------------------------------------------------


def subprocess_env(media_root: Path, **extra: str) -> dict[str, str]:
    """Environment for a child process that must see this test's database and media."""
    db = connection.settings_dict
    env = dict(os.environ)
    if db["ENGINE"].endswith("sqlite3"):
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    else:
        env["DATABASE_URL"] = (
            f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}"
        )
    env["MEDIA_ROOT"] = str(media_root)
    env["DATA_DIR"] = str(django_settings.DATA_DIR)
    env["Q_CLUSTER_NAME"] = django_settings.Q_CLUSTER["name"]
    env.update(extra)
    return env


class Worker:
    """A `manage.py qcluster` child process, stopped (and killable) by its pid."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.callbacks_proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        self.proc = self._qcluster(self.env)
        # Callbacks out run on their own cluster, as run_studio runs it.
        callbacks = {
            "Q_CALLBACK_WORKERS": "1",
            **self.env,
            "Q_CLUSTER_NAME": django_settings.API_CALLBACK_CLUSTER,
        }
        self.callbacks_proc = self._qcluster(callbacks)
        return self

    def _qcluster(self, env: dict[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "qcluster"],
            env=env,
            cwd=ROOT,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the whole cluster (sentinel and its worker processes) like a crash would."""
        for proc in (self.proc, self.callbacks_proc):
            if proc and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Ask the clusters to stop (as Ctrl-C would), then make sure nothing is left."""
        procs = [p for p in (self.proc, self.callbacks_proc) if p is not None]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # any worker left behind
            proc.wait()


def wait_for(predicate, timeout: float = 60, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


# --- the browser tests (Playwright) ------------------------------------------------------


CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Every browser test: marked, and skipped with a word where Debian's Chromium is missing.
BROWSER = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no browser: {CHROMIUM} is missing (apt-get install chromium; .ci/run does)",
    ),
]
# The screen sizes the journeys are walked at: a laptop and a phone.
SIZES = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}

# Counts CSP violations in the page itself: injected by the driver, so the CSP does not apply.
CSP_LISTENER = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", e => {
    window.__csp.push(location.pathname + ": " + e.violatedDirective + " "
        + (e.blockedURI || "inline") + " " + (e.sourceFile || "") + ":" + e.lineNumber);
});
"""


def watch_errors(page, errors: list[str]) -> None:  # noqa: ANN001
    """Script errors, failed loads and CSP violations (console and event) go into `errors`."""
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and not favicon(m) and errors.append(m.text))


def favicon(message) -> bool:  # noqa: ANN001
    # The share page names no icon, so the browser asks for /favicon.ico on its own: not the
    # page's fault.
    return message.location.get("url", "").endswith("/favicon.ico")


class Aborts:
    """Loads the browser gave up (net::ERR_ABORTED), judged once it is known why.

    Chromium drops the favicon, a poster or a video still loading when the page moves on; that
    is the browser's choice, not a failed request. A form whose answer is a file (a download)
    ends its navigation the same way, by design. A load aborted while the page stayed where it
    was, with no download from it, is a fault. The abort is reported before the next page
    commits or the download starts, so the verdict waits until `faults()` is asked.
    """

    def __init__(self, page) -> None:  # noqa: ANN001
        self.page = page
        self.navigations = 0
        self.started: dict[Any, int] = {}
        self.aborted: list[tuple[str, int]] = []
        self.downloads: set[str] = set()
        page.on("request", lambda r: self.started.__setitem__(r, self.navigations))
        page.on("framenavigated", lambda f: f == page.main_frame and self._moved())
        page.on("download", lambda d: self.downloads.add(d.url))

    def _moved(self) -> None:
        self.navigations += 1

    def failed(self, request) -> bool:  # noqa: ANN001
        """True when the failure is an abort left for `faults()` to judge."""
        if request.failure != "net::ERR_ABORTED":
            return False
        self.aborted.append((request.url, self.started.pop(request, self.navigations)))
        return True

    def faults(self) -> list[str]:
        """Asked once the page has loaded: aborts of the page before it are forgiven."""
        faults = [
            url
            for url, seen in self.aborted
            if seen == self.navigations and url not in self.downloads
        ]
        self.aborted = []
        return [f"{url} failed (net::ERR_ABORTED while the page stayed)" for url in faults]


def csp_violations(page) -> list[str]:  # noqa: ANN001
    return page.evaluate("window.__csp || []")


@contextlib.contextmanager
def playwright_session(monkeypatch) -> Iterator[Any]:  # noqa: ANN001
    """Playwright's sync API, closing the database connections made while it ran.

    The sync API runs an event loop in this thread and the test's own code in a greenlet,
    whose context has database connections of its own: left open, they keep the PostgreSQL
    test database from being dropped at the end of the run.
    """
    playwright = pytest.importorskip("playwright.sync_api")
    # The ORM calls between browser steps are plain synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with playwright.sync_playwright() as p:
        try:
            yield p
        finally:
            connections.close_all()


# --- accessibility: axe-core in the page ---------------------------------------------------

AXE_DIR = ROOT / "var" / "npm"
AXE_FILE = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.1 A and AA, nothing else: best-practice rules are advice, not the bar.
AXE_RUN = """async () => {
    const result = await axe.run(document, {
        runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']},
        resultTypes: ['violations'],  // passes are not collected in detail: faster
    });
    return result.violations.map(v => v.id + ' (' + v.impact + '): '
        + v.nodes.slice(0, 4).map(n => n.target.join(' ')).join(', ')
        + (v.nodes.length > 4 ? ' and ' + (v.nodes.length - 4) + ' more' : ''));
}"""


@cache
def axe_source() -> str | None:
    """axe-core 4 from the npm registry, installed once into var/npm (never committed)."""
    if not AXE_FILE.exists():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                [
                    "npm",
                    "install",
                    "--prefix",
                    str(AXE_DIR),
                    "--no-save",
                    "--no-audit",
                    "--no-fund",
                    "axe-core@4",
                ],
                check=True,
                capture_output=True,
                timeout=180,
            )
    return AXE_FILE.read_text() if AXE_FILE.exists() else None


def axe_violations(page, source: str) -> list[str]:  # noqa: ANN001
    """WCAG 2.1 A/AA violations of the page as it is now: "rule (impact): element targets".

    The source is evaluated rather than added as a <script>: evaluate is the driver's own and not
    subject to the page's CSP, which stays strict (and its listener meaningful).
    """
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(f"() => {{ {source}\n }}")
    path = page.url.split("/", 3)[-1] if page.url.count("/") >= 3 else page.url
    return [f"/{path}: axe {line}" for line in page.evaluate(AXE_RUN)]
