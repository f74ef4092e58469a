"""Shared fixtures: a temporary media root, three personas, small valid media files, a team's
inputs and jobs (queued, done, failed), and a real django-q2 worker process for the tests that
need one. The plain helpers they use are in tests/helpers.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.utils import timezone

from jobs import cards
from jobs.media.audio import ValidAudio, validate_audio
from jobs.media.portraits import ValidPortrait, validate_portrait
from jobs.models import Asset, AvatarJob, Membership, Team
from jobs.services.assets import asset_store
from tests.helpers import (
    Worker,
    axe_source,
    finish,
    make_audio_file,
    make_portrait_bytes,
    new_job,
    subprocess_env,
)
from tests.s3server import S3Server, s3_server


@pytest.fixture(scope="session")
def axe() -> str:
    """axe-core's source for the browser tests' accessibility checks (tests/helpers.py)."""
    source = axe_source()
    if source is None:
        pytest.skip("no axe-core: `npm install axe-core@4` failed (no npm, or no registry)")
    return source


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


@pytest.fixture(autouse=True)
def fresh_reset_limits() -> Iterator[None]:
    """Password-reset counts start at zero in every test. The database cache starts empty with
    each test database; Redis outlives tests (and holds the broker), so only these keys go."""
    from django.core.cache import cache

    client = getattr(cache, "_cache", None)
    if client is not None and hasattr(client, "get_client"):
        redis = client.get_client(write=True)
        for key in redis.scan_iter(match="*pwreset:*"):
            redis.delete(key)
    yield


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


@pytest.fixture
def portrait_path(tmp_path: Path) -> Path:
    path = tmp_path / "face.jpg"
    path.write_bytes(make_portrait_bytes())
    return path


@pytest.fixture
def audio_path(tmp_path: Path) -> Path:
    return make_audio_file(tmp_path / "voice.mp3", 3.0)


# --- a team's inputs and jobs, made without the renderer ---------------------------------


@pytest.fixture
def fast(settings):
    """Estimates are cached per process: each test starts without them. Passwords are hashed
    the quick way: the personas' accounts are made for every test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cards._estimates.clear()
    yield
    cards._estimates.clear()


@pytest.fixture(scope="session")
def checked(tmp_path_factory) -> tuple[ValidPortrait, ValidAudio]:
    """The two input files, validated once for the whole run (ffmpeg is the slow part)."""
    folder = tmp_path_factory.mktemp("inputs")
    (folder / "face.jpg").write_bytes(make_portrait_bytes())
    audio = make_audio_file(folder / "voice.mp3", 3.0)
    return validate_portrait(folder / "face.jpg"), validate_audio(audio)


@pytest.fixture
def portrait(team, owner, checked) -> Asset:
    return asset_store(team=team, user=owner, valid=checked[0])


@pytest.fixture
def audio(team, owner, checked) -> Asset:
    return asset_store(team=team, user=owner, valid=checked[1])


@pytest.fixture
def queued(team, owner, portrait, audio) -> AvatarJob:
    return new_job(team, owner, portrait, audio, prompt="wave hello")


@pytest.fixture
def done(team, owner, portrait, audio) -> AvatarJob:
    return finish(new_job(team, owner, portrait, audio, prompt="a finished one"))


@pytest.fixture
def failed(team, owner, portrait, audio) -> AvatarJob:
    return new_job(
        team,
        owner,
        portrait,
        audio,
        status=AvatarJob.Status.FAILED,
        error_code="render_failed",
        error_message="The voice-over has no sound in it.",
        finished_at=timezone.now(),
    )


# --- a real worker ------------------------------------------------------------------------


@pytest.fixture
def worker(transactional_db, media_root, tmp_path) -> Iterator[Worker]:
    """A running django-q2 cluster on this test's database (committed data only)."""
    w = Worker(subprocess_env(media_root), tmp_path / "worker.log").start()
    yield w
    w.stop()


# --- object storage -------------------------------------------------------------------------


@pytest.fixture
def s3(settings) -> Iterator[S3Server]:
    """This test's files go to a bucket on a real S3 API on loopback (moto's server)."""
    for server in s3_server():
        settings.STORAGES = {**settings.STORAGES, "default": server.storage()}
        yield server
