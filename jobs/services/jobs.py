"""A job's workflows: create (from stored or new inputs), advance, cancel, retry, notify, poke.

The lifecycle itself is drawn in jobs/models.py; each engine (jobs/engines/draft.py,
jobs/engines/kling.py) moves its jobs along it. The web form, `manage.py generate_avatar` and
the API all make jobs through `job_create`, which stores new uploads first (`store_inputs`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from types import ModuleType

from django.conf import settings
from django.contrib.auth.models import User as Account
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobs import kling
from jobs.api.callbacks import api_callback_if_changed
from jobs.engines import draft as draft_engine
from jobs.engines import kling as kling_engine
from jobs.engines.lifecycle import job_extra, wake
from jobs.links import absolute, callbacks_enabled
from jobs.media.audio import ValidAudio
from jobs.media.portraits import ValidPortrait
from jobs.models import JOB_NAME_MAX_CHARS, Asset, AvatarJob, Batch, Team
from jobs.services.assets import asset_store
from jobs.services.quotas import check_quota
from jobs.services.units import check_unit_budget

log = logging.getLogger(__name__)

# How long a queued job may wait for its wake-up message before the reconciler re-drives it.
QUEUE_GRACE = timedelta(seconds=60)

User = Account | None


def engine_for(job: AvatarJob) -> ModuleType:
    """The engine that makes this job's video: each has advance(job); Kling's has dispatch()."""
    return draft_engine if job.mode == AvatarJob.Mode.DRAFT else kling_engine


def check_mode(mode: str) -> None:
    """Refuse Kling modes while no Kling credentials are configured."""
    if mode not in AvatarJob.Mode.values:
        raise ValidationError(
            f"Mode {mode!r} does not exist: choose draft, std or pro.", code="mode"
        )
    if mode != AvatarJob.Mode.DRAFT and not kling.is_configured():
        raise ValidationError(
            f"{mode} needs a Kling key, and none is configured on this server: choose draft "
            "(free, offline), or ask the operator to set KLING_ACCESS_KEY and KLING_SECRET_KEY "
            "(or KLING_API_KEY).",
            code="mode",
        )


DEFAULT_NAME_WORDS = 6
DEFAULT_NAME_MAX_CHARS = 60


def default_job_name(*, prompt: str, script: str, portrait_name: str, created: datetime) -> str:
    """A job's name when none was given: the first words of the prompt, else of the voice-over's
    script, else the portrait's name and the day ("portrait · 2 Dec").

    About six words, at most 60 characters, cut on a word boundary with "…" when shortened.
    Plain values only, so the migration that named the old jobs (0009) uses this very rule.
    """
    for text in (prompt, script):
        words = text.split()
        if words:
            return _first_words(words)
    stem = portrait_name.rsplit(".", 1)[0].strip() if "." in portrait_name else portrait_name
    day = timezone.localtime(created) if timezone.is_aware(created) else created
    stem = _first_words(stem.split()) if stem.strip() else "avatar"
    return f"{stem} · {day.day} {day:%b}"


def _first_words(words: list[str]) -> str:
    kept = words[:DEFAULT_NAME_WORDS]
    # Room for the ellipsis: the name with it stays within the limit.
    while len(kept) > 1 and len(" ".join(kept)) > DEFAULT_NAME_MAX_CHARS - 1:
        kept.pop()
    text = " ".join(kept)
    if len(text) > DEFAULT_NAME_MAX_CHARS:  # one very long word
        text = text[: DEFAULT_NAME_MAX_CHARS - 1]
    if text != " ".join(words):
        text = text.rstrip(",;:.!?-–—") + "…"
    return text


def clean_job_name(value: str | None) -> str:
    """A name as typed, stripped; refused with what to fix when empty or too long."""
    name = " ".join((value or "").split())  # one line: no newlines or runs of spaces
    if not name:
        raise ValidationError("The name is empty: give the job a name.", code="name")
    if len(name) > JOB_NAME_MAX_CHARS:
        raise ValidationError(
            f"The name is {len(name)} characters long: shorten it to {JOB_NAME_MAX_CHARS} or "
            "fewer.",
            code="name",
        )
    return name


def job_create(
    *,
    team: Team,
    user: User,
    portrait: Asset | ValidPortrait,
    audio: Asset | ValidAudio | None = None,
    kling_audio_id: str = "",
    prompt: str = "",
    mode: str = AvatarJob.Mode.DRAFT,
    notify_by_email: bool = False,
    name: str = "",
    source: str = AvatarJob.Source.WEB,
    batch: Batch | None = None,
    batch_row: int | None = None,
) -> AvatarJob:
    """Queue a new job; the worker is woken once the row is committed.

    The portrait and voice-over are library files, or validated uploads that are stored first
    (see store_inputs). Call it outside any transaction of your own when it is given uploads.
    Without a `name` the job gets default_job_name's.
    """
    check_mode(mode)
    if name.strip():
        name = clean_job_name(name)
    portrait, audio = store_inputs(team=team, user=user, portrait=portrait, audio=audio)
    if (audio is None) == (not kling_audio_id):
        raise ValidationError("Give exactly one voice-over: a file or a Kling audio id.")
    if portrait.team_id != team.pk or portrait.kind != Asset.Kind.PORTRAIT:
        raise ValidationError("That portrait is not in this team's library.")
    if audio is not None and (audio.team_id != team.pk or audio.kind != Asset.Kind.AUDIO):
        raise ValidationError("That voice-over is not in this team's library.")
    with transaction.atomic():
        # Lock the team row so two jobs cannot both squeeze under the quota.
        Team.objects.select_for_update().filter(pk=team.pk).first()
        # A pasted Kling audio id's length is unknown: reserve the longest allowed.
        seconds = audio.duration if audio else settings.KLING_MAX_AUDIO_SECONDS
        check_quota(team=team, mode=mode, seconds=seconds)
        check_unit_budget(team=team, mode=mode, seconds=seconds)
        created = timezone.now()
        name = name or default_job_name(
            prompt=prompt,
            script=audio.script if audio else "",
            portrait_name=portrait.name,
            created=created,
        )
        job = AvatarJob.objects.create(
            team=team,
            name=name,
            source=source,
            created=created,
            created_by=user,
            portrait=portrait,
            audio=audio,
            kling_audio_id=kling_audio_id,
            prompt=prompt,
            mode=mode,
            notify_by_email=notify_by_email,
            batch=batch,
            batch_row=batch_row,
            next_attempt_at=created
            + (QUEUE_GRACE if mode == AvatarJob.Mode.DRAFT else timedelta(0)),
        )
        transaction.on_commit(lambda: _start(job))
    return job


def store_inputs(
    *,
    team: Team,
    user: User,
    portrait: Asset | ValidPortrait,
    audio: Asset | ValidAudio | None,
) -> tuple[Asset, Asset | None]:
    """The job's portrait and voice-over as library files: new, validated ones are stored.

    Stored before the job is made and kept whatever happens to it, so a refused job (over the
    quota, say) leaves its files in the library to be picked again, and no file is orphaned.
    """
    if not isinstance(portrait, Asset):
        portrait = asset_store(team=team, user=user, valid=portrait)
    if audio is not None and not isinstance(audio, Asset):
        audio = asset_store(team=team, user=user, valid=audio)
    return portrait, audio


def _start(job: AvatarJob) -> None:
    """After a job is committed: a draft is woken; a Kling job takes a free slot if any."""
    if job.mode == AvatarJob.Mode.DRAFT:
        wake(job.pk)
        return
    try:
        kling_engine.dispatch()
    except Exception:
        log.exception(
            "dispatch after creating %s failed; the ticker will retry",
            job.code,
            extra=job_extra(job),
        )


def job_advance(*, job_id: int) -> None:
    """Do the next step of one job, whatever its state. Safe to call any number of times."""
    job = AvatarJob.objects.select_related("portrait", "audio", "team").filter(pk=job_id).first()
    if job is None or job.is_terminal:
        return
    engine_for(job).advance(job)
    if job.client_callback_url:
        api_callback_if_changed(job_id=job_id)
    if job.notify_by_email:
        job_notify(job_id=job_id)


def job_notify(*, job_id: int) -> bool:
    """Email the creator once when a job that asked for it has finished."""
    claimed = AvatarJob.objects.filter(
        pk=job_id,
        notify_by_email=True,
        notified_at__isnull=True,
        status__in=(AvatarJob.Status.SUCCEEDED, AvatarJob.Status.FAILED),
    ).update(notified_at=timezone.now())
    if not claimed:
        return False
    job = AvatarJob.objects.select_related("created_by", "portrait").get(pk=job_id)
    if not job.created_by or not job.created_by.email:
        return False
    done = job.status == AvatarJob.Status.SUCCEEDED
    subject = f"Your avatar video is {'ready' if done else 'not made'}: {job.name}"
    # A worker has no request to take the address from: without PUBLIC_BASE_URL the only
    # address it knows is the loopback one, useless in a mailbox, so the email goes without.
    if callbacks_enabled():
        link = f"\n{absolute(job.get_absolute_url())}\n"
    else:
        link = ""
        log.warning(
            "Job %s: notification sent without a link, as PUBLIC_BASE_URL is not set",
            job.code,
            extra=job_extra(job),
        )
    if done:
        body = f"Your {job.mode} video from {job.portrait.name} is ready.\n{link}"
    else:
        body = (
            f"Your {job.mode} video from {job.portrait.name} could not be made:\n"
            f"{job.error_message}\n{link}"
        )
    send_mail(subject, body, None, [job.created_by.email], fail_silently=True)
    return True


def job_cancel(*, job: AvatarJob) -> bool:
    """Cancel a job that has not been sent to Kling (or rendered) yet."""
    canceled = job.transition(
        AvatarJob.Status.CANCELED,
        expect=AvatarJob.Status.QUEUED,
        next_attempt_at=None,
        error_code="",
        error_message="",
    )
    if canceled and job.client_callback_url:
        transaction.on_commit(lambda: api_callback_if_changed(job_id=job.pk))
    return canceled


def job_rename(*, job: AvatarJob, name: str) -> None:
    """Give the job a new name (checked by clean_job_name); its cards are drawn again."""
    job.name = clean_job_name(name)
    job.updated = timezone.now()  # cards are cached by `updated`
    AvatarJob.objects.filter(pk=job.pk).update(name=job.name, updated=job.updated)


def job_delete(*, job: AvatarJob) -> None:
    """Delete a job, its share links and its result files; the library files it used stay.

    A job still waiting in the queue is canceled first (so no worker starts it); one a worker
    or Kling is already making is refused, since deleting it would orphan Kling's task and the
    files the worker is about to save. The files go once the delete is committed.
    """
    if job.is_active and not job_cancel(job=job):
        raise ValidationError(
            f"This job is {job.get_status_display().lower()} and cannot be stopped now: wait "
            "until it is done or has failed, then delete it.",
            code="running",
        )
    files = [f.name for f in (job.video, job.poster) if f]
    with transaction.atomic():
        job.delete()  # its share links are deleted with it (CASCADE): their pages 404
        transaction.on_commit(lambda: _delete_files(files))


def _delete_files(names: list[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            log.warning("could not delete %s; it is an orphan now", name, exc_info=True)


def reconcile(*, now: datetime | None = None) -> int:
    """Wake every active job that is due: lost messages and dead workers cost a delay only.

    Runs every second in each worker (jobs.ticker) and every minute from django-q2's
    scheduler; returns how many jobs were due. Kling jobs waiting for a slot are not woken one
    by one (they would flood the queue): one dispatch hands out whatever slots are free.
    """
    due = AvatarJob.objects.due(now)
    waiting_for_slot = Q(status=AvatarJob.Status.QUEUED) & ~Q(mode=AvatarJob.Mode.DRAFT)
    ids = list(due.exclude(waiting_for_slot).values_list("pk", flat=True)[:500])
    for job_id in ids:
        wake(job_id)
    if due.filter(waiting_for_slot).exists():
        kling_engine.dispatch()
    return len(ids)


def job_retry(*, job: AvatarJob, user: User) -> AvatarJob:
    """Make a fresh job with the same inputs (a new UUID, so a new Kling task id)."""
    if job.status != AvatarJob.Status.FAILED:
        raise ValidationError("Only a failed job can be retried.")
    with transaction.atomic():  # the worker is woken on commit, with the watermark set
        fresh = job_create(
            team=job.team,
            user=user,
            portrait=job.portrait,
            audio=job.audio,
            kling_audio_id=job.kling_audio_id,
            prompt=job.prompt,
            mode=job.mode,
            name=job.name,
            source=job.source if job.batch_id else AvatarJob.Source.WEB,
            batch=job.batch,
            batch_row=job.batch_row,
        )
        if job.watermark is not None:  # an API caller's watermark_info goes with its inputs
            AvatarJob.objects.filter(pk=fresh.pk).update(watermark=job.watermark)
            fresh.watermark = job.watermark
    return fresh


def job_poke(*, job: AvatarJob) -> bool:
    """Make an active job take its next step now (the admin's "query Kling now")."""
    if job.status not in AvatarJob.ACTIVE:
        return False
    poked = job.transition(job.status, expect=job.status, next_attempt_at=timezone.now())
    if poked:
        transaction.on_commit(lambda: wake(job.pk))
    return poked
