"""A job's stage and status in words: one vocabulary for cards, the job page and the API.

Cards and the job page show `stage()` (five stages, a badge and one line of detail) and
`timeline()`; the API shows Kling's four statuses (`kling_status`). The duration words used by
all of them are here too, and registered as template filters in jobs/templatetags/studio.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from jobs.models import AvatarJob
from jobs.tts.script import captions_vtt

Status = AvatarJob.Status

# Our lifecycle seen through Kling's four statuses.
_KLING_STATUS: dict[str, str] = {
    AvatarJob.Status.QUEUED: "submitted",
    AvatarJob.Status.SUBMITTING: "submitted",
    AvatarJob.Status.SUBMITTED: "processing",
    AvatarJob.Status.PROCESSING: "processing",
    AvatarJob.Status.DOWNLOADING: "processing",
    AvatarJob.Status.SUCCEEDED: "succeed",  # sic: Kling's spelling
    AvatarJob.Status.FAILED: "failed",
    AvatarJob.Status.CANCELED: "failed",
}


def kling_status(status: str) -> str:
    return _KLING_STATUS.get(status, "processing")


@dataclass(frozen=True)
class Step:
    label: str
    at: datetime | None
    state: str  # "done", "current", "todo" or "failed"


def timeline(job: AvatarJob) -> list[Step]:
    """The stages this job goes through (drafts skip Kling's), with when each began."""
    stages: list[tuple[str, str, datetime | None]] = [("queued", "Queued", job.created)]
    if job.uses_kling:
        stages += [
            ("submitting", "Sent to Kling", job.submitting_at),
            ("submitted", "Accepted by Kling", job.submitted_at),
        ]
    stages.append(("processing", "Generating", job.processing_at))
    if job.uses_kling:
        stages.append(("downloading", "Saving", job.downloading_at))
    end_labels: dict[str, str] = {Status.FAILED: "Failed", Status.CANCELED: "Canceled"}
    end_label = end_labels.get(job.status, "Done")
    stages.append((Status.SUCCEEDED, end_label, job.finished_at))
    order = [status for status, _, _ in stages]
    current = order.index(job.status) if job.status in order else len(order) - 1
    steps = []
    for i, (_, label, at) in enumerate(stages):
        if job.status in (Status.FAILED, Status.CANCELED) and i == len(stages) - 1:
            state = "failed"
        elif i < current or (i == current and job.is_terminal):
            state = "done"
        elif i == current:
            state = "current"
        else:
            state = "todo"
        if state == "todo" or (state != "failed" and at is None and i > current):
            at = None
        steps.append(Step(label, at, state))
    return steps


S = AvatarJob.Status

# The five stages a card shows, in order; several statuses can share one stage.
STAGES = ("Queued", "Sending", "Generating", "Saving", "Done")
_STAGE_OF: dict[str, int] = {
    S.QUEUED: 1,
    S.SUBMITTING: 2,
    S.SUBMITTED: 3,
    S.PROCESSING: 3,
    S.DOWNLOADING: 4,
    S.SUCCEEDED: 5,
}


def has_captions(job: AvatarJob) -> bool:
    """A video whose voice-over was made from a script can be captioned from it."""
    return bool(job.audio and job.audio.script.strip())


def captions(job: AvatarJob) -> str:
    """The video's captions (WebVTT) from its voice-over's script, timed over its length."""
    if not has_captions(job):
        return captions_vtt("", duration=None)
    assert job.audio is not None
    return captions_vtt(job.audio.script, duration=job.duration or job.audio.duration)


def human_duration(seconds: float | None) -> str:
    """45 s, 2 min 05 s, 1 h 02 min: short enough for a card, exact enough to be useful."""
    if seconds is None:
        return ""
    total = max(int(round(float(seconds))), 0)
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def precise_duration(seconds: float | None) -> str:
    """Like human_duration, with a decimal under 10 s, where whole seconds say too little."""
    if seconds is not None and seconds < 10:
        return f"{seconds:.1f} s"
    return human_duration(seconds)


def clock(seconds: float | None) -> str:
    """A video length the way players show it: 0:12, 4:05, 1:02:03."""
    if seconds is None:
        return ""
    total = max(int(round(float(seconds))), 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


def ordinal_place(n: int | None) -> str:
    """1 -> "next in line", 3 -> "3rd in line"."""
    if n is None:
        return ""
    n = int(n)
    if n <= 1:
        return "next in line"
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix} in line"


@dataclass(frozen=True)
class Stage:
    """Where a job is, in words that do not depend on the time of the request.

    Cards are cached (cardcache), so what changes by the second (the time running, the time
    left) is counted in the browser by studio.js from `started` and `estimate`.
    """

    step: int  # 1..5; 0 when the job ended without a video (failed, canceled)
    label: str  # what the badge says
    detail: str  # one line under it: queue place, usual duration, the failure reason
    what: str = ""  # while generating: what is going on ("Rendering the draft")
    estimate: int | None = None  # while generating: seconds such jobs usually take
    started: datetime | None = None  # while generating: when it began

    @property
    def steps(self) -> list[tuple[str, str]]:
        """(name, "done" | "current" | "") for the five stages."""
        return [
            (name, "done" if i < self.step else "current" if i == self.step else "")
            for i, name in enumerate(STAGES, start=1)
        ]


def stage(job: AvatarJob) -> Stage:
    """Where the job is, in words, for cards and the job page.

    Reads `queue_ahead` (jobs queued before this one) and `estimate` (seconds a generation of
    this mode usually takes in this team) when the view attached them.
    """
    status = job.status
    step = _STAGE_OF.get(status, 0)
    if status == S.QUEUED:
        ahead = getattr(job, "queue_ahead", None)
        detail = ordinal_place(ahead + 1) if ahead is not None else "Waiting for a worker"
        return Stage(step, "Queued", detail.capitalize())
    if status == S.SUBMITTING:
        return Stage(step, "Sending", "Sending the files to Kling")
    if status == S.SUBMITTED:
        return Stage(step, "Generating", "Accepted by Kling, waiting for a slot")
    if status == S.PROCESSING:
        return _generating(job, step)
    if status == S.DOWNLOADING:
        return Stage(step, "Saving", "Saving the video to the library")
    if status == S.SUCCEEDED:
        parts = [f"{clock(job.duration)} video"] if job.duration else ["Ready to watch"]
        if took := seconds_between(job.created, job.finished_at):
            parts.append(f"made in {precise_duration(took)}")
        return Stage(step, "Done", " · ".join(parts))
    if status == S.FAILED:
        return Stage(0, "Failed", job.error_message or "The job failed.")
    return Stage(0, "Canceled", "Canceled before it started")


def _generating(job: AvatarJob, step: int) -> Stage:
    what = "Rendering the draft" if job.mode == AvatarJob.Mode.DRAFT else "Kling is animating"
    estimate = getattr(job, "estimate", None)
    started = job.processing_at or job.submitted_at
    if not estimate or started is None:
        return Stage(step, "Generating", what)
    detail = f"{what}: usually takes about {human_duration(estimate)}"
    return Stage(step, "Generating", detail, what, round(estimate), started)


def card_version(updated: datetime, queue_ahead: int | None, estimate: float | None) -> str:
    """Changes exactly when a running card's HTML would: the poll skips cards it still has.

    A running card depends on its row (any change to it moves `updated`), its place in the
    queue and the estimate; elapsed and remaining times are counted on by studio.js.
    """
    micros = int(updated.timestamp() * 1_000_000)
    return f"{micros:x}.{'' if queue_ahead is None else queue_ahead}.{estimate and round(estimate)}"


def version(job: AvatarJob) -> str:
    return card_version(
        job.updated, getattr(job, "queue_ahead", None), getattr(job, "estimate", None)
    )
