"""The new-job form with real uploads, and a rendered job's video served in byte ranges. The
rest of the studio pages are in tests/test_studio.py; who may open or change what is checked in
tests/test_isolation.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from jobs import tasks
from jobs.media.audio import validate_audio
from jobs.media.portraits import validate_portrait
from jobs.models import Asset, AvatarJob
from jobs.services.assets import asset_store
from jobs.services.jobs import job_create
from tests.helpers import login

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(team, owner, portrait_path, audio_path) -> AvatarJob:
    job = job_create(
        team=team,
        user=owner,
        portrait=asset_store(team=team, user=owner, valid=validate_portrait(portrait_path)),
        audio=asset_store(team=team, user=owner, valid=validate_audio(audio_path)),
    )
    tasks.advance_job(job.pk)
    job.refresh_from_db()
    return job


def upload(name: str, path: Path, content_type: str = "application/octet-stream"):
    return SimpleUploadedFile(name, path.read_bytes(), content_type=content_type)


def test_new_job_from_uploads(client, owner, team, portrait_path, audio_path):
    response = login(client, owner).post(
        reverse("jobs:job-new"),
        {
            "portrait": upload("Me at work.jpg", portrait_path, "image/jpeg"),
            "audio": upload("hello.mp3", audio_path, "audio/mpeg"),
            "prompt": "wave",
            "mode": "draft",
        },
    )
    job = AvatarJob.objects.get()
    # The new card waits at the top of the dashboard.
    assert response.status_code == 302 and response["Location"] == f"/?new={job.code}"
    assert (job.team, job.created_by, job.mode, job.prompt, job.status) == (
        team,
        owner,
        "draft",
        "wave",
        AvatarJob.Status.QUEUED,
    )
    assert job.portrait.name == "Me at work.jpg" and job.audio.duration == pytest.approx(3, abs=0.1)


def test_new_job_reuses_library_files(client, owner, team, portrait_path, audio_path):
    login(client, owner)
    for _ in range(2):
        client.post(
            reverse("jobs:job-new"),
            {
                "portrait": upload("a.jpg", portrait_path),
                "audio": upload("a.mp3", audio_path),
                "mode": "draft",
            },
        )
    assert AvatarJob.objects.count() == 2
    assert Asset.objects.count() == 2  # the same two files, stored once


def test_bad_upload_is_explained_next_to_the_field_and_is_not_stored(
    client, owner, audio_path, media_root
):
    response = login(client, owner).post(
        reverse("jobs:job-new"),
        {
            "portrait": SimpleUploadedFile("face.jpg", b"<html><body>hi</body></html>"),
            "audio": upload("a.mp3", audio_path),
            "mode": "draft",
        },
    )
    assert response.status_code == 200
    form = response.context["form"]
    assert form.errors["portrait"] and "not a JPEG or PNG" in form.errors["portrait"][0]
    assert "not a JPEG or PNG" in response.content.decode()
    assert AvatarJob.objects.count() == 0
    # The refused portrait is stored nowhere; the good voice-over is kept in the library and
    # comes back picked, so it need not be chosen again.
    assert list(Asset.objects.values_list("kind", flat=True)) == ["audio"]
    assert [p.parent.name for p in media_root.rglob("*") if p.is_file()] == ["audio"]
    audio = Asset.objects.get()
    assert f'value="{audio.code}" id="pick-{audio.code}" checked' in response.content.decode()


def test_missing_files_are_asked_for(client, owner):
    response = login(client, owner).post(reverse("jobs:job-new"), {"mode": "draft"})
    errors = response.context["form"].errors
    assert "Choose a portrait" in errors["portrait"][0]
    assert "Choose a voice-over" in errors["audio"][0]


def test_kling_modes_are_refused_without_a_key(client, owner, portrait_path, audio_path, settings):
    settings.KLING_API_KEY = settings.KLING_ACCESS_KEY = settings.KLING_SECRET_KEY = ""
    response = login(client, owner).post(
        reverse("jobs:job-new"),
        {
            "portrait": upload("a.jpg", portrait_path),
            "audio": upload("a.mp3", audio_path),
            "mode": "pro",
        },
    )
    assert "pro needs a Kling key" in response.context["form"].errors["mode"][0]
    assert AvatarJob.objects.count() == 0


def test_videos_are_served_with_byte_ranges(client, owner, job):
    url = reverse("jobs:job-video", args=[job.code])
    size = job.video.size
    login(client, owner)
    whole = client.get(url)
    assert whole.status_code == 200 and whole["Accept-Ranges"] == "bytes"
    body = b"".join(whole.streaming_content)
    assert len(body) == size and body[4:8] == b"ftyp"
    part = client.get(url, HTTP_RANGE="bytes=100-199")
    assert part.status_code == 206 and part["Content-Range"] == f"bytes 100-199/{size}"
    assert b"".join(part.streaming_content) == body[100:200]
    tail = client.get(url, HTTP_RANGE="bytes=-10")
    assert b"".join(tail.streaming_content) == body[-10:]
    assert client.get(url, HTTP_RANGE=f"bytes={size}-").status_code == 416
    download = client.get(url + "?download=1")
    assert download["Content-Disposition"].startswith("attachment; filename=")
    assert download["X-Content-Type-Options"] == "nosniff"
