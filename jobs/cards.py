"""The queries behind job cards: the dashboard's pages and its live-update poll.

A card needs a dozen columns of the job, three names from other tables, the job's place in the
queue and, while it generates, how long such jobs usually take. `card_jobs()` is that as a
queryset, for pages with filters. The two hot paths, the first pages of the dashboard and the
poll every open dashboard makes every few seconds, read the same columns with one statement
written out as SQL (`page_rows`, `poll_rows`): building these queries with the ORM took longer
than running them (bench/dashboard.py, bench/poll.py). tests/test_studio.py checks that both
ways draw the same cards.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from django.contrib.auth import get_user_model
from django.db import connections
from django.db.models import (
    Case,
    DateTimeField,
    F,
    Field,
    IntegerField,
    Q,
    QuerySet,
    UUIDField,
    When,
)
from django.db.models.expressions import RawSQL

from jobs.models import ApiToken, Asset, AvatarJob, Membership, Team
from jobs.presenters import card_version, version

ESTIMATE_SAMPLE = 20  # recent successful jobs the "time left" estimate is the median of
ESTIMATE_TTL = 60.0  # seconds an estimate is reused before it is computed again

Status = AvatarJob.Status

CARD_FIELDS = (
    "code",
    "name",
    "prompt",
    "source",
    "team_id",
    "status",
    "mode",
    "created",
    "updated",
    "submitted_at",
    "processing_at",
    "finished_at",
    "poster",
    "duration",
    "error_message",
    "draft_note",
)

# How many of the team's own jobs wait before a queued one for the same engine (drafts and
# Kling jobs queue apart); NULL for the others, whose rows never run the count. Other teams'
# jobs share the slots but are not counted: a team must not learn how busy others are.
# Written as SQL because the same thing as Subquery/Case expressions took Django longer to
# build than SQLite to run.
QUEUE_AHEAD = RawSQL(  # noqa: S611 - constant SQL, no outside input
    "CASE WHEN jobs_avatarjob.status = 'queued' THEN ("
    "SELECT COUNT(*) FROM jobs_avatarjob AS ahead WHERE ahead.status = 'queued'"
    " AND ahead.team_id = jobs_avatarjob.team_id"
    " AND ahead.created < jobs_avatarjob.created"
    " AND (ahead.mode = 'draft') = (jobs_avatarjob.mode = 'draft')) END",
    [],
    output_field=IntegerField(),
)


def attach_queue_place(job: AvatarJob) -> None:
    """Set `queue_ahead` on one job, counted by the very SQL the cards use (QUEUE_AHEAD)."""
    if job.status == Status.QUEUED:
        ahead = AvatarJob.objects.filter(pk=job.pk).annotate(ahead=QUEUE_AHEAD)
        job.queue_ahead = ahead.values_list("ahead", flat=True).first()  # type: ignore[attr-defined]


def card_jobs(team: Team | None = None) -> QuerySet[AvatarJob]:
    """Jobs with what a card shows, in one query (a team's, when given).

    Only the columns a card needs, and the few names it shows from other tables as plain
    values: building the job, user and two asset instances of 25 rows, with a dozen
    datetimes each, was a good part of the dashboard's time.
    """
    jobs = AvatarJob.objects.all() if team is None else AvatarJob.objects.for_team(team)
    return jobs.only(*CARD_FIELDS).annotate(
        creator=F("created_by__username"),
        portrait_code=F("portrait__code"),
        portrait_name=F("portrait__name"),
        audio_name=F("audio__name"),
        token_name=F("api_token__name"),
        queue_ahead=QUEUE_AHEAD,
    )


# (team id, mode) -> (expires at, seconds or None). Per process and short-lived: the estimate is
# a rough guide, and recomputing it on every 3 s poll of every open dashboard would be waste.
_estimates: dict[tuple[int, str], tuple[float, float | None]] = {}


def generating_estimate(team_id: int, mode: str) -> float | None:
    """How long generating usually takes for this team and mode: the median of recent jobs."""
    key, now = (team_id, mode), time.monotonic()
    cached = _estimates.get(key)
    if cached and cached[0] > now:
        return cached[1]
    rows = (
        AvatarJob.objects.filter(
            team_id=team_id, mode=mode, status=Status.SUCCEEDED, processing_at__isnull=False
        )
        .exclude(finished_at=None)
        .order_by("-finished_at")
        .values_list("processing_at", "finished_at")[:ESTIMATE_SAMPLE]
    )
    took = [(end - start).total_seconds() for start, end in rows if start and end]
    value = statistics.median(took) if took else None
    _estimates[key] = (now + ESTIMATE_TTL, value)
    return value


def attach_estimates(jobs: Iterable[AvatarJob]) -> None:
    """What a generating card shows besides its row: how long such jobs usually take."""
    for job in jobs:
        if job.status == Status.PROCESSING:
            job.estimate = generating_estimate(job.team_id, job.mode)  # type: ignore[attr-defined]


# --- the same, as one SQL statement ------------------------------------------------------------


def _db_uuid(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(value)  # SQLite keeps UUIDs as hex text


def _db_datetime(value: datetime | str) -> datetime:
    if isinstance(value, str):  # SQLite keeps datetimes as text, in UTC
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _converter(field: Any) -> Callable[[Any], Any] | None:
    if isinstance(field, UUIDField):
        return _db_uuid
    if isinstance(field, DateTimeField):
        return _db_datetime
    return None


# The columns a card reads, in the model's field order (the order Model.from_db expects).
_COLUMNS = [f for f in AvatarJob._meta.concrete_fields if f.attname in {"id", *CARD_FIELDS}]
_ATTNAMES = [f.attname for f in _COLUMNS]
_CONVERTERS = [_converter(f) for f in _COLUMNS]
_AT = {name: i for i, name in enumerate(_ATTNAMES)}


@dataclass(frozen=True)
class CardRow:
    """One job as read by the SQL below: enough to tell whether its card changed, and to draw it."""

    code: UUID
    status: str
    version: str  # what studio's card_version says for it
    estimate: float | None
    values: tuple[Any, ...]  # the card's columns as the database returned them, then the names
    job: AvatarJob | None = None  # already built, when the ORM read it

    def card(self) -> AvatarJob:
        """The job as card_jobs() gives it, with its estimate attached."""
        if self.job is not None:
            return self.job
        count = len(_COLUMNS)
        values = [
            convert(value) if convert and value is not None else value
            for convert, value in zip(_CONVERTERS, self.values[:count], strict=True)
        ]
        job = AvatarJob.from_db(AvatarJob.objects.db, _ATTNAMES, values)
        ahead, creator, portrait_code, portrait_name, audio_name, token_name = self.values[count:]
        job.queue_ahead = ahead  # type: ignore[attr-defined]
        job.creator = creator  # type: ignore[attr-defined]
        job.portrait_code = portrait_code and _db_uuid(portrait_code)  # type: ignore[attr-defined]
        job.portrait_name = portrait_name  # type: ignore[attr-defined]
        job.audio_name = audio_name  # type: ignore[attr-defined]
        job.token_name = token_name  # type: ignore[attr-defined]
        if self.status == Status.PROCESSING:
            job.estimate = self.estimate  # type: ignore[attr-defined]
        return job


def _select(
    scope: str, where: str, params: Sequence[Any], limit: int, first: str = ""
) -> list[CardRow]:
    """Cards of the jobs in `scope` (joins, then a WHERE) matching `where`, newest first
    (after those `first` puts first: an ORDER BY term, with its own placeholders)."""
    jobs, assets = AvatarJob._meta.db_table, Asset._meta.db_table
    users, tokens = get_user_model()._meta.db_table, ApiToken._meta.db_table
    columns = ", ".join(f"{jobs}.{f.column}" for f in _COLUMNS)
    # Only names from the models and placeholders go into the text; values are params.
    sql = (
        f"SELECT {columns}, {QUEUE_AHEAD.sql}, creator.username, portrait.code,"  # noqa: S608
        f" portrait.name, audio.name, token.name FROM {jobs}"
        f" LEFT OUTER JOIN {users} creator ON creator.id = {jobs}.created_by_id"
        f" LEFT OUTER JOIN {assets} portrait ON portrait.id = {jobs}.portrait_id"
        f" LEFT OUTER JOIN {assets} audio ON audio.id = {jobs}.audio_id"
        f" LEFT OUTER JOIN {tokens} token ON token.id = {jobs}.api_token_id"
        f" {scope} AND ({where})"
        f" ORDER BY {first}{jobs}.created DESC, {jobs}.id DESC LIMIT {int(limit)}"
    )
    with connections[AvatarJob.objects.db].cursor() as cursor:
        cursor.execute(sql, params)
        fetched = cursor.fetchall()
    rows = []
    for values in fetched:
        status = values[_AT["status"]]
        estimate = None
        if status == Status.PROCESSING:
            estimate = generating_estimate(values[_AT["team_id"]], values[_AT["mode"]])
        updated = _db_datetime(values[_AT["updated"]])
        version = card_version(updated, values[len(_COLUMNS)], estimate)
        rows.append(CardRow(_db_uuid(values[_AT["code"]]), status, version, estimate, values))
    return rows


def _prep(field: str, value: Any) -> Any:
    connection = connections[AvatarJob.objects.db]
    column = AvatarJob._meta.get_field(field)
    assert isinstance(column, Field)
    return column.get_db_prep_value(value, connection)


def page_rows(team_id: int, before: UUID | None, limit: int) -> list[CardRow]:
    """A page of the team's cards, newest first: the first one, or the one after `before`."""
    jobs = AvatarJob._meta.db_table
    where, params = "1 = 1", [team_id]
    if before is not None:
        # Keyset pagination: cards never repeat or go missing when new jobs arrive on top.
        mark = f"(SELECT {{}} FROM {jobs} mark WHERE mark.code = %s AND mark.team_id = %s)"  # noqa: S608
        where = (
            f"{jobs}.created < {mark.format('created')} OR ({jobs}.created ="
            f" {mark.format('created')} AND {jobs}.id < {mark.format('id')})"
        )
        params += [_prep("code", before), team_id] * 3
    return _select(f"WHERE {jobs}.team_id = %s", where, params, limit)


def poll_rows(
    team: UUID | int, user_id: int, codes: Iterable[UUID], since: datetime | None, limit: int
) -> list[CardRow]:
    """A page's running cards and the jobs made since its newest card, newest first.

    `team` is the code the page named, with the user's membership of it joined in as the
    access check (an outsider gets no rows), or the id of the user's current team.
    """
    jobs, teams, memberships = AvatarJob._meta.db_table, Team._meta.db_table, "membership"
    if isinstance(team, UUID):
        scope = (
            f"INNER JOIN {teams} team ON team.id = {jobs}.team_id"
            f" INNER JOIN {Membership._meta.db_table} {memberships}"
            f" ON {memberships}.team_id = {jobs}.team_id"
            f" WHERE team.code = %s AND {memberships}.user_id = %s"
        )
        params: list[Any] = [_prep("code", team), user_id]
    else:
        scope, params = f"WHERE {jobs}.team_id = %s", [team]
    wanted, first = [], ""
    codes = [_prep("code", code) for code in codes]
    if codes:
        listed = f"{jobs}.code IN ({', '.join(['%s'] * len(codes))})"
        wanted.append(listed)
        params += codes
        # The page's cards come first, so however many jobs are new they never crowd one out.
        first = f"CASE WHEN {listed} THEN 0 ELSE 1 END, "
    if since is not None:
        wanted.append(f"{jobs}.created > %s")
        params.append(_prep("created", since))
    if not wanted:
        return []
    return _select(scope, " OR ".join(wanted), params + codes, limit, first)


def filtered_poll_rows(
    scope: Q, codes: Sequence[UUID], since: datetime | None, matching: Q, limit: int
) -> list[CardRow]:
    """poll_rows() for a filtered page: new jobs count only if they match its filters.

    Read with the ORM, which knows how to apply the filters: filtered pages are the rare case.
    """
    wanted = Q(code__in=codes)
    if since is not None:
        wanted |= Q(created__gt=since) & matching
    jobs = list(
        card_jobs()
        .filter(scope)
        .filter(wanted)
        .annotate(listed=Case(When(code__in=codes, then=0), default=1))
        .order_by("listed", "-created", "-pk")[:limit]
    )
    attach_estimates(jobs)
    return [
        CardRow(job.code, job.status, version(job), getattr(job, "estimate", None), (), job)
        for job in jobs
    ]
