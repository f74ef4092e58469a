"""A confirmed batch: its jobs made (its voice-overs first, by the worker), then followed.

`batch_create` makes a batch whose rows all name their files at once: the Batch and every job
in one transaction. Rows with a script need a voice-over synthesized first, a fifth of a
second offline and seconds from Kling per script, so 200 of them would outlast a web request:
such a batch is stored PREPARING with its confirmed plan, and `batch_prepare` (a worker task)
makes the voice-overs and then every job or none. The library keeps each voice-over as it is
made, and the same script is never synthesized twice, so trying again after a failure makes
only the rest. A lost wake-up or a killed worker costs a delay only: the ticker's
`batch_sweep` wakes a preparing batch whose lease ran out.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django_q.tasks import async_task

from jobs.cards import generating_estimate
from jobs.models import Asset, AvatarJob, Batch, Team
from jobs.services.jobs import clean_job_name, job_cancel, job_create, job_retry
from jobs.services.sharing import share_create
from jobs.services.voiceovers import voiceover_create

log = logging.getLogger(__name__)
Status = AvatarJob.Status
State = Batch.State

PREPARE_LEASE_SECONDS = 120.0  # renewed after every voice-over: a worker seen dead loses it
PREPARE_ATTEMPTS = 3  # workers that died preparing the same batch before it is failed
WAKE_DEDUP_SECONDS = 60


# --------------------------------------------------------------------------- making it


def _plan_assets(team: Team, plan: list[dict[str, Any]]) -> dict[str, Asset]:
    codes = {entry[k] for entry in plan for k in ("portrait", "audio") if entry[k]}
    assets = {str(a.code): a for a in Asset.objects.for_team(team).filter(code__in=codes)}
    if codes - assets.keys():
        raise ValidationError(
            "A file this batch uses was deleted from the library meanwhile: check the batch again.",
            code="missing",
        )
    return assets


def _voice_key(entry: dict[str, Any]) -> tuple[str, str, float, bool]:
    return (entry["script"], entry["voice"], float(entry["speed"]), entry["mode"] == "draft")


def _make_jobs(
    batch: Batch, plan: list[dict[str, Any]], assets: dict[str, Asset], spoken: dict[int, Asset]
) -> None:
    """Every job of the plan, in the caller's transaction: one refused job refuses them all."""
    for entry in plan:
        try:
            job_create(
                team=batch.team,
                user=batch.created_by,
                portrait=assets[entry["portrait"]],
                audio=spoken.get(entry["row"]) or assets[entry["audio"]],
                prompt=entry["prompt"],
                mode=entry["mode"],
                name=entry["name"],
                source=AvatarJob.Source.BATCH,
                batch=batch,
                batch_row=entry["row"],
            )
        except ValidationError as exc:
            raise ValidationError(
                f"Row {entry['row']}: {' '.join(exc.messages)} Nothing was queued.",
                code=exc.code,
            ) from None


def batch_create(
    *,
    team: Team,
    user: User | None,
    plan: list[dict[str, Any]],
    name: str,
    source: str = Batch.Source.WEB,
    code: uuid.UUID | None = None,
) -> Batch:
    """Make the batch: with every job at once, or PREPARING when rows have scripts to speak.

    `code` (from the confirmation page) makes a repeated confirm harmless: the batch exists,
    and the second attempt is refused with code "exists".
    """
    if code is not None and Batch.objects.filter(code=code).exists():
        raise ValidationError("This batch was created already.", code="exists")
    assets = _plan_assets(team, plan)
    voices = {_voice_key(entry) for entry in plan if entry["script"]}
    try:
        with transaction.atomic():
            batch = Batch.objects.create(
                team=team,
                created_by=user,
                name=clean_job_name(name),
                source=source,
                state=State.PREPARING if voices else State.READY,
                plan=plan if voices else [],
                voiceovers_needed=len(voices),
                next_attempt_at=timezone.now() if voices else None,
                **({"code": code} if code else {}),
            )
            if voices:
                transaction.on_commit(partial(batch_wake, batch.pk))
            else:
                _make_jobs(batch, plan, assets, {})
    except IntegrityError:  # the same confirmation, twice at once
        raise ValidationError("This batch was created already.", code="exists") from None
    return batch


def batch_wake(batch_id: int) -> None:
    """Ask the worker to prepare a batch; at most once per lease however many ask."""
    row = Batch.objects.filter(pk=batch_id, state=State.PREPARING).values_list(
        "attempts", "next_attempt_at"
    )
    if not (found := row.first()):
        return
    key = f"wake-batch:{batch_id}:{found[0]}:{found[1].timestamp() if found[1] else '-'}"
    if not cache.add(key, 1, timeout=WAKE_DEDUP_SECONDS):
        return
    try:
        async_task("jobs.tasks.prepare_batch", batch_id, task_name=f"batch-{batch_id}")
    except Exception:
        cache.delete(key)
        log.exception("could not enqueue batch %s; the sweep will pick it up", batch_id)


def batch_sweep(now: datetime | None = None) -> int:
    """Wake every preparing batch that is due (new, or its worker's lease ran out)."""
    due = Batch.objects.filter(state=State.PREPARING, next_attempt_at__lte=now or timezone.now())
    ids = list(due.values_list("pk", flat=True)[:50])
    for batch_id in ids:
        batch_wake(batch_id)
    return len(ids)


def _lease() -> datetime:
    return timezone.now() + timedelta(seconds=PREPARE_LEASE_SECONDS)


def _fail_preparing(batch_id: int, problem: str) -> None:
    Batch.objects.filter(pk=batch_id, state=State.PREPARING).update(
        state=State.FAILED, problem=problem, next_attempt_at=None
    )


def _make_voiceovers(batch: Batch) -> dict[int, Asset] | None:
    """Each row's voice-over, made once per script, voice, speed and engine; None when the
    batch was canceled meanwhile."""
    made: dict[tuple[str, str, float, bool], Asset] = {}
    spoken: dict[int, Asset] = {}
    for entry in batch.plan:
        if not entry["script"]:
            continue
        key = _voice_key(entry)
        if key not in made:
            try:
                made[key] = voiceover_create(
                    team=batch.team,
                    user=batch.created_by,
                    text=entry["script"],
                    voice_id=entry["voice"],
                    speed=entry["speed"],
                    offline=key[3] or None,
                )
            except ValidationError as exc:
                raise ValidationError(
                    f"Row {entry['row']}: {' '.join(exc.messages)} Nothing was queued; the "
                    "voice-overs made so far are kept in the library, so trying again makes "
                    "only the rest.",
                    code="voiceover",
                ) from None
            still = Batch.objects.filter(pk=batch.pk, state=State.PREPARING).update(
                voiceovers_made=len(made), next_attempt_at=_lease()
            )
            if not still:
                return None
        spoken[entry["row"]] = made[key]
    return spoken


def batch_prepare(batch_id: int) -> str:
    """The worker's part of a batch with scripts: its voice-overs, then all its jobs or none.

    Taken with a lease (a conditional UPDATE), so two workers never prepare one batch; safe to
    run again after a crash. Returns what happened, for the task's result.
    """
    now = timezone.now()
    taken = (
        Batch.objects.filter(pk=batch_id, state=State.PREPARING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .update(next_attempt_at=_lease(), attempts=F("attempts") + 1)
    )
    if not taken:
        return "not due"
    batch = Batch.objects.select_related("team", "created_by").get(pk=batch_id)
    if batch.attempts > PREPARE_ATTEMPTS:
        _fail_preparing(
            batch_id,
            f"The worker stopped {PREPARE_ATTEMPTS} times while making this batch's "
            "voice-overs. Nothing was queued; try again, and if it stops again, ask the "
            "studio's admin to look at the worker's log.",
        )
        return "failed"
    try:
        assets = _plan_assets(batch.team, batch.plan)
        spoken = _make_voiceovers(batch)
        if spoken is None:
            return "canceled"
        with transaction.atomic():
            locked = Batch.objects.select_for_update().get(pk=batch_id)
            if locked.state != State.PREPARING:
                return "canceled"
            locked.team, locked.created_by = batch.team, batch.created_by
            _make_jobs(locked, locked.plan, assets, spoken)
            Batch.objects.filter(pk=batch_id).update(
                state=State.READY, plan=[], problem="", next_attempt_at=None
            )
    except ValidationError as exc:
        _fail_preparing(batch_id, " ".join(exc.messages))
        return "failed"
    return "ready"


# --------------------------------------------------------------------------- following it


@dataclass
class Progress:
    rows: list[AvatarJob]  # the newest job of each row, in row order
    done: int
    running: int
    queued: int
    failed: int
    canceled: int
    state: str = State.READY
    problem: str = ""
    planned: int = 0  # rows confirmed, while the batch is not yet queued
    voiceovers_made: int = 0
    voiceovers_needed: int = 0
    eta_seconds: float | None = None  # until every row has finished, from the team's history
    eta_from: datetime | None = None  # when it was judged: the page counts down from there
    eta_from_pace: bool = False  # from the batch's own pace, else from the team's history

    @property
    def total(self) -> int:
        return len(self.rows) if self.state == State.READY else self.planned

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.canceled

    @property
    def preparing(self) -> bool:
        return self.state == State.PREPARING

    @property
    def is_final(self) -> bool:
        if self.state != State.READY:
            return self.state != State.PREPARING
        return self.running == 0 and self.queued == 0

    @property
    def version(self) -> str:
        """Changes whenever a row does: the poll answers 204 while it stays the same."""
        newest = max((job.updated for job in self.rows), default=None)
        stamp = newest.timestamp() if newest else 0
        return f"{self.state}-{self.voiceovers_made}-{len(self.rows)}-{stamp:.6f}"


def _parallel(mode: str) -> int:
    """How many jobs of a mode run at once: the Kling account's slots, or the draft workers."""
    if mode == AvatarJob.Mode.DRAFT:
        return int(str(settings.Q_CLUSTER.get("workers", 1)))
    return int(settings.KLING_MAX_CONCURRENCY)


def batch_eta(
    batch: Batch, rows: list[AvatarJob], now: datetime | None = None
) -> tuple[float | None, bool]:
    """Seconds until every row has finished (None: nothing to go on, or nothing left), and
    whether they come from the batch's own pace.

    From the batch's own pace (rows finished per second since its first row began) once a
    full turn of rows has finished, as many as run at once; before that, from how long the
    team's jobs of each mode usually take: what the running rows have left, then the queued
    ones a turn at a time. Drafts and Kling jobs run side by side, so the slower mode decides.
    """
    left = [job for job in rows if job.status in AvatarJob.ACTIVE]
    if not left:
        return None, False
    now = now or timezone.now()
    finished = [job for job in rows if job.status not in AvatarJob.ACTIVE and job.finished_at]
    begun = [job.processing_at for job in rows if job.processing_at]
    turn = max(_parallel(job.mode) for job in left)
    if begun and len(finished) >= turn:
        elapsed = (now - min(begun)).total_seconds()
        if elapsed > 0:
            return len(left) * elapsed / len(finished), True
    per_mode: list[float] = []
    for mode in {job.mode for job in left}:
        usual = generating_estimate(batch.team_id, mode)
        if usual is None:
            return None, False
        running = [job for job in left if job.mode == mode and job.processing_at]
        queued = sum(1 for job in left if job.mode == mode and not job.processing_at)
        running_left = max(
            (
                max(usual - (now - job.processing_at).total_seconds(), 0.0)
                for job in running
                if job.processing_at
            ),
            default=0.0,
        )
        per_mode.append(running_left + usual * math.ceil(queued / _parallel(mode)))
    return max(per_mode), False


def batch_progress(batch: Batch) -> Progress:
    """The batch's rows (one query): a retried row is shown by its newest job."""
    latest: dict[int, AvatarJob] = {}
    for job in batch.jobs.order_by("batch_row", "id").only(
        "code",
        "name",
        "status",
        "mode",
        "batch_row",
        "error_message",
        "video",
        "updated",
        "created_by_id",
        "team_id",
        "duration",
        "processing_at",
        "finished_at",
    ):
        latest[job.batch_row or 0] = job
    rows = [latest[n] for n in sorted(latest)]
    count = Counter(job.status for job in rows)
    now = timezone.now()
    eta, pace = batch_eta(batch, rows, now)
    return Progress(
        rows=rows,
        done=count[Status.SUCCEEDED],
        running=sum(count[s] for s in AvatarJob.ACTIVE if s != Status.QUEUED),
        queued=count[Status.QUEUED],
        failed=count[Status.FAILED],
        canceled=count[Status.CANCELED],
        state=batch.state,
        problem=batch.problem,
        planned=len(batch.plan),
        voiceovers_made=batch.voiceovers_made,
        voiceovers_needed=batch.voiceovers_needed,
        eta_seconds=eta,
        eta_from=now,
        eta_from_pace=pace,
    )


def batch_cancel(*, batch: Batch) -> int:
    """Cancel every row still waiting in the queue (rows already running go on); a batch not
    yet queued is canceled whole. Returns how many rows were canceled."""
    if batch.state in (State.PREPARING, State.FAILED):
        stopped = Batch.objects.filter(pk=batch.pk, state=batch.state).update(
            state=State.CANCELED, next_attempt_at=None
        )
        return len(batch.plan) if stopped else 0
    return sum(
        job_cancel(job=job) for job in batch_progress(batch).rows if job.status == Status.QUEUED
    )


def batch_retry(*, batch: Batch, user: User) -> int:
    """A fresh job for every failed row, with the same inputs (all or none: the quota); a batch
    whose preparation failed is prepared again. Returns how many rows are tried again."""
    if batch.state == State.FAILED:
        with transaction.atomic():
            again = Batch.objects.filter(pk=batch.pk, state=State.FAILED).update(
                state=State.PREPARING, problem="", attempts=0, next_attempt_at=timezone.now()
            )
            transaction.on_commit(partial(batch_wake, batch.pk))
        return len(batch.plan) if again else 0
    failed = [job.pk for job in batch_progress(batch).rows if job.status == Status.FAILED]
    jobs = AvatarJob.objects.filter(pk__in=failed).select_related(
        "team", "batch", "portrait", "audio"
    )
    with transaction.atomic():
        for job in jobs:
            job_retry(job=job, user=user)
    return len(failed)


def batch_share(
    *, batch: Batch, by: User, expires_at: datetime | None, allow_download: bool
) -> dict[int, str]:
    """A share link for every finished row's video, all or none: {row: token}. The tokens are
    shown once (only their hashes are kept), so the caller hands them out at once."""
    done = [job for job in batch_progress(batch).rows if job.status == Status.SUCCEEDED]
    if not done:
        raise ValidationError("No row has finished yet: there is no video to share.")
    tokens: dict[int, str] = {}
    with transaction.atomic():
        for job in done:
            _, tokens[job.batch_row or 0] = share_create(
                job=job, by=by, expires_at=expires_at, allow_download=allow_download
            )
    return tokens
