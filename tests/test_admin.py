"""The operator's panel: actions go through the same services as the pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from jobs.engines.lifecycle import job_fail
from jobs.media.audio import validate_audio
from jobs.media.portraits import validate_portrait
from jobs.models import AvatarJob, KlingAccount, ShareLink, TeamInvite
from jobs.services.assets import asset_store
from jobs.services.jobs import job_create
from jobs.services.sharing import share_create
from jobs.services.teams import invite_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(team, owner, portrait_path, audio_path) -> AvatarJob:
    return job_create(
        team=team,
        user=owner,
        portrait=asset_store(team=team, user=owner, valid=validate_portrait(portrait_path)),
        audio=asset_store(team=team, user=owner, valid=validate_audio(audio_path)),
    )


def act(admin_client, action: str, *jobs: AvatarJob):
    return admin_client.post(
        reverse("admin:jobs_avatarjob_changelist"),
        {"action": action, "_selected_action": [j.pk for j in jobs]},
        follow=True,
    )


def test_every_model_has_a_changelist(admin_client, job, settings):
    for name in [
        "team",
        "membership",
        "asset",
        "avatarjob",
        "sharelink",
        "teaminvite",
        "klingaccount",
    ]:
        assert admin_client.get(reverse(f"admin:jobs_{name}_changelist")).status_code == 200
    urls = ["/admin/django_q/schedule/", "/admin/django_q/failure/", "/admin/axes/accessattempt/"]
    if "orm" in settings.Q_CLUSTER:  # the queue itself is only in the database with the ORM broker
        urls.append("/admin/django_q/ormq/")
    for url in urls:
        assert admin_client.get(url).status_code == 200, url
    assert (
        admin_client.get(reverse("admin:jobs_avatarjob_change", args=[job.pk])).status_code == 200
    )


def test_cancel_action_uses_the_cancel_service(admin_client, job):
    response = act(admin_client, "cancel_jobs", job)
    assert "1 job(s) canceled" in response.content.decode()
    job.refresh_from_db()
    assert job.status == AvatarJob.Status.CANCELED and job.finished_at


def test_retry_action_makes_a_new_job_for_failed_ones(admin_client, job):
    job_fail(job=job, code="render_failed", message="broken")
    act(admin_client, "retry_jobs", job)
    retried = AvatarJob.objects.exclude(pk=job.pk).get()
    assert (retried.portrait, retried.audio, retried.status) == (
        job.portrait,
        job.audio,
        AvatarJob.Status.QUEUED,
    )
    assert retried.external_task_id != job.external_task_id


def test_retry_refuses_jobs_that_did_not_fail(admin_client, job):
    response = act(admin_client, "retry_jobs", job)
    assert "Only a failed job can be retried" in response.content.decode()
    assert AvatarJob.objects.count() == 1


def test_query_now_makes_the_job_due(admin_client, job):
    later = timezone.now() + timedelta(hours=3)
    AvatarJob.objects.filter(pk=job.pk).update(
        status=AvatarJob.Status.PROCESSING, mode="std", next_attempt_at=later, error_code="overdue"
    )
    act(admin_client, "query_kling_now", job)
    job.refresh_from_db()
    assert job.next_attempt_at <= timezone.now()


def test_the_overview_shows_counts_stuck_jobs_and_a_pause(admin_client, job):
    AvatarJob.objects.filter(pk=job.pk).update(
        status=AvatarJob.Status.PROCESSING,
        error_code="overdue",
        error_message="Kling has worked on this video for longer than expected.",
    )
    KlingAccount.objects.create(
        pk=1,
        paused_until=timezone.now() + timedelta(minutes=5),
        pause_code="1102",
        pause_message="Resource pack used up.",
    )
    page = admin_client.get("/admin/").content.decode()
    assert "Jobs by status" in page and "Jobs that need a person" in page
    assert "longer than expected" in page
    assert "Kling submissions are paused" in page and "Resource pack used up." in page
    attention = admin_client.get(reverse("admin:jobs_avatarjob_changelist") + "?attention=yes")
    assert str(job.code) in attention.content.decode()


def test_resume_lifts_the_pause(admin_client):
    KlingAccount.objects.create(pk=1, paused_until=timezone.now() + timedelta(minutes=5))
    admin_client.post(
        reverse("admin:jobs_klingaccount_changelist"), {"action": "resume", "_selected_action": [1]}
    )
    assert not KlingAccount.get().is_paused


def test_secrets_are_never_shown_in_clear(admin_client, job, owner):
    job.status = AvatarJob.Status.SUCCEEDED
    job.save()
    link, token = share_create(job=job, by=owner)
    invite, invite_token = invite_create(team=job.team, by=owner)
    for url in [
        reverse("admin:jobs_sharelink_change", args=[link.pk]),
        reverse("admin:jobs_teaminvite_change", args=[invite.pk]),
    ]:
        page = admin_client.get(url).content.decode()
        assert token not in page and invite_token not in page
    assert ShareLink.objects.count() == TeamInvite.objects.count() == 1
