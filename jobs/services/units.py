"""Kling units before they are spent: estimates, the team's monthly unit budget, and the
account's resource packs.

- An estimate is seconds of video times a rate in units per second: the team's own (what Kling
  charged its last succeeded jobs of that mode, per second of their videos) once it has such a
  job, else the configured `KLING_UNITS_PER_SECOND_STD` / `_PRO`.
- A team's budget is spent by what Kling charged this month's jobs, and reserved by the
  estimates of its jobs not yet charged (queued and running), as the seconds quotas count
  queued jobs: two jobs cannot both squeeze under it.
- The account's packs come from Kling's GET /account/costs, kept in the Django cache (shared by
  every process) and read again at most once a minute: `cache.add` of a lock key that expires
  after a minute lets exactly one page view across all processes ask Kling.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db.models import Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from jobs import kling
from jobs.kling.client import KlingClient
from jobs.kling.errors import KlingError
from jobs.kling.replies import KlingResourcePack
from jobs.models import AvatarJob, Team
from jobs.services.quotas import job_seconds, month_start, next_month_start

logger = logging.getLogger(__name__)

CHARGED_MODES = (AvatarJob.Mode.STD, AvatarJob.Mode.PRO)
HISTORY_JOBS = 50  # a team's rate follows its latest jobs, so a price change shows soon
COSTS_TIMEOUT = 5.0  # seconds: a page waits on this request
REFRESH_SECONDS = 60  # Kling allows one costs query a second; we ask once a minute at most
PACK_WINDOW = timedelta(days=400)  # packs bought this long ago may still be valid
READING_KEY = "kling-costs:reading"
LOCK_KEY = "kling-costs:refresh"


def format_units(value: Decimal | float | int, places: int = 3) -> str:
    """Kling units as Kling writes them: 1.5, 12, 0.125 (no padding zeros)."""
    text = f"{float(value):,.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def n_units(value: Decimal | float | int, places: int = 1) -> str:
    """ "1 unit", "2.5 units"."""
    text = format_units(value, places)
    return f"{text} unit" if text == "1" else f"{text} units"


# --------------------------------------------------------------------------- estimates


@dataclass(frozen=True)
class UnitRate:
    mode: str
    per_second: Decimal
    jobs: int  # how many of the team's jobs it comes from; 0: the configured rate

    @property
    def source(self) -> str:
        if not self.jobs:
            return f"at the studio's standard rate of {format_units(self.per_second)} a second"
        if self.jobs == 1:
            return "at the rate Kling charged your team's last job"
        return f"at the rate Kling charged your team's last {self.jobs} jobs"


@dataclass(frozen=True)
class UnitEstimate:
    mode: str
    seconds: float
    units: Decimal
    rate: UnitRate

    def __str__(self) -> str:
        return f"about {n_units(self.units)}, {self.rate.source}"


def configured_rate(mode: str) -> Decimal:
    return Decimal(
        settings.KLING_UNITS_PER_SECOND_PRO
        if mode == AvatarJob.Mode.PRO
        else settings.KLING_UNITS_PER_SECOND_STD
    )


def unit_rate(*, team: Team | int, mode: str) -> UnitRate:
    """Units per second of video for this team and mode (see the module's docstring)."""
    team_id = team if isinstance(team, int) else team.pk
    history = list(
        AvatarJob.objects.filter(
            team_id=team_id,
            mode=mode,
            status=AvatarJob.Status.SUCCEEDED,
            units_charged__isnull=False,
        )
        .annotate(seconds=Coalesce("duration", "audio__duration"))
        .filter(seconds__gt=0)
        .order_by("-finished_at")
        .values_list("units_charged", "seconds")[:HISTORY_JOBS]
    )
    if not history:
        return UnitRate(mode, configured_rate(mode), 0)
    units = sum((u for u, _ in history if u is not None), Decimal(0))
    seconds = Decimal(str(sum(s for _, s in history)))
    return UnitRate(mode, units / seconds, len(history))


def estimate(*, team: Team, mode: str, seconds: float | None) -> UnitEstimate | None:
    """The units a job of `seconds` will use; None for a draft (free). Unknown seconds (a
    pasted audio id) count as the longest voice-over allowed, as the seconds quota does."""
    if mode not in CHARGED_MODES:
        return None
    if seconds is None:
        seconds = float(settings.KLING_MAX_AUDIO_SECONDS)
    rate = unit_rate(team=team, mode=mode)
    return UnitEstimate(mode, seconds, rate.per_second * Decimal(str(seconds)), rate)


def estimates_for(*, team: Team, seconds: float | None) -> list[UnitEstimate]:
    """One estimate per Kling mode, for a voice-over picked before the mode is."""
    return [e for mode in CHARGED_MODES if (e := estimate(team=team, mode=mode, seconds=seconds))]


# --------------------------------------------------------------------------- the budget


@dataclass(frozen=True)
class Budget:
    """This month's Kling units of one team: charged, reserved by jobs not yet charged, and
    what its budget leaves (None: no budget)."""

    budget: int | None
    charged: Decimal
    reserved: Decimal

    @property
    def committed(self) -> Decimal:
        return self.charged + self.reserved

    @property
    def left(self) -> Decimal | None:
        if self.budget is None:
            return None
        return max(Decimal(self.budget) - self.committed, Decimal(0))

    @property
    def percent(self) -> int | None:
        """How much of the budget is used or reserved, for a progress bar (0: all of it)."""
        if self.budget is None:
            return None
        if self.budget == 0:
            return 100
        return min(round(100 * self.committed / self.budget), 100)


def _reserved(jobs: Any) -> Decimal:
    """The estimated units of `jobs` (per team and mode, each at its team's rate)."""
    total = Decimal(0)
    rows = jobs.values("team_id", "mode").annotate(seconds=Sum(job_seconds()))
    for row in rows.order_by():
        rate = unit_rate(team=row["team_id"], mode=row["mode"])
        total += rate.per_second * Decimal(str(row["seconds"] or 0))
    return total


def budget_summary(*, team: Team, now: Any = None) -> Budget:
    jobs = AvatarJob.objects.for_team(team).filter(
        created__gte=month_start(now), mode__in=CHARGED_MODES
    )
    charged = jobs.aggregate(u=Sum("units_charged"))["u"] or Decimal(0)
    pending = jobs.filter(units_charged__isnull=True).exclude(
        status__in=(AvatarJob.Status.FAILED, AvatarJob.Status.CANCELED)
    )
    return Budget(team.monthly_unit_budget, Decimal(charged), _reserved(pending))


def _advice(mode: str) -> str:
    shorter = "a shorter voice-over" + (" or std" if mode == AvatarJob.Mode.PRO else "")
    reset = timezone.localtime(next_month_start())
    return (
        f"Use {shorter}, make a draft (free), ask a team admin to raise the budget, or wait "
        f"until {reset:%-d %B}."
    )


def check_unit_budget(*, team: Team, mode: str, seconds: float | None) -> None:
    """Refuse a job whose estimate would take the team past its monthly unit budget."""
    budget = team.monthly_unit_budget
    if budget is None:
        return
    need = estimate(team=team, mode=mode, seconds=seconds)
    if need is None:
        return
    summary = budget_summary(team=team)
    left = summary.left or Decimal(0)
    if need.units > left:
        raise ValidationError(
            f"This {mode} job is estimated at {need}, but the team has "
            f"{n_units(left)} of its monthly Kling budget left (budget {n_units(budget)}; "
            f"{format_units(summary.committed, 1)} used or reserved by "
            f"this month's jobs). {_advice(mode)}",
            code="quota",
        )


class BatchRow(Protocol):
    """What the budget needs of a batch row (jobs.services.batches.RowCheck)."""

    mode: str
    seconds: float
    problems: list[str]

    @property
    def ok(self) -> bool: ...


def check_batch_budget(*, team: Team, rows: Sequence[BatchRow]) -> None:
    """Refuse, in order, the passing rows whose estimates go past the team's unit budget."""
    budget = team.monthly_unit_budget
    if budget is None:
        return
    rates: dict[str, UnitRate] = {m: unit_rate(team=team, mode=m) for m in CHARGED_MODES}
    left = budget_summary(team=team).left or Decimal(0)
    total = Decimal(0)
    for row in rows:
        if not row.ok or row.mode not in rates:
            continue
        rate = rates[row.mode]
        units = rate.per_second * Decimal(str(row.seconds))
        if total + units > left:
            remaining = n_units(max(left - total, Decimal(0)))
            where = "after the rows above" if total else "this month"
            row.problems.append(
                f"budget: over the team's monthly Kling budget: about {n_units(units)} "
                f"({rate.source}), and {remaining} {'are' if remaining != '1 unit' else 'is'} "
                f"left {where} (budget {n_units(budget)}). Drop rows, make drafts or shorter "
                "voice-overs, or ask an admin to raise the budget."
            )
        else:
            total += units


@dataclass(frozen=True)
class BatchUnits:
    """A batch's estimate per Kling mode, against the team's budget."""

    estimates: list[UnitEstimate]
    budget: Budget

    @property
    def total(self) -> Decimal:
        return sum((e.units for e in self.estimates), Decimal(0))

    @property
    def fits(self) -> bool:
        left = self.budget.left
        return left is None or self.total <= left


def batch_units(*, team: Team, rows: Iterable[BatchRow]) -> BatchUnits | None:
    """The estimate the confirmation shows; None when the batch has no std or pro row."""
    seconds: dict[str, float] = defaultdict(float)
    for row in rows:
        if row.mode in CHARGED_MODES:
            seconds[row.mode] += row.seconds
    if not seconds:
        return None
    estimates = [
        e
        for mode in CHARGED_MODES
        if mode in seconds and (e := estimate(team=team, mode=mode, seconds=seconds[mode]))
    ]
    return BatchUnits(estimates, budget_summary(team=team))


def unit_budget_set(*, team: Team, units: int | None) -> Team:
    if units is not None and units < 0:
        raise ValidationError("A unit budget cannot be negative: leave it empty for no limit.")
    team.monthly_unit_budget = units
    team.save(update_fields=["monthly_unit_budget"])
    return team


# --------------------------------------------------------------------------- the account


@dataclass(frozen=True)
class AccountUnits:
    """The Kling account's resource packs as last read, and the last failure if newer."""

    configured: bool = True
    packs: list[KlingResourcePack] = field(default_factory=list)
    read_at: datetime | None = None  # the last good reading
    error: str = ""  # why the latest attempt failed ("" if it did not)
    error_at: datetime | None = None

    @property
    def remaining(self) -> Decimal | None:
        """Units left over the packs that can still be spent; None before a good reading."""
        if self.read_at is None:
            return None
        return sum(
            (p.remaining for p in self.packs if p.is_usable and p.remaining is not None),
            Decimal(0),
        )


def _stored() -> AccountUnits:
    data = cache.get(READING_KEY)
    if not isinstance(data, dict):
        return AccountUnits()
    try:
        packs = [KlingResourcePack(**pack) for pack in data.pop("packs", [])]
        return AccountUnits(packs=packs, **data)
    except TypeError:  # written by another version of this code: read it again
        return AccountUnits()


def _store(reading: AccountUnits) -> None:
    data = asdict(reading)
    data.pop("configured")
    cache.set(READING_KEY, data, timeout=None)


def _read_from_kling(before: AccountUnits) -> AccountUnits:
    now = timezone.now()
    try:
        client = KlingClient.from_settings(timeout=COSTS_TIMEOUT)
        packs = client.account_costs(start=now - PACK_WINDOW, end=now)
    except KlingError as exc:
        logger.warning("Kling's account costs could not be read: %s", exc)
        reading = AccountUnits(
            packs=before.packs, read_at=before.read_at, error=exc.message, error_at=now
        )
    except Exception:  # a page must show the failure, never a 500 (the log has the details)
        logger.exception("Reading Kling's account costs failed")
        reading = AccountUnits(
            packs=before.packs,
            read_at=before.read_at,
            error="an unexpected error (the server log has the details)",
            error_at=now,
        )
    else:
        reading = AccountUnits(packs=packs, read_at=now)
    _store(reading)
    return reading


def account_units() -> AccountUnits:
    """The account's packs, read from Kling when the last reading is a minute old.

    Whichever process first adds the lock key in a minute asks Kling; every other view in that
    minute gets the stored reading (good or failed), so Kling is asked at most once a minute.
    """
    if not kling.is_configured():
        return AccountUnits(configured=False)
    reading = _stored()
    if cache.add(LOCK_KEY, timezone.now().isoformat(), timeout=REFRESH_SECONDS):
        reading = _read_from_kling(reading)
    return reading


def queued_units() -> Decimal:
    """The estimated units of every queued and running std/pro job, whatever its team."""
    jobs = AvatarJob.objects.filter(
        status__in=AvatarJob.ACTIVE, mode__in=CHARGED_MODES, units_charged__isnull=True
    )
    return _reserved(jobs)


@dataclass(frozen=True)
class UnitsWarning:
    remaining: Decimal
    needed: Decimal

    def __str__(self) -> str:
        return (
            f"Kling's resource packs have {n_units(self.remaining)} left, but the "
            f"queued and running std and pro jobs need about {format_units(self.needed, 1)}. "
            "Top up the Kling account, or jobs will wait (or fail) when the units run out."
        )


def units_warning(reading: AccountUnits) -> UnitsWarning | None:
    """A warning when the account's units would not cover the work waiting for Kling."""
    remaining = reading.remaining
    if remaining is None:
        return None
    needed = queued_units()
    return UnitsWarning(remaining, needed) if needed > remaining else None


# --------------------------------------------------------------------------- units used


@dataclass
class TeamUnits:
    team: str
    budget: int | None
    units: Decimal = Decimal(0)
    members: list[tuple[str, Decimal]] = field(default_factory=list)


def units_by_team(*, now: Any = None) -> list[TeamUnits]:
    """This month's charged units per team and member (the teams that used any)."""
    rows = (
        AvatarJob.objects.filter(created__gte=month_start(now), units_charged__isnull=False)
        .values("team_id", "team__name", "team__monthly_unit_budget", "created_by__username")
        .annotate(units=Sum("units_charged"))
        .order_by("team__name", "team_id", "created_by__username")
    )
    teams: dict[int, TeamUnits] = {}
    for row in rows:
        entry = teams.setdefault(
            row["team_id"], TeamUnits(row["team__name"], row["team__monthly_unit_budget"])
        )
        units = Decimal(row["units"] or 0)
        entry.units += units
        entry.members.append((row["created_by__username"] or "(deleted account)", units))
    return list(teams.values())
