"""The dashboard: the team's jobs as cards, and the one poll that keeps them live."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import (
    Q,
    Subquery,
)
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET
from django_htmx.http import HttpResponseClientRedirect

from jobs.access import StudioRequest, current_team
from jobs.cards import attach_estimates, card_jobs, filtered_poll_rows, page_rows, poll_rows
from jobs.forms import JobFilterForm
from jobs.models import AvatarJob, Membership

JOBS_PER_PAGE = 24
POLL_SECONDS = 3
# A page sends the codes of its running cards with every poll; more than this is not a page.
POLL_MAX_CODES = 200

Status = AvatarJob.Status
ACTIVE = frozenset(AvatarJob.ACTIVE)


def parse_codes(values: list[str]) -> list[UUID]:
    codes = []
    for value in values[:POLL_MAX_CODES]:
        try:
            codes.append(UUID(value))
        except ValueError:
            continue
    return codes


def _filter_query(filters: JobFilterForm) -> QueryDict:
    query = QueryDict(mutable=True)
    query.update(filters.values())
    return query


@login_required
@require_GET
def dashboard(request: StudioRequest) -> HttpResponse:
    """The team's jobs as cards, newest first, in pages of JOBS_PER_PAGE (keyset paginated).

    htmx asks for `#results` when the filters change and for `#page` (the next cards) when the
    reader reaches the "Older jobs" link.
    """
    access = current_team(request)
    filters = JobFilterForm(request.GET)
    before = parse_codes([request.GET.get("before", "")])
    cursor = before[0] if before else None
    if filters.values():
        jobs = card_jobs(access.team).filter(filters.condition(request.user))
        if cursor:
            # Keyset pagination: cards never repeat or go missing when new jobs arrive on top.
            mark = AvatarJob.objects.for_team(access.team).filter(code=cursor)
            created = Subquery(mark.values("created")[:1])
            jobs = jobs.filter(
                Q(created__lt=created) | Q(created=created, pk__lt=Subquery(mark.values("pk")[:1]))
            )
        rows = list(jobs[: JOBS_PER_PAGE + 1])
        attach_estimates(rows)
    else:  # the usual page, read the quick way
        rows = [row.card() for row in page_rows(access.team.pk, cursor, JOBS_PER_PAGE + 1)]
    page = rows[:JOBS_PER_PAGE]
    query = _filter_query(filters)
    context = {
        "access": access,
        "team_code": access.team.code,
        "filters": filters,
        "filtered": bool(query),
        "jobs": page,
        "first_page": not before,
        "next_cursor": page[-1].code if len(rows) > JOBS_PER_PAGE else None,
        "query": query,
        # New jobs newer than this are added on top by the poll (first page only).
        "since": (page[0].created if page and not before else timezone.now()).isoformat(),
        "live": any(job.is_active for job in page),
        "highlight": request.GET.get("new", ""),
        "poll_seconds": POLL_SECONDS,
        "idle_seconds": settings.DASHBOARD_IDLE_POLL_SECONDS,
    }
    template = "jobs/dashboard.html"
    if request.htmx:
        context["appending"] = request.htmx.target == "more"
        template += "#page" if context["appending"] else "#results"
    return render(request, template, context)


def _asked_cards(values: list[str]) -> dict[UUID, str]:
    """The page's running cards, `code:version` each (a bare code: the page has no version)."""
    asked: dict[UUID, str] = {}
    for value in values[:POLL_MAX_CODES]:
        code, _, version = value.partition(":")
        try:
            asked[UUID(code)] = version
        except ValueError:
            continue
    return asked


@login_required
@require_GET
def job_cards(request: StudioRequest) -> HttpResponse:
    """The dashboard's one poll: the page's running cards that changed, swapped out of band.

    The page sends its team, its running cards as `code:version` (`job`), its filters, and
    `since`, the time of its newest card. One query reads those cards and the jobs made since
    then, with the membership check joined in: with the session and the user, a poll costs
    three queries (bench/poll.py). When nothing changed the answer is 204 with no body;
    otherwise it carries the changed and new cards, drawn from the same rows, and a new
    poller, which keeps polling only while something on the page still runs. A filtered
    page is read with the ORM instead, which applies its filters to the new jobs.
    """
    asked = _asked_cards(request.GET.getlist("job"))
    since = _parse_since(request.GET.get("since", ""))
    named = parse_codes([request.GET.get("team", "")])
    # A page that names no team polls the current one.
    team: UUID | int
    if named:
        team = team_code = named[0]
    else:
        current = current_team(request).team
        team, team_code = current.pk, current.code
    filters = JobFilterForm(request.GET)
    limit = len(asked) + JOBS_PER_PAGE
    if filters.values():
        scope = (
            Q(team__code=team, team__memberships__user=request.user) if named else Q(team_id=team)
        )
        condition = filters.condition(request.user)
        rows = filtered_poll_rows(scope, list(asked), since, condition, limit)
    else:
        rows = poll_rows(team, request.user.pk, asked, since, limit)
    if named and not rows and not _is_member(request.user, named[0]):
        # Removed from the team (or a made-up code): the page goes back to the dashboard.
        if request.htmx:
            return HttpResponseClientRedirect(reverse("jobs:dashboard"))
        raise Http404("No such team.")
    changed = [row for row in rows if row.code in asked and asked[row.code] != row.version]
    made = [row for row in rows if row.code not in asked]
    vanished = asked.keys() - {row.code for row in rows}
    if not changed and not made and not vanished:
        # Nothing to swap, and the poller on the page is still right: htmx swaps nothing on
        # 204 and keeps polling. Most polls end here.
        return HttpResponse(status=204)
    fresh = [row.card() for row in made]
    updated_cards = [row.card() for row in changed]
    context = {
        "team_code": team_code,
        "updated": updated_cards,
        "fresh": fresh,
        # The page still shows its empty state (it sends `empty` only then): remove it.
        "empty_shown": request.GET.get("empty") == "1",
        "finished": [job for job in updated_cards if not job.is_active],
        # Cards of jobs that vanished (deleted by an admin) are removed, or they would poll on.
        "vanished": vanished,
        "since": fresh[0].created.isoformat() if fresh else (since and since.isoformat()),
        "query": _filter_query(filters),
        "live": any(row.status in ACTIVE for row in rows if row.code in asked)
        or any(job.is_active for job in fresh),
        "poll_seconds": POLL_SECONDS,
        "idle_seconds": settings.DASHBOARD_IDLE_POLL_SECONDS,
    }
    return render(request, "jobs/dashboard.html#poll", context)


def _parse_since(value: str) -> datetime | None:
    """The page's `since`; None when it is missing or not a date (a broken link is no error)."""
    try:
        since = parse_datetime(value)
    except ValueError:  # well formed but impossible, such as month 13
        return None
    if since is not None and timezone.is_naive(since):
        since = timezone.make_aware(since, UTC)
    return since


def _is_member(user: Any, team_code: UUID) -> bool:
    return Membership.objects.filter(team__code=team_code, user_id=user.pk).exists()
