"""Monthly limits of generated seconds per mode, and the usage page's numbers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from jobs.models import (
    AvatarJob,
    Team,
)


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


def job_seconds() -> Coalesce:
    """A job's seconds: its video's, else its voice-over's, else (a pasted audio id) the most
    a voice-over may last."""
    return Coalesce("duration", "audio__duration", Value(float(settings.KLING_MAX_AUDIO_SECONDS)))


def seconds_used(*, team: Team, mode: str, now: Any = None) -> float:
    used = (
        _counted_jobs(team, month_start(now)).filter(mode=mode).aggregate(s=Sum(job_seconds()))["s"]
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
            seconds=Sum(job_seconds()),
            units=Sum("units_charged"),
        )
        .order_by("created_by__username", "mode")
    )
    modes: dict[str, dict[str, Any]] = {
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


def quota_packs(*, team: Team, now: Any = None) -> list[dict[str, Any]]:
    """This month's quotas as Kling's resource packs (GET /account/costs): one pack per mode
    with a limit, in seconds of video; a mode without a limit has no pack.

    Kling's statuses: `online` while units are left, `runOut` once used up; the pack is
    valid from the first of the month to the first of the next (milliseconds).
    """
    start, end = month_start(now), next_month_start(now)
    packs = []
    for mode in AvatarJob.Mode.values:
        limit = team.quota_seconds(mode)
        if limit is None:
            continue
        used = round(seconds_used(team=team, mode=mode, now=now), 3)
        remaining = round(max(limit - used, 0), 3)
        packs.append(
            {
                "resource_pack_name": f"{team.slug} {mode} seconds, {start:%B %Y}",
                "resource_pack_id": f"{team.slug}-{mode}-{start:%Y-%m}",
                "resource_pack_type": "decreasing_total",
                "total_quantity": float(limit),
                "used_quantity": used,
                "remaining_quantity": remaining,
                "purchase_time": int(start.timestamp() * 1000),
                "effective_time": int(start.timestamp() * 1000),
                "invalid_time": int(end.timestamp() * 1000),
                "status": "online" if remaining > 0 else "runOut",
                "mode": mode,  # ours: which mode's quota this pack is
            }
        )
    return packs
