"""Workflows that touch several models: keyword-only, typed, atomic, side effects on commit.

The job lifecycle lives here (see the docstring of jobs.models). Tasks in jobs.tasks only load
an id and call one of these functions, so every step can also be driven from tests, commands
and the admin.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Sum, Value
from django.db.models.deletion import ProtectedError
from django.db.models.functions import Coalesce
from django.utils import timezone

from jobs import kling
from jobs.media import ValidAudio, ValidPortrait
from jobs.models import (
    ApiToken,
    Asset,
    AvatarJob,
    Membership,
    ShareLink,
    Team,
    TeamInvite,
    hash_token,
    new_token,
)

log = logging.getLogger(__name__)

# How long a queued job may wait for its wake-up message before the reconciler re-drives it.
QUEUE_GRACE = timedelta(seconds=60)
# How many times a worker may take up the same draft render before we give up on it.
MAX_RENDER_ATTEMPTS = 3


@transaction.atomic
def personal_team_create(*, user: AbstractBaseUser) -> Team:
    name = user.get_username()
    team = Team.objects.create(name=f"{name}'s team", personal=True)
    Membership.objects.create(user=user, team=team, role=Membership.Role.ADMIN)
    return team


def asset_store(
    *, team: Team, user: AbstractBaseUser | None, valid: ValidPortrait | ValidAudio
) -> Asset:
    """Store a validated file in the team's library, or return the copy it already has.

    The same bytes uploaded twice are stored once (by checksum, per team and kind).
    """
    kind = Asset.Kind.PORTRAIT if isinstance(valid, ValidPortrait) else Asset.Kind.AUDIO
    existing = Asset.objects.filter(team=team, kind=kind, sha256=valid.sha256).first()
    if existing is not None:
        return existing
    asset = Asset(
        team=team,
        created_by=user,
        kind=kind,
        name=valid.name,
        sha256=valid.sha256,
        size=valid.size,
        format=valid.format,
        width=getattr(valid, "width", None),
        height=getattr(valid, "height", None),
        duration=getattr(valid, "duration", None),
    )
    asset.file.save(f"upload.{valid.ext}", ContentFile(valid.content), save=False)
    try:
        with transaction.atomic():
            asset.save()
    except IntegrityError:
        # Someone stored the same file a moment ago: keep theirs, drop ours.
        asset.file.delete(save=False)
        return Asset.objects.get(team=team, kind=kind, sha256=valid.sha256)
    except BaseException:
        asset.file.delete(save=False)
        raise
    return asset


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


def job_create(
    *,
    team: Team,
    user: AbstractBaseUser | None,
    portrait: Asset,
    audio: Asset | None = None,
    kling_audio_id: str = "",
    prompt: str = "",
    mode: str = AvatarJob.Mode.DRAFT,
    notify_by_email: bool = False,
) -> AvatarJob:
    """Queue a new job; the worker is woken once the row is committed."""
    check_mode(mode)
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
        job = AvatarJob.objects.create(
            team=team,
            created_by=user,
            portrait=portrait,
            audio=audio,
            kling_audio_id=kling_audio_id,
            prompt=prompt,
            mode=mode,
            notify_by_email=notify_by_email,
            next_attempt_at=timezone.now()
            + (QUEUE_GRACE if mode == AvatarJob.Mode.DRAFT else timedelta(0)),
        )
        transaction.on_commit(lambda: _start(job))
    return job


def _start(job: AvatarJob) -> None:
    """After a job is committed: a draft is woken; a Kling job takes a free slot if any."""
    if job.mode == AvatarJob.Mode.DRAFT:
        wake(job.pk)
        return
    from jobs.engines import kling as kling_engine

    try:
        kling_engine.dispatch()
    except Exception:
        log.exception("dispatch after creating %s failed; the ticker will retry", job.code)


WAKE_DEDUP_SECONDS = 30


def wake(job_id: int) -> None:
    """Ask the worker to advance one job. Losing this message only delays the job.

    The same job in the same state is woken at most once per WAKE_DEDUP_SECONDS, however
    many tickers, callbacks and reconciler runs ask for it (cache.add is atomic).
    """
    from django_q.tasks import async_task

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


def job_advance(*, job_id: int) -> None:
    """Do the next step of one job, whatever its state. Safe to call any number of times."""
    job = AvatarJob.objects.select_related("portrait", "audio", "team").filter(pk=job_id).first()
    if job is None or job.is_terminal:
        return
    if job.mode == AvatarJob.Mode.DRAFT:
        _draft_step(job)
    else:
        from jobs.engines import kling as kling_engine

        kling_engine.advance(job)
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
    base = settings.PUBLIC_BASE_URL or "http://127.0.0.1:8000"
    done = job.status == AvatarJob.Status.SUCCEEDED
    subject = f"Your avatar video is {'ready' if done else 'not made'}: {job.portrait.name}"
    link = f"{base}{job.get_absolute_url()}"
    if done:
        body = f"Your {job.mode} video from {job.portrait.name} is ready.\n\n{link}\n"
    else:
        body = (
            f"Your {job.mode} video from {job.portrait.name} could not be made:\n"
            f"{job.error_message}\n\n{link}\n"
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


def job_fail(
    *, job: AvatarJob, code: str, message: str, expect: Any = None, lease: Any = None
) -> bool:
    """Fail the job with a reason; with `lease`, only while the caller still holds it."""
    expect = expect or AvatarJob.ACTIVE
    return job.transition(
        AvatarJob.Status.FAILED,
        expect=expect,
        where={"next_attempt_at": lease} if lease is not None else None,
        next_attempt_at=None,
        error_code=code,
        error_message=message,
    )


def reconcile(*, now: Any = None) -> int:
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
        from jobs.engines import kling as kling_engine

        kling_engine.dispatch()
    return len(ids)


# --- the draft engine's lifecycle -------------------------------------------------------------


def render_lease_seconds(job: AvatarJob) -> float:
    duration = job.audio.duration if job.audio else 300
    return 60 + 2 * (duration or 300)


def _draft_step(job: AvatarJob) -> None:
    now = timezone.now()
    lease_until = now + timedelta(seconds=render_lease_seconds(job))
    if job.status == AvatarJob.Status.QUEUED:
        claimed = job.transition(
            AvatarJob.Status.PROCESSING,
            expect=AvatarJob.Status.QUEUED,
            next_attempt_at=lease_until,
            attempts=job.attempts + 1,
        )
    elif (
        job.status == AvatarJob.Status.PROCESSING
        and job.next_attempt_at
        and job.next_attempt_at <= now
    ):
        # The worker that held this render died (its lease ran out): take it over.
        if job.attempts >= MAX_RENDER_ATTEMPTS:
            job_fail(
                job=job,
                code="render_crashed",
                expect=AvatarJob.Status.PROCESSING,
                lease=job.next_attempt_at,
                message=f"The draft renderer stopped {job.attempts} times on this job without "
                "finishing. Try again; if it keeps happening, tell the operator.",
            )
            return
        claimed = job.transition(
            AvatarJob.Status.PROCESSING,
            expect=AvatarJob.Status.PROCESSING,
            where={"next_attempt_at": job.next_attempt_at},
            next_attempt_at=lease_until,
            attempts=job.attempts + 1,
        )
    else:
        return  # someone else is on it, or it is waiting
    if claimed:
        _draft_render(job, lease_until)


def _draft_render(job: AvatarJob, lease_until: Any) -> None:
    from jobs.engines.draft import RenderError, render_draft

    workdir = Path(tempfile.mkdtemp(prefix=f"draft-{job.code}-"))
    try:
        portrait = _copy_to(job.portrait.file, workdir / f"portrait.{job.portrait.format}")
        audio = _copy_to(job.audio.file, workdir / f"audio.{job.audio.format}")
        try:
            result = render_draft(portrait=portrait, audio=audio, workdir=workdir / "out")
        except RenderError as exc:
            log.warning("draft render failed for %s: %s", job.code, getattr(exc, "detail", exc))
            job_fail(
                job=job,
                code="render_failed",
                message=str(exc),
                expect=AvatarJob.Status.PROCESSING,
                lease=lease_until,
            )
            return
        finished = job_finish(
            job=job,
            expect=AvatarJob.Status.PROCESSING,
            lease=lease_until,
            video=result.video,
            poster=result.poster,
            duration=result.duration,
        )
        if not finished:
            log.info("render of %s was taken over or canceled; its files were dropped", job.code)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def job_finish(
    *, job: AvatarJob, expect: str, lease: Any, video: Path, poster: Path, duration: float | None
) -> bool:
    """Store a finished video and its poster, then mark the job succeeded.

    Only while the caller still holds its lease (`expect` status and `next_attempt_at`):
    a worker that lost the job to another deletes what it saved, so no file is orphaned.
    """
    saved: list[Any] = []
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
        )
    except BaseException:
        for f in saved:
            f.delete(save=False)
        raise
    if not finished:
        for f in saved:
            f.delete(save=False)
    return finished


def _copy_to(field: Any, dest: Path) -> Path:
    """Copy a stored file to a local path (storage may be remote, ffmpeg needs a path)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with field.open("rb") as src, dest.open("wb") as out:
        shutil.copyfileobj(src, out, 1024 * 1024)
    field.close()
    return dest


# --- the studio's actions ------------------------------------------------------------------


def job_retry(*, job: AvatarJob, user: AbstractBaseUser | None) -> AvatarJob:
    """Make a fresh job with the same inputs (a new UUID, so a new Kling task id)."""
    if job.status != AvatarJob.Status.FAILED:
        raise ValidationError("Only a failed job can be retried.")
    return job_create(
        team=job.team,
        user=user,
        portrait=job.portrait,
        audio=job.audio,
        kling_audio_id=job.kling_audio_id,
        prompt=job.prompt,
        mode=job.mode,
    )


def asset_rename(*, asset: Asset, name: str) -> Asset:
    from jobs.media import display_name

    cleaned = display_name(name or "")
    if not cleaned:
        raise ValidationError("Give the file a name.")
    asset.name = cleaned
    asset.save(update_fields=["name"])
    return asset


def asset_delete(*, asset: Asset) -> None:
    """Delete a library file that no job uses (jobs keep their inputs for good)."""
    used = asset.portrait_jobs.exists() or asset.audio_jobs.exists()
    if used:
        raise ValidationError(
            f"{asset.name} is used by jobs, which keep their inputs: it cannot be deleted."
        )
    try:
        with transaction.atomic():
            asset.delete()
            transaction.on_commit(lambda: asset.file.delete(save=False))
    except ProtectedError:  # a job started using it a moment ago
        raise ValidationError(
            f"{asset.name} is used by jobs, which keep their inputs: it cannot be deleted."
        ) from None


# --- quotas and usage ----------------------------------------------------------------------


def month_start(now: Any = None) -> Any:
    now = timezone.localtime(now or timezone.now())
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(now: Any = None) -> Any:
    start = month_start(now)
    return (start + timedelta(days=32)).replace(day=1)


def _counted_jobs(team: Team, since: Any) -> Any:
    """This month's jobs that use (or will use) generated seconds: failed and canceled don't."""
    return (
        AvatarJob.objects.for_team(team)
        .filter(created__gte=since)
        .exclude(status__in=(AvatarJob.Status.FAILED, AvatarJob.Status.CANCELED))
    )


def _job_seconds() -> Coalesce:
    """A job's seconds: its video's, else its voice-over's, else (a pasted audio id) the most
    a voice-over may last."""
    return Coalesce("duration", "audio__duration", Value(float(settings.KLING_MAX_AUDIO_SECONDS)))


def seconds_used(*, team: Team, mode: str, now: Any = None) -> float:
    used = (
        _counted_jobs(team, month_start(now))
        .filter(mode=mode)
        .aggregate(s=Sum(_job_seconds()))["s"]
    )
    return float(used or 0)


def check_quota(*, team: Team, mode: str, seconds: float | None) -> None:
    """Refuse a job that would take the team past its monthly limit for that mode."""
    limit = team.quota_seconds(mode)
    if limit is None:
        return
    used = seconds_used(team=team, mode=mode)
    left = max(limit - used, 0)
    need = seconds or 0
    if used + need > limit:
        reset = timezone.localtime(next_month_start())
        raise ValidationError(
            f"This {mode} job needs {need:.0f} s, but the team has {left:.0f} s of {mode} video "
            f"left this month (limit {limit} s). Use a shorter voice-over, ask a team admin to "
            f"raise the limit, or wait until {reset:%-d %B}.",
            code="quota",
        )


def usage_summary(*, team: Team, now: Any = None) -> dict[str, Any]:
    """This month's generated seconds and Kling units, per member and per mode."""
    rows = (
        _counted_jobs(team, month_start(now))
        .values("created_by__username", "mode")
        .annotate(
            seconds=Sum(_job_seconds()),
            units=Sum("units_charged"),
        )
        .order_by("created_by__username", "mode")
    )
    modes = {
        mode: {
            "used": seconds_used(team=team, mode=mode, now=now),
            "limit": team.quota_seconds(mode),
        }
        for mode in AvatarJob.Mode.values
    }
    for numbers in modes.values():
        limit = numbers["limit"]
        numbers["left"] = None if limit is None else max(limit - numbers["used"], 0)
    return {"since": month_start(now), "rows": list(rows), "modes": modes}


def quota_set(*, team: Team, mode: str, seconds: int | None) -> Team:
    if mode not in AvatarJob.Mode.values:
        raise ValidationError(f"Mode {mode!r} does not exist.")
    setattr(team, f"quota_{mode}_seconds", seconds)
    team.save(update_fields=[f"quota_{mode}_seconds"])
    return team


# --- teams and roles -----------------------------------------------------------------------

Role = Membership.Role


@transaction.atomic
def team_create(*, name: str, user: AbstractBaseUser) -> Team:
    name = name.strip()
    if not name:
        raise ValidationError("Give the team a name.")
    team = Team.objects.create(name=name[:100])
    Membership.objects.create(user=user, team=team, role=Role.ADMIN)
    return team


def _other_admins(membership: Membership) -> bool:
    return (
        Membership.objects.filter(team=membership.team_id, role=Role.ADMIN)
        .exclude(pk=membership.pk)
        .exists()
    )


def member_add(*, team: Team, login: str, role: str = Role.MEMBER) -> Membership:
    """Add an existing account (by username or email) to the team."""
    login = login.strip()
    users = get_user_model().objects.filter(Q(username__iexact=login) | Q(email__iexact=login))
    user = users.first() if login else None
    if user is None:
        raise ValidationError(
            f"There is no account called {login!r}. Check the spelling, or send an invite link."
        )
    if Membership.objects.filter(team=team, user=user).exists():
        raise ValidationError(f"{user.get_username()} is already in {team.name}.")
    try:
        with transaction.atomic():
            return Membership.objects.create(team=team, user=user, role=role)
    except IntegrityError:  # added by someone else a moment ago
        raise ValidationError(f"{user.get_username()} is already in {team.name}.") from None


@transaction.atomic
def member_set_role(*, membership: Membership, role: str) -> Membership:
    if role not in Role.values:
        raise ValidationError(f"Role {role!r} does not exist: use admin, member or viewer.")
    Team.objects.select_for_update().filter(pk=membership.team_id).first()
    if membership.role == Role.ADMIN and role != Role.ADMIN and not _other_admins(membership):
        raise ValidationError("A team needs at least one admin: make someone else admin first.")
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def member_remove(*, membership: Membership) -> None:
    """Remove someone from a team (or let them leave). The last admin cannot go."""
    Team.objects.select_for_update().filter(pk=membership.team_id).first()
    if membership.role == Role.ADMIN and not _other_admins(membership):
        raise ValidationError(
            "The last admin cannot leave the team: make someone else admin first."
        )
    membership.delete()


INVITE_DAYS = 7


def invite_create(
    *, team: Team, by: AbstractBaseUser, role: str = Role.MEMBER, days: int = INVITE_DAYS
) -> tuple[TeamInvite, str]:
    """A single-use invite link; the token is returned once and only its hash is kept."""
    if role not in Role.values:
        raise ValidationError(f"Role {role!r} does not exist: use admin, member or viewer.")
    token = new_token()
    invite = TeamInvite.objects.create(
        team=team,
        role=role,
        created_by=by,
        token_hash=hash_token(token),
        expires_at=timezone.now() + timedelta(days=days),
    )
    return invite, token


def invite_find(token: str) -> TeamInvite | None:
    return TeamInvite.objects.select_related("team").filter(token_hash=hash_token(token)).first()


@transaction.atomic
def invite_accept(*, token: str, user: AbstractBaseUser) -> Membership:
    invite = invite_find(token)
    if invite is None:
        raise ValidationError("This invite link is not valid. Ask for a new one.")
    existing = Membership.objects.filter(team=invite.team, user=user).first()
    if existing is not None:
        return existing
    # Single use: only the first acceptance marks it used.
    used = TeamInvite.objects.filter(
        pk=invite.pk, used_at__isnull=True, expires_at__gt=timezone.now()
    ).update(used_at=timezone.now(), used_by=user)
    if not used:
        raise ValidationError(
            "This invite link has expired or was already used. Ask a team admin for a new one."
        )
    return Membership.objects.create(team=invite.team, user=user, role=invite.role)


# --- share links ---------------------------------------------------------------------------


def share_create(
    *,
    job: AvatarJob,
    by: AbstractBaseUser,
    expires_at: Any = None,
    allow_download: bool = False,
) -> tuple[ShareLink, str]:
    """A link to a finished video; the token is returned once and only its hash is kept."""
    if job.status != AvatarJob.Status.SUCCEEDED:
        raise ValidationError("Only a finished video can be shared.")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError("The expiry date is in the past: pick a later one.")
    token = new_token()
    link = ShareLink.objects.create(
        job=job,
        created_by=by,
        token_hash=hash_token(token),
        expires_at=expires_at,
        allow_download=allow_download,
    )
    return link, token


def share_revoke(*, link: ShareLink) -> None:
    ShareLink.objects.filter(pk=link.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def share_open(token: str, *, count_view: bool = False) -> ShareLink | None:
    """The live link for a token (None if unknown, revoked or expired)."""
    link = (
        ShareLink.objects.live()
        .select_related("job", "job__portrait")
        .filter(token_hash=hash_token(token), job__status=AvatarJob.Status.SUCCEEDED)
        .first()
    )
    if link is not None and count_view:
        ShareLink.objects.filter(pk=link.pk).update(
            views=F("views") + 1, last_viewed_at=timezone.now()
        )
    return link


# --- the operator's actions ----------------------------------------------------------------


def job_poke(*, job: AvatarJob) -> bool:
    """Make an active job take its next step now (the admin's "query Kling now")."""
    poked = AvatarJob.objects.filter(pk=job.pk, status__in=AvatarJob.ACTIVE).update(
        next_attempt_at=timezone.now()
    )
    if poked:
        transaction.on_commit(lambda: wake(job.pk))
    return bool(poked)


# --- the Kling-compatible API ----------------------------------------------------------------
# Tokens, and the workflows behind jobs/api.py. API jobs are ordinary jobs made by job_create
# (same quotas, slots, dashboard), marked with their token, the caller's own id and callback.

API_TOKEN_PREFIX = "avs_"  # noqa: S105 (a public marker: recognisable in logs and by scanners)
API_TOKEN_TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often


class ApiTokenRefused(Exception):
    """An API token that cannot be used; str() says why, in words for the caller."""


def api_token_create(*, user: AbstractBaseUser, team: Team, name: str = "") -> tuple[ApiToken, str]:
    """A new token for one team; the token is returned once and only its hash is kept."""
    membership = Membership.objects.filter(user=user, team=team).first()
    if membership is None or not membership.can_write:
        raise ValidationError(
            f"Only members who can make jobs in {team.name} can create API tokens for it."
        )
    name = " ".join((name or "").split())[:100] or "API token"
    token = API_TOKEN_PREFIX + new_token()
    api_token = ApiToken.objects.create(
        user=user, team=team, name=name, token_hash=hash_token(token), prefix=token[:10]
    )
    return api_token, token


def api_token_revoke(*, token: ApiToken) -> bool:
    """Revoke a token for good; False if it was already revoked."""
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    return bool(revoked)


def api_token_authenticate(raw: str) -> ApiToken:
    """The live token for a raw Bearer value, or ApiTokenRefused saying why not.

    A token is only as good as its owner's standing: it stops working when the owner leaves the
    team, is made a viewer, or is deactivated, without anyone having to remember to revoke it.
    """
    token = (
        ApiToken.objects.select_related("team", "user").filter(token_hash=hash_token(raw)).first()
    )
    if token is None:
        raise ApiTokenRefused(
            "This API token is not valid: check that it was copied whole, or create a new one."
        )
    if token.revoked_at is not None:
        raise ApiTokenRefused(
            f"This API token ({token.name}) was revoked on {token.revoked_at:%Y-%m-%d}: "
            "create a new one."
        )
    membership = Membership.objects.filter(user=token.user_id, team=token.team_id).first()
    if not token.user.is_active or membership is None or not membership.can_write:
        raise ApiTokenRefused(
            f"The owner of this API token can no longer make jobs in {token.team.name}, so the "
            "token no longer works."
        )
    now = timezone.now()
    if token.last_used_at is None or token.last_used_at < now - API_TOKEN_TOUCH_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def api_tokens_visible(*, user: AbstractBaseUser, team: Team, is_admin: bool) -> Any:
    """The tokens a person may see on the tokens page: their own, or all the team's for admins."""
    tokens = ApiToken.objects.filter(team=team).select_related("user")
    return tokens if is_admin else tokens.filter(user=user)


def api_voiceover(*, team: Team, audio_id: str) -> Asset | None:
    """The team's stored voice-over that Kling knows as `audio_id` (made by text-to-speech)."""
    if not audio_id:
        return None
    return Asset.objects.for_team(team).voiceovers().filter(kling_audio_id=audio_id).first()


def api_task_find(*, team: Team, ref: str) -> AvatarJob | None:
    """A team's job by our task id (the job's code) or by the caller's external_task_id."""
    jobs = AvatarJob.objects.for_team(team)
    try:
        code = uuid.UUID(ref)
    except (ValueError, AttributeError):
        code = None
    if code is not None and (job := jobs.filter(code=code).first()) is not None:
        return job
    return jobs.filter(client_external_id=ref).first() if ref else None


def api_task_by_external_id(*, team: Team, external_id: str) -> AvatarJob | None:
    if not external_id:
        return None
    return AvatarJob.objects.for_team(team).filter(client_external_id=external_id).first()


def api_task_page(*, team: Team, page: int, size: int) -> list[AvatarJob]:
    """One page of the team's jobs, newest first (Kling's list order)."""
    start = (page - 1) * size
    return list(AvatarJob.objects.for_team(team).order_by("-created", "-id")[start : start + size])


def api_job_create(
    *,
    token: ApiToken,
    portrait: Asset,
    audio: Asset | None = None,
    kling_audio_id: str = "",
    prompt: str = "",
    mode: str,
    callback_url: str = "",
    external_id: str = "",
) -> tuple[AvatarJob, bool]:
    """Queue a job for an API caller; (job, created).

    The caller's external_task_id is unique per team: a repeat (a retry after a lost reply, or
    two requests racing) returns the job that already has it instead of making a second one.
    """
    team = token.team
    existing = api_task_by_external_id(team=team, external_id=external_id)
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            job = job_create(
                team=team,
                user=token.user,
                portrait=portrait,
                audio=audio,
                kling_audio_id=kling_audio_id,
                prompt=prompt,
                mode=mode,
            )
            # The unique constraint settles a race on the same external id: the loser's job
            # and its wake-up are rolled back together.
            AvatarJob.objects.filter(pk=job.pk).update(
                api_token=token,
                client_external_id=external_id,
                client_callback_url=callback_url,
            )
            if callback_url:
                job_id = job.pk
                transaction.on_commit(lambda: api_callback_if_changed(job_id=job_id))
    except IntegrityError:
        if not external_id:
            raise
        return AvatarJob.objects.get(team=team, client_external_id=external_id), False
    job.refresh_from_db()
    return job, True


def api_callback_if_changed(*, job_id: int) -> bool:
    """Queue a callback to the API caller if the job's status moved on since they were told."""
    from jobs import outbound

    return outbound.api_callback_if_changed(job_id=job_id)
