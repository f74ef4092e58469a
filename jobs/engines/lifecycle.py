"""What every engine does to a job: wake it, lease its step, fail it, finish it.

The lease idiom, the same for drafts and Kling jobs: `next_attempt_at` is the lease. A worker
takes a step with a conditional transition that expects the status *and* the lease it read
(`claim`, or `take` when the step must also be due), so of two workers racing for a step one
wins and the other changes nothing. While it works, the worker carries that lease into every
later transition (`release`, `fail`, `job_finish`), so a worker that stalled past its lease
can no longer touch a job another worker has taken over. Every change of status goes through
`AvatarJob.transition` (jobs/models.py).
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.core.cache import cache
from django.core.files import File
from django.db.models.fields.files import FieldFile
from django.utils import timezone
from django_q.tasks import async_task

from jobs.models import AvatarJob

log = logging.getLogger(__name__)

# The same job in the same state is enqueued at most once per this many seconds.
WAKE_DEDUP_SECONDS = 30


def job_extra(job: AvatarJob) -> dict[str, str]:
    """`extra=` for a log line about a job: LOG_FORMAT=json puts its code in the `job` field."""
    return {"job": str(job.code)}


@contextmanager
def job_tempdir(job: AvatarJob, purpose: str) -> Iterator[Path]:
    """A temporary folder for one step of one job (ffmpeg needs local files), always removed.

    Its own per job and step, so workers on one host never share files, and nothing in
    MEDIA_ROOT is ever read or written by a path: stored files go through the storage API.
    """
    workdir = Path(tempfile.mkdtemp(prefix=f"{purpose}-{job.code}-"))
    try:
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def wake(job_id: int) -> None:
    """Ask the worker to advance one job. Losing this message only delays the job.

    The same job in the same state is woken at most once per WAKE_DEDUP_SECONDS, however
    many tickers, callbacks and reconciler runs ask for it (cache.add is atomic).
    """
    row = AvatarJob.objects.filter(pk=job_id).values_list("status", "next_attempt_at").first()
    if row is None:
        return
    key = f"wake:{job_id}:{row[0]}:{row[1].timestamp() if row[1] else '-'}"
    if not cache.add(key, 1, timeout=WAKE_DEDUP_SECONDS):
        return
    try:
        async_task("jobs.tasks.advance_job", job_id, task_name=f"job-{job_id}", group="jobs")
    except Exception:
        cache.delete(key)
        log.exception("could not enqueue job %s; the reconciler will pick it up", job_id)


def later(seconds: float) -> datetime:
    return timezone.now() + timedelta(seconds=seconds)


def retry_delay(attempts: int, *, first: float = 1.0, cap: float = 60.0) -> float:
    """Exponential backoff from `first` (≥ 1 s for Kling's 1302/1303), with jitter."""
    return float(min(first * 2 ** max(attempts - 1, 0), cap) * random.uniform(1.0, 1.25))


# --- leases ----------------------------------------------------------------------------------


def claim(job: AvatarJob, lease_seconds: float, *, to: str | None = None) -> bool:
    """Take the job's current step (moving it to status `to`, if given) with a fresh lease.

    Conditional on the status and the lease this worker read: False if another worker took
    the step first. Counts the attempt.
    """
    return job.transition(
        to or job.status,
        expect=job.status,
        where={"next_attempt_at": job.next_attempt_at},
        next_attempt_at=later(lease_seconds),
        attempts=job.attempts + 1,
    )


def take(job: AvatarJob, lease_seconds: float) -> bool:
    """Claim the job's current step if it is due; False if it is not, or another worker has it."""
    if job.next_attempt_at and job.next_attempt_at > timezone.now():
        return False
    return claim(job, lease_seconds)


def release(job: AvatarJob, delay: float, **fields: Any) -> bool:
    """Give the step back, to be taken up again after `delay` seconds (with `fields` written)."""
    return job.transition(
        job.status,
        expect=job.status,
        where={"next_attempt_at": job.next_attempt_at},
        next_attempt_at=later(delay),
        **fields,
    )


def extend(job: AvatarJob, seconds: float) -> bool:
    """Move the lease this worker holds `seconds` into the future; False if it was lost."""
    return release(job, seconds)


# --- the ends ----------------------------------------------------------------------------------


def job_fail(
    *,
    job: AvatarJob,
    code: str,
    message: str,
    expect: str | tuple[str, ...] | None = None,
    lease: datetime | None = None,
) -> bool:
    """Fail the job with a reason; with `lease`, only while the caller still holds it."""
    return job.transition(
        AvatarJob.Status.FAILED,
        expect=expect or AvatarJob.ACTIVE,
        where={"next_attempt_at": lease} if lease is not None else None,
        next_attempt_at=None,
        error_code=code,
        error_message=message,
    )


def fail(job: AvatarJob, expect: str | tuple[str, ...], code: str, message: str) -> bool:
    """Fail the job with a reason, only while this worker still holds the lease it read."""
    return job_fail(job=job, code=code, message=message, expect=expect, lease=job.next_attempt_at)


def job_finish(
    *,
    job: AvatarJob,
    expect: str,
    lease: datetime | None,
    video: Path,
    poster: Path,
    duration: float | None,
    draft_note: str = "",
) -> bool:
    """Store a finished video and its poster, then mark the job succeeded.

    `draft_note`: a draft's reason for having no lip movement, shown wherever the draft is.

    Only while the caller still holds its lease (`expect` status and `next_attempt_at`):
    a worker that lost the job to another deletes what it saved, so no file is orphaned.
    """
    saved: list[FieldFile] = []
    try:
        with video.open("rb") as fh:
            job.video.save(f"{job.code}.mp4", File(fh), save=False)
            saved.append(job.video)
        with poster.open("rb") as fh:
            job.poster.save(f"{job.code}.jpg", File(fh), save=False)
            saved.append(job.poster)
        finished = job.transition(
            AvatarJob.Status.SUCCEEDED,
            expect=expect,
            where={"next_attempt_at": lease},
            next_attempt_at=None,
            video=job.video.name,
            poster=job.poster.name,
            video_size=video.stat().st_size,
            duration=duration,
            error_code="",
            error_message="",
            draft_note=draft_note,
        )
    except BaseException:
        for f in saved:
            f.delete(save=False)
        raise
    if not finished:
        for f in saved:
            f.delete(save=False)
    else:
        log.info("stored the result of %s (%s)", job.code, job.video.name, extra=job_extra(job))
    return finished


def copy_to_local(field: FieldFile, dest: Path) -> Path:
    """Copy a stored file to a local path (storage may be remote, ffmpeg needs a path)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with field.open("rb") as src, dest.open("wb") as out:
        shutil.copyfileobj(src, out, 1024 * 1024)
    field.close()
    return dest
