"""Shared fixtures: a temporary media root, three personas, small valid media files, and a
real django-q2 worker process for the tests that need one."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from PIL import Image, ImageDraw

from jobs.ffmpeg import run_ffmpeg
from jobs.models import Membership, Team

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path: Path) -> Path:
    """Every test writes media into its own temporary directory."""
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = str(root)
    # Test accounts need no slow password hashing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Pages render without `collectstatic` having run.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    return root


# --- personas: the owner of a team, a teammate, a read-only viewer and an outsider ---------


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("alice", "alice@example.com", "alice-pass-1")


@pytest.fixture
def team(owner) -> Team:
    return Team.objects.get(memberships__user=owner, personal=True)


@pytest.fixture
def teammate(django_user_model, team):
    user = django_user_model.objects.create_user("bob", "bob@example.com", "bob-pass-1")
    Membership.objects.create(user=user, team=team, role=Membership.Role.MEMBER)
    return user


@pytest.fixture
def viewer(django_user_model, team):
    user = django_user_model.objects.create_user("vera", "vera@example.com", "vera-pass-1")
    Membership.objects.create(user=user, team=team, role=Membership.Role.VIEWER)
    return user


@pytest.fixture
def outsider(django_user_model):
    return django_user_model.objects.create_user("oscar", "oscar@example.com", "oscar-pass-1")


# --- small valid media ---------------------------------------------------------------------


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


@pytest.fixture
def portrait_path(tmp_path: Path) -> Path:
    path = tmp_path / "face.jpg"
    path.write_bytes(make_portrait_bytes())
    return path


@pytest.fixture
def audio_path(tmp_path: Path) -> Path:
    return make_audio_file(tmp_path / "voice.mp3", 3.0)


# --- a real worker ------------------------------------------------------------------------


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

    def start(self) -> Worker:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "qcluster"],
            env=self.env,
            cwd=ROOT,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """SIGKILL the whole cluster (sentinel and its worker processes) like a crash would."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        """Ask the cluster to stop (as Ctrl-C would), then make sure nothing is left."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        if self.proc:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # any worker left behind
            self.proc.wait()


@pytest.fixture
def worker(transactional_db, media_root, tmp_path) -> Iterator[Worker]:
    """A running django-q2 cluster on this test's database (committed data only)."""
    w = Worker(subprocess_env(media_root), tmp_path / "worker.log").start()
    yield w
    w.stop()


def wait_for(predicate, timeout: float = 60, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
