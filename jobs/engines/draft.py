"""The draft engine: free, offline jobs rendered on this server (jobs/engines/render.py).

Lifecycle (see jobs/models.py): queued ──claim──▶ processing (rendering) ─▶ succeeded | failed.
A portrait without a usable face (none, too small, turned away) still makes a draft: it only
breathes, and `draft_note` says why on every page that shows it.

There are no slots: a draft is woken as soon as it is committed. The claim leases the job for
about twice the voice-over's length (`render_lease_seconds`); a worker that dies mid-render
leaves a lease that runs out, and the next worker takes the render over, up to
MAX_RENDER_ATTEMPTS times.
"""

from __future__ import annotations

import logging

from django.utils import timezone

from jobs.engines.lifecycle import (
    claim,
    copy_to_local,
    fail,
    job_extra,
    job_fail,
    job_finish,
    job_tempdir,
)
from jobs.engines.render import RenderError, render_draft
from jobs.models import AvatarJob

log = logging.getLogger(__name__)
Status = AvatarJob.Status

# How many times a worker may take up the same draft render before we give up on it.
MAX_RENDER_ATTEMPTS = 3


def render_lease_seconds(job: AvatarJob) -> float:
    duration = job.audio.duration if job.audio else 300
    return 60 + 2 * (duration or 300)


def advance(job: AvatarJob) -> None:
    """Claim a queued draft (or one whose renderer died) and render it."""
    if job.status == Status.QUEUED:
        claimed = claim(job, render_lease_seconds(job), to=Status.PROCESSING)
    elif (
        job.status == Status.PROCESSING
        and job.next_attempt_at
        and job.next_attempt_at <= timezone.now()
    ):
        # The worker that held this render died (its lease ran out): take it over.
        if job.attempts >= MAX_RENDER_ATTEMPTS:
            fail(
                job,
                Status.PROCESSING,
                "render_crashed",
                f"The draft renderer stopped {job.attempts} times on this job without "
                "finishing. Try again; if it keeps happening, tell the operator.",
            )
            return
        claimed = claim(job, render_lease_seconds(job))
    else:
        return  # someone else is on it, or it is waiting
    if claimed:
        _render(job)


def _render(job: AvatarJob) -> None:
    """Render the claimed job and store the result, while this worker holds the lease."""
    lease = job.next_attempt_at
    assert job.audio is not None  # drafts always have a voice-over file
    with job_tempdir(job, "draft") as workdir:
        portrait = copy_to_local(job.portrait.file, workdir / f"portrait.{job.portrait.format}")
        audio = copy_to_local(job.audio.file, workdir / f"audio.{job.audio.format}")
        try:
            result = render_draft(portrait=portrait, audio=audio, workdir=workdir / "out")
        except RenderError as exc:
            log.warning(
                "draft render failed for %s: %s",
                job.code,
                getattr(exc, "detail", exc),
                extra=job_extra(job),
            )
            job_fail(
                job=job,
                code="render_failed",
                message=str(exc),
                expect=Status.PROCESSING,
                lease=lease,
            )
            return
        finished = job_finish(
            job=job,
            expect=Status.PROCESSING,
            lease=lease,
            video=result.video,
            poster=result.poster,
            duration=result.duration,
            draft_note=result.note,
        )
        if not finished:
            log.info(
                "render of %s was taken over or canceled; its files were dropped",
                job.code,
                extra=job_extra(job),
            )
