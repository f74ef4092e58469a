"""The draft lifecycle: claims are conditional, steps are idempotent, nothing is stranded."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from django_q.models import Schedule

from jobs import tasks
from jobs.engines.draft import MAX_RENDER_ATTEMPTS
from jobs.engines.render import render_draft
from jobs.ffmpeg import probe
from jobs.media.audio import validate_audio
from jobs.media.portraits import validate_portrait
from jobs.models import AvatarJob
from jobs.services.assets import asset_store
from jobs.services.jobs import job_cancel, job_create, reconcile
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(team, owner, portrait_path, audio_path) -> AvatarJob:
    return job_create(
        team=team,
        user=owner,
        portrait=asset_store(team=team, user=owner, valid=validate_portrait(portrait_path)),
        audio=asset_store(team=team, user=owner, valid=validate_audio(audio_path)),
        prompt="smile",
        mode=AvatarJob.Mode.DRAFT,
    )


def stored_files(media_root: Path, folder: str = "results") -> list[Path]:
    return sorted(p for p in (media_root / folder).rglob("*") if p.is_file())


def test_a_queued_draft_job_is_rendered(job, media_root):
    tasks.advance_job(job.pk)
    job.refresh_from_db()
    assert job.status == AvatarJob.Status.SUCCEEDED
    assert job.processing_at and job.finished_at and job.attempts == 1
    assert job.duration == pytest.approx(3.0, abs=0.1)
    info = probe(job.video.path)
    assert info and info.video.codec == "h264" and info.audio.codec == "aac"
    assert Path(job.poster.path).read_bytes()[:3] == b"\xff\xd8\xff"
    assert [p.suffix for p in stored_files(media_root)] == [".jpg", ".mp4"]


def test_running_the_task_twice_changes_nothing_the_second_time(job, media_root):
    tasks.advance_job(job.pk)
    job.refresh_from_db()
    before = (job.status, job.video.name, job.finished_at, job.attempts, job.updated)
    files = stored_files(media_root)
    tasks.advance_job(job.pk)
    job.refresh_from_db()
    assert (job.status, job.video.name, job.finished_at, job.attempts, job.updated) == before
    assert stored_files(media_root) == files


def test_a_vanished_job_is_ignored():
    tasks.advance_job(987654)  # no such row: nothing to do, no error


def test_a_job_held_by_a_live_worker_is_left_alone(job):
    lease = timezone.now() + timedelta(minutes=5)
    assert job.transition(
        AvatarJob.Status.PROCESSING,
        expect=AvatarJob.Status.QUEUED,
        next_attempt_at=lease,
        attempts=1,
    )
    tasks.advance_job(job.pk)
    job.refresh_from_db()
    assert job.status == AvatarJob.Status.PROCESSING and job.attempts == 1


def test_a_dead_workers_render_is_taken_over(job):
    AvatarJob.objects.filter(pk=job.pk).update(
        status=AvatarJob.Status.PROCESSING,
        attempts=1,
        next_attempt_at=timezone.now() - timedelta(seconds=1),
    )
    assert reconcile() == 1
    tasks.advance_job(job.pk)
    job.refresh_from_db()
    assert job.status == AvatarJob.Status.SUCCEEDED and job.attempts == 2


def test_a_render_that_keeps_dying_fails_with_a_reason(job):
    AvatarJob.objects.filter(pk=job.pk).update(
        status=AvatarJob.Status.PROCESSING,
        attempts=MAX_RENDER_ATTEMPTS,
        next_attempt_at=timezone.now() - timedelta(seconds=1),
    )
    tasks.advance_job(job.pk)
    job.refresh_from_db()
    assert job.status == AvatarJob.Status.FAILED
    assert job.error_code == "render_crashed"
    assert "stopped 3 times" in job.error_message
    assert not AvatarJob.objects.due().filter(pk=job.pk).exists()


def test_a_render_error_fails_the_job_in_plain_words(job, media_root):
    job.audio.file.save("broken.mp3", ContentFile(b"\x00" * 4000), save=True)
    tasks.advance_job(job.pk)
    job.refresh_from_db()
    assert job.status == AvatarJob.Status.FAILED
    assert job.error_code == "render_failed"
    assert job.error_message and "ffmpeg" not in job.error_message.lower()
    assert stored_files(media_root) == []


def test_a_worker_that_lost_its_lease_keeps_no_files(job, media_root, monkeypatch):
    real_render = render_draft

    def render_while_another_worker_takes_over(**kwargs):
        result = real_render(**kwargs)
        AvatarJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
        return result

    monkeypatch.setattr("jobs.engines.draft.render_draft", render_while_another_worker_takes_over)
    tasks.advance_job(job.pk)
    job.refresh_from_db()
    assert job.status == AvatarJob.Status.PROCESSING  # the other worker will finish it
    assert stored_files(media_root) == []


def test_a_canceled_job_is_never_rendered(job, media_root):
    assert job_cancel(job=job)
    tasks.advance_job(job.pk)
    job.refresh_from_db()
    assert job.status == AvatarJob.Status.CANCELED and job.finished_at
    assert not job_cancel(job=job)
    assert stored_files(media_root) == []


def test_the_reconciler_is_scheduled_every_minute():
    schedule = Schedule.objects.get(func="jobs.tasks.reconcile")
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 1, -1)


def test_the_reconciler_only_picks_due_jobs(job):
    assert reconcile() == 0  # its wake-up message is still within the grace period
    AvatarJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
    assert reconcile() == 1


@pytest.mark.slow
def test_a_job_whose_message_was_lost_is_finished_by_the_reconciler(
    worker, team, owner, portrait_path, audio_path
):
    portrait = asset_store(team=team, user=owner, valid=validate_portrait(portrait_path))
    audio = asset_store(team=team, user=owner, valid=validate_audio(audio_path))
    # Written straight to the table: no wake-up message was ever sent.
    job = AvatarJob.objects.create(
        team=team,
        created_by=owner,
        portrait=portrait,
        audio=audio,
        next_attempt_at=timezone.now() - timedelta(seconds=1),
    )
    tasks.reconcile()  # what the minute schedule runs
    wait_for(lambda: AvatarJob.objects.get(pk=job.pk).is_terminal, timeout=90)
    assert AvatarJob.objects.get(pk=job.pk).status == AvatarJob.Status.SUCCEEDED
