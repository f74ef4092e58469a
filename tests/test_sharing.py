"""Share links: a finished video for anyone with the link; revoked, expired or guessed
links answer 404; the page reveals nothing else."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from jobs import tasks
from jobs.media.audio import validate_audio
from jobs.media.portraits import validate_portrait
from jobs.models import AvatarJob, ShareLink, hash_token
from jobs.services.assets import asset_store
from jobs.services.jobs import job_create, job_notify
from jobs.services.sharing import share_create, share_revoke

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(team, owner, portrait_path, audio_path) -> AvatarJob:
    job = job_create(
        team=team,
        user=owner,
        portrait=asset_store(team=team, user=owner, valid=validate_portrait(portrait_path)),
        audio=asset_store(team=team, user=owner, valid=validate_audio(audio_path)),
        prompt="secret prompt",
        notify_by_email=True,
        name="Launch video",  # the share page's title: a name, never the prompt or photo's name
    )
    tasks.advance_job(job.pk)
    job.refresh_from_db()
    assert job.status == AvatarJob.Status.SUCCEEDED
    return job


def test_a_link_shows_the_video_to_anyone(client, job, owner):
    link, token = share_create(job=job, by=owner)
    assert len(token) >= 32 and link.token_hash == hash_token(token)
    response = client.get(f"/s/{token}/")
    page = response.content.decode()
    assert response.status_code == 200
    assert response["Referrer-Policy"] == "no-referrer"
    assert response["X-Robots-Tag"].startswith("noindex")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert f'<meta property="og:video" content="http://testserver/s/{token}/video.mp4">' in page
    assert f'<meta property="og:image" content="http://testserver/s/{token}/poster.jpg">' in page
    assert 'name="twitter:card" content="player"' in page
    assert "<title>Launch video</title>" in page
    # Nothing else about the team: no prompt, no names, no links into the studio.
    secrets = ("secret prompt", "face.jpg", "alice", job.team.name, str(job.code), "/jobs/")
    for secret in secrets:
        assert secret not in page
    assert "Download MP4" not in page
    link.refresh_from_db()
    assert link.views == 1 and link.last_viewed_at


def test_the_video_seeks_and_downloads_only_when_allowed(client, job, owner):
    _, token = share_create(job=job, by=owner)
    part = client.get(f"/s/{token}/video.mp4", HTTP_RANGE="bytes=0-99")
    assert part.status_code == 206 and part["Referrer-Policy"] == "no-referrer"
    assert len(b"".join(part.streaming_content)) == 100
    assert client.get(f"/s/{token}/video.mp4?download=1").status_code == 404
    assert client.get(f"/s/{token}/poster.jpg").status_code == 200
    _, token2 = share_create(job=job, by=owner, allow_download=True)
    download = client.get(f"/s/{token2}/video.mp4?download=1")
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment;")
    assert "Download MP4" in client.get(f"/s/{token2}/").content.decode()


def test_revoked_expired_and_guessed_links_get_404(client, job, owner):
    link, token = share_create(job=job, by=owner)
    share_revoke(link=link)
    expired, expired_token = share_create(
        job=job, by=owner, expires_at=timezone.now() + timedelta(hours=1)
    )
    ShareLink.objects.filter(pk=expired.pk).update(expires_at=timezone.now())
    for t in (token, expired_token, "x" * 32, token[:-1] + ("A" if token[-1] != "A" else "B")):
        for suffix in ("", "video.mp4", "poster.jpg"):
            assert client.get(f"/s/{t}/{suffix}").status_code == 404


def test_only_finished_jobs_can_be_shared(team, owner, portrait_path, audio_path):
    queued = job_create(
        team=team,
        user=owner,
        portrait=asset_store(team=team, user=owner, valid=validate_portrait(portrait_path)),
        audio=asset_store(team=team, user=owner, valid=validate_audio(audio_path)),
    )
    with pytest.raises(ValidationError, match="Only a finished video"):
        share_create(job=queued, by=owner)
    with pytest.raises(ValidationError, match="in the past"):
        job = queued
        job.status = AvatarJob.Status.SUCCEEDED
        share_create(job=job, by=owner, expires_at=timezone.now() - timedelta(1))


@pytest.fixture
def public_address(settings) -> str:
    """PUBLIC_BASE_URL set before the job is made (emails link only when it is set)."""
    settings.PUBLIC_BASE_URL = "https://studio.example.com"
    return settings.PUBLIC_BASE_URL


def test_the_creator_is_emailed_once_when_asked(public_address, job):
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["alice@example.com"] and "ready" in message.subject
    assert f"{public_address}{job.get_absolute_url()}" in message.body
    tasks.advance_job(job.pk)
    job_notify(job_id=job.pk)
    assert len(mail.outbox) == 1


def test_password_reset_sends_a_working_link(client, owner):
    response = client.post("/accounts/password_reset/", {"email": "alice@example.com"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    link = next(w for w in mail.outbox[0].body.split() if "/accounts/reset/" in w)
    path = link.split("testserver", 1)[1]
    form = client.get(path, follow=True)
    assert "Choose a new password" in form.content.decode()
    done = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "Brand-new-pass-77", "new_password2": "Brand-new-pass-77"},
    )
    assert done.status_code == 302
    owner.refresh_from_db()
    assert owner.check_password("Brand-new-pass-77")


def test_password_change(client, owner):
    client.force_login(owner)
    response = client.post(
        "/accounts/password_change/",
        {
            "old_password": "alice-pass-1",
            "new_password1": "Another-pass-88",
            "new_password2": "Another-pass-88",
        },
    )
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.check_password("Another-pass-88")
