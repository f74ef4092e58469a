"""The Kling engine: std and pro jobs, exactly one Kling task per job, results kept for good.

Lifecycle (see jobs/models.py): a queued job waits for a slot (`dispatch`), is claimed into
`submitting`, POSTed with its own UUID as `external_task_id` (the request is built in
`_create_payload`), tracked while Kling works, and its result streamed into our storage
(jobs/engines/kling_download.py). Every step first takes a lease on the job (`take` in
jobs/engines/lifecycle.py), so a duplicate wake-up or a second worker does nothing.

Exactly once: a POST whose outcome is unknown (timeout, reset, 5xx, garbage) leaves the job
in `submitting` marked `outcome_unknown`; the next attempt asks Kling for the external id
first and adopts the task if it exists, and only POSTs again (same id) if it does not. A
duplicate-id refusal from Kling also means "it exists": adopt it.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from jobs import kling
from jobs.engines.kling_download import download
from jobs.engines.lifecycle import fail, job_extra, later, release, retry_delay, take, wake
from jobs.kling import messages
from jobs.kling.client import ErrorKind, KlingClient, KlingError, KlingTask
from jobs.links import callback_url, callbacks_enabled
from jobs.models import Asset, AvatarJob, KlingAccount

log = logging.getLogger(__name__)
Status = AvatarJob.Status

OPERATOR_PAUSE = timedelta(minutes=10)
OVERDUE_RECHECK = timedelta(hours=6)
MAX_LOST_TASK_QUERIES = 5
MAX_UNREADABLE_INPUTS = 5


# --- timing -------------------------------------------------------------------------------


def poll_delay(polls: int) -> float:
    """Seconds until the next status query: a few seconds at first, then up to minutes.

    With callbacks on, polling is only the fallback, so it starts ten times slower.
    """
    first = float(settings.KLING_POLL_SECONDS) * (10 if callbacks_enabled() else 1)
    cap = 300.0 if callbacks_enabled() else 120.0
    return min(first * 1.5 ** max(polls - 1, 0), cap) * random.uniform(0.85, 1.15)


def callback_hint(job: AvatarJob, hint: str | None) -> bool:
    """Wake the job up because Kling says something changed; True if it was woken.

    The callback body is never trusted: it only decides whether asking Kling now is worth a
    request. A job whose first create is still in flight is never touched (its lease guards
    the one POST). Reports of a state we already know ("submitted"/"processing" while the job
    waits on Kling) change nothing; anything else makes the job query Kling now.
    """
    if not job.uses_kling or job.status not in AvatarJob.HOLDING_SLOT:
        return False
    if job.status == Status.SUBMITTING and job.error_code != "outcome_unknown":
        return False
    if hint in ("submitted", "processing") and job.error_code not in ("overdue", "outcome_unknown"):
        return False
    now = timezone.now()
    not_due_yet = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__gt=now)
    woke = job.transition(
        job.status,
        expect=job.status,
        where=Q(error_code=job.error_code) & not_due_yet,
        next_attempt_at=now,
    )
    if woke:
        wake(job.pk)
    return woke


# --- slots ---------------------------------------------------------------------------------


def _serialize_dispatch() -> None:
    """Make concurrent dispatchers take turns, so the slot count they read stays true.

    SQLite already runs one writing transaction at a time (IMMEDIATE mode); PostgreSQL
    takes a transaction-scoped advisory lock.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [7_340_001])


def dispatch(*, submit_one_here: bool = False) -> list[int]:
    """Hand free Kling slots to queued jobs: fewest jobs in flight per user first, then oldest."""
    if _note_why_waiting():
        return []
    limit = settings.KLING_MAX_CONCURRENCY
    if AvatarJob.objects.in_flight().count() >= limit:
        return []  # the common case while a queue waits: no need to take the lock
    chosen: list[int] = []
    with transaction.atomic():
        _serialize_dispatch()
        holders = list(AvatarJob.objects.in_flight().values_list("created_by_id", flat=True))
        free = settings.KLING_MAX_CONCURRENCY - len(holders)
        if free <= 0:
            return []
        now = timezone.now()
        waiting = list(
            AvatarJob.objects.filter(status=Status.QUEUED)
            .exclude(mode=AvatarJob.Mode.DRAFT)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .order_by("created", "pk")
            .values_list("pk", "created_by_id")[:1000]
        )
        in_flight = Counter(holders)
        while free and waiting:
            # min() keeps the first of equals, and `waiting` is oldest first.
            pick = min(waiting, key=lambda row: in_flight[row[1]])
            waiting.remove(pick)
            claimed = AvatarJob(pk=pick[0]).transition(
                Status.SUBMITTING,
                expect=Status.QUEUED,
                next_attempt_at=None,
                error_code="",
                error_message="",
            )
            if claimed:
                chosen.append(pick[0])
                in_flight[pick[1]] += 1
                free -= 1
    if submit_one_here and chosen:
        # The caller just freed a slot: send the next job from here instead of a round trip
        # through the queue, so Kling's slot is busy again within a request's time.
        first = AvatarJob.objects.select_related("portrait", "audio").filter(pk=chosen[0]).first()
        try:
            if first is not None:
                _submit(first)
            chosen_to_wake = chosen[1:]
        except Exception:
            log.exception("submitting %s inline failed; the worker will take it up", chosen[0])
            chosen_to_wake = chosen
    else:
        chosen_to_wake = chosen
    for pk in chosen_to_wake:
        wake(pk)
    return chosen


def _dispatch_on_commit() -> None:
    transaction.on_commit(dispatch)


def pause_submissions(error: KlingError) -> None:
    account = KlingAccount.get()
    account.paused_until = timezone.now() + OPERATOR_PAUSE
    account.pause_code = str(error.code or "")
    account.pause_message = messages.operator_message(error.code, error.message)
    account.save()
    log.error("Kling submissions paused: %s", account.pause_message)


def resume_submissions() -> None:
    KlingAccount.objects.filter(pk=1).update(paused_until=None)
    dispatch()


# --- the steps -----------------------------------------------------------------------------


def advance(job: AvatarJob) -> None:
    if job.status == Status.QUEUED:
        dispatch()
    elif job.status == Status.SUBMITTING:
        _submit(job)
    elif job.status in (Status.SUBMITTED, Status.PROCESSING):
        _track(job)
    elif job.status == Status.DOWNLOADING:
        download(job)


def _note_why_waiting() -> bool:
    """True, with the reason written on every queued Kling job, when none can go out now."""
    if not kling.is_configured():
        code, note = (
            "not_configured",
            (
                "Waiting: this server has no Kling key any more. Ask the operator to set it, or "
                "cancel this job and make a draft."
            ),
        )
    elif KlingAccount.get().is_paused:
        code, note = "paused", _paused_note()
    else:
        return False
    AvatarJob.objects.filter(status=Status.QUEUED).exclude(mode=AvatarJob.Mode.DRAFT).exclude(
        error_code=code, error_message=note
    ).update(error_code=code, error_message=note)
    return True


def _http_lease() -> float:
    """Long enough for one request with its connect and read timeouts, and no longer: a
    worker killed mid-request delays its job by this much at most."""
    return settings.KLING_HTTP_TIMEOUT * 2 + 10


def _submit(job: AvatarJob) -> None:
    account = KlingAccount.get()
    if account.is_paused:
        if job.next_attempt_at and job.next_attempt_at > timezone.now():
            return  # another worker holds this step (its create may be in flight)
        if job.error_code == "outcome_unknown":
            # Still to be resolved by a lookup, which would fail the same way: after the pause.
            until = account.paused_until or timezone.now()
            release(job, (until - timezone.now()).total_seconds())
            return
        job.transition(
            Status.QUEUED,
            expect=Status.SUBMITTING,
            where={"next_attempt_at": job.next_attempt_at},
            next_attempt_at=None,
            error_code="paused",
            error_message=_paused_note(),
        )
        return
    if not take(job, _http_lease()):
        return
    client = KlingClient.from_settings()
    if job.error_code == "outcome_unknown" and _adopt_existing(job, client):
        return
    try:
        payload = _create_payload(job)
    except OSError as exc:
        # Nothing was sent: safe to try again, then give up with a reason.
        log.warning("could not read the inputs of %s: %s", job.code, exc, extra=job_extra(job))
        if job.attempts >= MAX_UNREADABLE_INPUTS:
            fail(
                job,
                Status.SUBMITTING,
                "inputs_unreadable",
                "The portrait or voice-over could not be read from this server's "
                "storage, so nothing was sent to Kling. Tell the operator, then retry.",
            )
            _dispatch_on_commit()
        else:
            release(job, retry_delay(job.attempts, first=5.0, cap=300.0))
        return
    try:
        task = client.create_task(**payload)
    except KlingError as exc:
        _submit_failed(job, exc, client)
        return
    _adopt(job, task)


def _adopt_existing(job: AvatarJob, client: KlingClient) -> bool:
    """After a create of unknown outcome: True unless Kling definitely has no task for us.

    Adopts the task when it exists. When the lookup itself fails, the job stays in
    `submitting` and tries again later: resubmitting blindly could make a second task.
    """
    try:
        existing = client.find_by_external_id(job.external_task_id)
    except KlingError as exc:
        log.info("lookup for %s failed: %s", job.code, exc, extra=job_extra(job))
        if exc.kind == ErrorKind.OPERATOR:
            pause_submissions(exc)
        release(
            job,
            retry_delay(job.attempts, first=2.0, cap=300.0),
            error_message="Checking with Kling whether it received this job.",
        )
        return True
    if existing is None:
        return False
    _adopt(job, existing)
    return True


def _create_payload(job: AvatarJob) -> dict[str, Any]:
    with job.portrait.file.open("rb") as fh:
        image = fh.read()
    payload: dict[str, Any] = {
        "image": image,
        "prompt": job.prompt,
        "mode": job.mode,
        "external_task_id": job.external_task_id,
        "callback_url": callback_url(job),
    }
    if job.watermark is not None:  # the API caller's watermark_info, passed on as given
        payload["watermark"] = job.watermark
    if job.kling_audio_id:
        payload["audio_id"] = job.kling_audio_id
    elif job.audio is not None:
        # A fresh Kling TTS id when the voice-over has one; our stored copy otherwise.
        payload.update(audio_for_kling(job.audio))
    return payload


def _submit_failed(job: AvatarJob, exc: KlingError, client: KlingClient) -> None:
    log.info(
        "create for %s failed: %s %s (%s)",
        job.code,
        exc.code,
        exc.message,
        exc.kind,
        extra=job_extra(job),
    )
    if exc.kind == ErrorKind.DUPLICATE:
        # Kling has a task with our id already: it is this job's. Adopt it (or try later).
        if not _adopt_existing(job, client):
            release(job, retry_delay(job.attempts), error_code="outcome_unknown")
        return
    if exc.kind == ErrorKind.RETRYABLE:
        if exc.outcome_unknown:
            release(
                job,
                retry_delay(job.attempts, first=2.0),
                error_code="outcome_unknown",
                error_message="Checking with Kling whether it received this job.",
            )
        else:
            # Known not to exist at Kling (1302/1303/refused connection): wait for a slot.
            job.transition(
                Status.QUEUED,
                expect=Status.SUBMITTING,
                where={"next_attempt_at": job.next_attempt_at},
                next_attempt_at=later(retry_delay(job.attempts)),
                error_code=f"kling_{exc.code}" if exc.code else "kling_unreachable",
                error_message=_waiting_note(exc),
            )
        return
    if exc.kind == ErrorKind.OPERATOR:
        pause_submissions(exc)
        if exc.outcome_unknown:
            release(job, OPERATOR_PAUSE.total_seconds(), error_code="outcome_unknown")
        else:
            job.transition(
                Status.QUEUED,
                expect=Status.SUBMITTING,
                next_attempt_at=None,
                where={"next_attempt_at": job.next_attempt_at},
                error_code="paused",
                error_message=_paused_note(),
            )
        return
    if exc.outcome_unknown:  # never fail a job that may have a task at Kling
        release(job, retry_delay(job.attempts, first=2.0, cap=300.0), error_code="outcome_unknown")
        return
    message = messages.job_error_message(exc.code, exc.message)
    if job.kling_audio_id and job.audio_id is None:
        # A pasted audio id of unknown age: Kling forgets them after 30 days.
        message = (
            "Kling refused the audio id (ids expire 30 days after they were made): upload the "
            f"voice-over as a file instead. {messages.NOT_CHARGED} Kling said: {exc.message}"
        )
    fail(
        job,
        Status.SUBMITTING,
        f"kling_{exc.code}" if exc.code else "kling_refused",
        message,
    )
    _dispatch_on_commit()


def _waiting_note(exc: KlingError) -> str:
    if exc.code == 1303:
        return "Waiting for a free Kling slot: all of the account's slots are busy."
    if exc.code == 1302:
        return "Kling asked us to slow down: trying again in a moment."
    return "Kling is busy or unreachable: trying again in a moment."


def _paused_note() -> str:
    return "Waiting: Kling submissions are paused until the operator fixes the account."


def _adopt(job: AvatarJob, task: KlingTask) -> None:
    """Record Kling's task for this job (from a create reply or a lookup)."""
    now = timezone.now()
    deadline = now + timedelta(seconds=settings.KLING_JOB_DEADLINE_SECONDS)
    target = Status.PROCESSING if task.status == "processing" else Status.SUBMITTED
    fields: dict[str, Any] = {}
    if target == Status.PROCESSING:
        fields["submitted_at"] = now
    adopted = job.transition(
        target,
        expect=Status.SUBMITTING,
        task_id=task.task_id,
        attempts=0,
        next_attempt_at=later(poll_delay(1)),
        deadline_at=deadline,
        error_code="",
        error_message="",
        **fields,
    )
    if adopted and task.status in ("succeed", "failed"):
        _on_task(job, task)


def _track(job: AvatarJob) -> None:
    if not take(job, _http_lease()):
        return
    client = KlingClient.from_settings()
    try:
        task = client.get_task(job.task_id)
    except KlingError as exc:
        _track_failed(job, exc, client)
        return
    _on_task(job, task)


def _on_task(job: AvatarJob, task: KlingTask) -> None:
    if task.status == "succeed" and task.videos:
        video = task.videos[0]
        moved = job.transition(
            Status.DOWNLOADING,
            expect=(Status.SUBMITTED, Status.PROCESSING),
            where={"next_attempt_at": job.next_attempt_at},
            source_url=video.url,
            units_charged=_units(task.units),
            duration=video.duration,
            attempts=0,
            next_attempt_at=None,
            error_code="",
            error_message="",
        )
        if moved:
            dispatch(submit_one_here=True)
            download(job)
        return
    if task.status == "failed" or task.status == "succeed":  # succeed without a video
        fail(
            job,
            (Status.SUBMITTED, Status.PROCESSING),
            "kling_task_failed",
            messages.task_failed_message(task.status_msg or "no video returned"),
        )
        _dispatch_on_commit()
        return
    if task.status == "processing" and job.status == Status.SUBMITTED:
        job.transition(
            Status.PROCESSING,
            expect=Status.SUBMITTED,
            where={"next_attempt_at": job.next_attempt_at},
            next_attempt_at=job.next_attempt_at,
        )
    if job.deadline_at and timezone.now() > job.deadline_at:
        # Flag it for a person instead of polling forever; a callback or an admin's
        # "query Kling now" still wakes it, and a slow check catches a late success.
        release(
            job,
            OVERDUE_RECHECK.total_seconds(),
            error_code="overdue",
            error_message=(
                "Kling has worked on this video for longer than expected. It is kept and will be "
                "saved if Kling finishes; an admin has been asked to look at it."
            ),
        )
        return
    cleared = {"error_code": ""} if _not_found_count(job) else {}
    release(job, poll_delay(job.attempts + 1), **cleared)


def _track_failed(job: AvatarJob, exc: KlingError, client: KlingClient) -> None:
    log.info(
        "query for %s failed: %s %s (%s)",
        job.code,
        exc.code,
        exc.message,
        exc.kind,
        extra=job_extra(job),
    )
    if exc.kind == ErrorKind.OPERATOR:
        pause_submissions(exc)
        release(job, OPERATOR_PAUSE.total_seconds())
        return
    missing = _not_found_count(job) + 1 if exc.kind == ErrorKind.NOT_FOUND else 0
    if missing and missing < MAX_LOST_TASK_QUERIES:
        # Count "not found" answers in a row; one passing glitch must not fail a live task.
        release(job, retry_delay(missing, first=5.0, cap=300.0), error_code=f"not_found:{missing}")
        return
    if missing >= MAX_LOST_TASK_QUERIES:
        fail(
            job,
            (Status.SUBMITTED, Status.PROCESSING),
            "kling_task_lost",
            "Kling no longer knows this task. Try again; " + messages.NOT_CHARGED,
        )
        _dispatch_on_commit()
        return
    release(job, retry_delay(job.attempts, first=2.0, cap=300.0))


def _not_found_count(job: AvatarJob) -> int:
    prefix, _, count = job.error_code.partition(":")
    return int(count) if prefix == "not_found" and count.isdigit() else 0


def _units(value: Any) -> Decimal | None:
    return Decimal(str(value)) if value not in (None, "") else None


AUDIO_ID_MAX_AGE = timedelta(days=25)  # Kling refuses ids older than 30 days; keep a margin


def audio_for_kling(asset: Asset, *, now: datetime | None = None) -> dict[str, Any]:
    """The audio half of a Kling create: {"audio_id": id} or {"sound_file": bytes}.

    The id is used only while it is younger than AUDIO_ID_MAX_AGE; an older one, or one of
    unknown age, is replaced by our stored copy, which Kling accepts whatever its age.
    """
    now = now or timezone.now()
    made_at = asset.kling_audio_made_at
    if asset.kling_audio_id and made_at is not None and now - made_at < AUDIO_ID_MAX_AGE:
        return {"audio_id": asset.kling_audio_id}
    with asset.file.open("rb") as fh:
        return {"sound_file": fh.read()}
