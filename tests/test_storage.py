"""Object storage (STORAGE_URL): every file in the bucket, none in MEDIA_ROOT, and files served by
short-lived presigned redirects only after the access gate. Against a real S3 API on loopback
(moto's server, tests/s3server.py), fetched with `requests` like a browser would."""

from __future__ import annotations

import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from avatarsite.s3 import storage_origins
from jobs.links import video_url
from jobs.models import AvatarJob
from jobs.services.api_tokens import api_token_create, api_token_revoke
from jobs.services.jobs import job_advance
from jobs.services.sharing import share_create, share_revoke
from tests.helpers import finish, login, new_job
from tests.s3server import BUCKET

pytestmark = pytest.mark.django_db


def upload(name: str, path: Path, content_type: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, path.read_bytes(), content_type=content_type)


def stored_bytes(s3, name: str) -> bytes:
    return s3.client().get_object(Bucket=BUCKET, Key=f"media/{name}")["Body"].read()


def follow(response, **headers: str) -> requests.Response:
    """The presigned redirect, fetched from the bucket like a browser follows it."""
    assert response.status_code == 302, response
    assert response["Cache-Control"] == "private, no-store"
    location = response["Location"]
    assert "X-Amz-Signature=" in location
    assert parse_qs(urlsplit(location).query)["X-Amz-Expires"] == ["300"]
    return requests.get(location, headers=headers, timeout=10)


def files_in(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_draft_job_from_upload_to_result_lives_in_the_bucket(
    client,
    owner,
    s3,
    media_root,
    portrait_path,
    audio_path,
):
    login(client, owner)
    response = client.post(
        reverse("jobs:job-new"),
        {
            "portrait": upload("Me.jpg", portrait_path, "image/jpeg"),
            "audio": upload("hello.mp3", audio_path, "audio/mpeg"),
            "mode": "draft",
        },
    )
    assert response.status_code == 302
    job = AvatarJob.objects.get()
    job_advance(job_id=job.pk)  # the draft renders here, ffmpeg on a per-job temp folder
    job.refresh_from_db()
    assert job.status == AvatarJob.Status.SUCCEEDED, job.error_message

    keys = s3.object_keys()
    for name in (job.portrait.file.name, job.audio.file.name, job.video.name, job.poster.name):
        assert f"media/{name}" in keys
    assert files_in(media_root) == []  # nothing went to the local disk
    assert list(Path(tempfile.gettempdir()).glob(f"draft-{job.code}-*")) == []

    video = stored_bytes(s3, job.video.name)
    assert video[4:8] == b"ftyp" and job.video_size == len(video)
    whole = follow(client.get(reverse("jobs:job-video", args=[job.code])))
    assert whole.status_code == 200 and whole.content == video
    assert whole.headers["Content-Type"] == "video/mp4"
    part = follow(client.get(reverse("jobs:job-video", args=[job.code])), Range="bytes=100-1099")
    assert part.status_code == 206 and part.content == video[100:1100]
    assert part.headers["Content-Range"] == f"bytes 100-1099/{len(video)}"
    download = follow(client.get(reverse("jobs:job-video", args=[job.code]) + "?download=1"))
    assert download.headers["Content-Disposition"].startswith("attachment; filename=")
    assert download.content == video
    head = client.head(reverse("jobs:job-video", args=[job.code]))
    assert head.status_code == 302

    poster = follow(client.get(reverse("jobs:job-poster", args=[job.code])))
    assert poster.content == stored_bytes(s3, job.poster.name)
    assert poster.headers["Content-Type"] == "image/jpeg"
    portrait = follow(client.get(reverse("jobs:asset-file", args=[job.portrait.code])))
    assert portrait.content == portrait_path.read_bytes()

    thumb = follow(client.get(reverse("jobs:asset-thumb", args=[job.portrait.code])))
    assert thumb.headers["Content-Type"] == "image/jpeg" and thumb.content[:2] == b"\xff\xd8"
    assert any(key.startswith("media/thumbs/") for key in s3.object_keys())
    again = follow(client.get(reverse("jobs:asset-thumb", args=[job.portrait.code])))
    assert again.content == thumb.content  # made once, then served from the bucket
    assert len([k for k in s3.object_keys() if k.startswith("media/thumbs/")]) == 1
    assert files_in(media_root) == []


def test_outsiders_get_no_redirect(client, outsider, viewer, team, owner, portrait, audio, s3):
    job = finish(new_job(team, owner, portrait, audio))
    login(client, outsider)
    for url in (
        reverse("jobs:job-video", args=[job.code]),
        reverse("jobs:job-poster", args=[job.code]),
        reverse("jobs:asset-thumb", args=[portrait.code]),
        reverse("jobs:asset-file", args=[portrait.code]),
    ):
        assert client.get(url).status_code == 404, url
    client.logout()
    assert client.get(reverse("jobs:job-video", args=[job.code])).status_code == 302
    assert "/accounts/login/" in client.get(reverse("jobs:job-video", args=[job.code]))["Location"]
    login(client, viewer)  # team members may watch
    assert follow(client.get(reverse("jobs:job-video", args=[job.code]))).status_code == 200


def test_share_link_redirects_after_the_gate_and_refuses_without_it(
    client,
    team,
    owner,
    portrait,
    audio,
    s3,
):
    job = finish(new_job(team, owner, portrait, audio, name="Spring launch"))
    video = stored_bytes(s3, job.video.name)
    link, token = share_create(job=job, by=owner)
    page = client.get(reverse("share-page", args=[token]))
    assert page.status_code == 200  # the page itself is ours, with the same URLs as before
    fetched = follow(client.get(reverse("share-video", args=[token])))
    assert fetched.content == video
    ranged = follow(client.get(reverse("share-video", args=[token])), Range="bytes=4-11")
    assert ranged.status_code == 206 and ranged.content == video[4:12]
    poster = follow(client.get(reverse("share-poster", args=[token])))
    assert poster.content == stored_bytes(s3, job.poster.name)
    # Downloads were not allowed for this link; unknown and revoked links get nothing.
    assert client.get(reverse("share-video", args=[token]) + "?download=1").status_code == 404
    assert client.get(reverse("share-video", args=["not-a-token"])).status_code == 404
    share_revoke(link=link)
    assert client.get(reverse("share-video", args=[token])).status_code == 404
    assert client.get(reverse("share-poster", args=[token])).status_code == 404

    _, download_token = share_create(job=job, by=owner, allow_download=True)
    saved = follow(client.get(reverse("share-video", args=[download_token]) + "?download=1"))
    assert saved.headers["Content-Disposition"] == 'attachment; filename="spring-launch.mp4"'


def test_api_video_link_redirects_while_its_token_lives(
    client,
    team,
    owner,
    portrait,
    audio,
    s3,
):
    job = finish(new_job(team, owner, portrait, audio))
    token, _ = api_token_create(user=owner, team=team)
    url = video_url(job, token=token, base_url="")
    assert follow(client.get(url)).content == stored_bytes(s3, job.video.name)
    forged = url.replace("/video.mp4", "").rsplit("/", 1)[0] + "/1:abc:def/video.mp4"
    assert client.get(forged).status_code == 404
    api_token_revoke(token=token)
    refused = client.get(url)
    assert refused.status_code == 403 and refused.json()["code"] == 1103


def test_presigned_links_come_from_an_origin_the_pages_allow(
    client, team, owner, portrait, audio, s3
):
    job = finish(new_job(team, owner, portrait, audio))
    login(client, owner)
    location = client.get(reverse("jobs:job-video", args=[job.code]))["Location"]
    parts = urlsplit(location)
    origins = storage_origins(bucket=BUCKET, endpoint=s3.endpoint, region="", addressing="path")
    assert f"{parts.scheme}://{parts.netloc}" in origins


def test_local_storage_still_serves_ranges_itself(client, team, owner, portrait, audio):
    job = finish(new_job(team, owner, portrait, audio))
    login(client, owner)
    response = client.get(reverse("jobs:job-video", args=[job.code]), HTTP_RANGE="bytes=0-3")
    assert response.status_code == 206 and b"".join(response.streaming_content) == b"\0\0\0\x18"


def test_voice_samples_are_made_into_the_bucket_and_redirected(client, owner, s3, media_root):
    login(client, owner)
    response = client.get(reverse("jobs:voice-sample", args=["uk_man2"]) + "?offline=1")
    sample = follow(response)
    assert sample.headers["Content-Type"] == "audio/mpeg" and len(sample.content) > 1000
    assert sample.content == stored_bytes(s3, "voice-samples/espeak/uk_man2.mp3")
    assert files_in(media_root) == []


def test_a_kling_result_streams_into_the_bucket(s3, settings, team, owner, checked, media_root):
    """Kling's result is downloaded to the job's temp folder in chunks and uploaded from there
    (multipart), never held whole in memory; nothing stays on the local disk."""
    import time

    from django.utils import timezone

    from jobs.kling.simulator import KlingSimulator
    from jobs.services.assets import asset_store
    from jobs.services.jobs import job_create
    from tests.helpers import fast_config

    with KlingSimulator(fast_config(max_concurrency=5)) as sim:
        settings.KLING_BASE_URL, settings.KLING_API_KEY = sim.base_url, sim.config.api_key
        settings.KLING_ACCESS_KEY = settings.KLING_SECRET_KEY = ""
        settings.PUBLIC_BASE_URL = ""
        portrait = asset_store(team=team, user=owner, valid=checked[0])
        audio = asset_store(team=team, user=owner, valid=checked[1])
        job = job_create(team=team, user=owner, portrait=portrait, audio=audio, mode="std")
        deadline = time.monotonic() + 30
        while not job.is_terminal and time.monotonic() < deadline:
            AvatarJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
            job_advance(job_id=job.pk)
            job.refresh_from_db()
            time.sleep(0.05)
    assert job.status == AvatarJob.Status.SUCCEEDED, job.error_message
    video = stored_bytes(s3, job.video.name)
    assert video[4:8] == b"ftyp" and len(video) == job.video_size
    assert stored_bytes(s3, job.poster.name)[:3] == b"\xff\xd8\xff"
    assert files_in(media_root) == []
    assert list(Path(tempfile.gettempdir()).glob(f"kling-{job.code}-*")) == []


def test_big_files_go_up_in_bounded_parts(s3):
    """A file over the multipart threshold is uploaded in 5 MiB parts, at most 3 read ahead
    (avatarsite/s3.py; bench/bigresult.py measures the memory), not boto3's 10 of 8 MiB."""
    from django.core.files.base import File
    from django.core.files.storage import default_storage

    from avatarsite.s3 import UPLOAD_PART_BYTES, UPLOAD_PARTS_IN_FLIGHT

    config = default_storage.transfer_config
    assert config.max_in_memory_upload_chunks * config.multipart_chunksize <= 16 * 2**20
    assert UPLOAD_PARTS_IN_FLIGHT * UPLOAD_PART_BYTES <= 16 * 2**20
    with tempfile.TemporaryFile() as fh:
        fh.write(b"\x01" * (2 * UPLOAD_PART_BYTES + 1000))
        fh.seek(0)
        name = default_storage.save("big.mp4", File(fh))
    head = s3.client().head_object(Bucket=BUCKET, Key=f"media/{name}")
    assert head["ContentLength"] == 2 * UPLOAD_PART_BYTES + 1000
    assert head["ETag"].strip('"').endswith("-3")  # a multipart upload of three parts


def test_download_all_streams_the_videos_from_the_bucket(
    client, s3, team, owner, portrait, audio, media_root, monkeypatch
):
    """A batch's ZIP reads each object as it arrives: django-storages' S3File, which downloads a
    whole object into memory first, is never opened (bench/batchzip.py --s3 measures it)."""
    import io
    import zipfile

    from storages.backends.s3 import S3File

    from jobs.models import Batch
    from jobs.serve import open_stored

    batch = Batch.objects.create(team=team, created_by=owner, name="In the bucket")
    jobs = [finish(new_job(team, owner, portrait, audio, name=f"Row {n}")) for n in (1, 2)]
    for row, job in enumerate(jobs, start=1):
        AvatarJob.objects.filter(pk=job.pk).update(batch=batch, batch_row=row)
    monkeypatch.setattr(S3File, "_get_file", lambda self: pytest.fail("S3File downloaded"))
    login(client, owner)
    response = client.get(reverse("jobs:batch-videos", args=[batch.code]))
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert archive.namelist() == ["001-row-1.mp4", "002-row-2.mp4"]
    assert archive.read("002-row-2.mp4") == stored_bytes(s3, jobs[1].video.name)
    assert files_in(media_root) == []
    with open_stored(jobs[0].video) as body:
        assert body.read(4) == stored_bytes(s3, jobs[0].video.name)[:4]
