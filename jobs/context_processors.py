from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from jobs import kling
from jobs.access import Access, StudioRequest, current_team, memberships
from jobs.models import KlingAccount, Membership


@dataclass(frozen=True)
class Nav:
    """What the top bar shows a signed-in user: the team they work in and the others."""

    access: Access
    teams: list[Membership]
    kling_pause: KlingAccount | None  # shown to team admins and staff while Kling is paused


def _nav(http_request: HttpRequest) -> Nav | None:
    if not http_request.user.is_authenticated:
        return None
    request = cast(StudioRequest, http_request)  # signed in: as the studio's views get it
    access = current_team(request)  # reuses the request's membership list: no extra query
    pause = None
    # Without a Kling key there is nothing to pause (nor a query to make on every page).
    if kling.is_configured() and (request.user.is_staff or access.is_admin):
        account = KlingAccount.objects.filter(pk=1).first()
        pause = account if account is not None and account.is_paused else None
    return Nav(access=access, teams=memberships(request), kling_pause=pause)


def studio(request: HttpRequest) -> dict[str, Any]:
    # Lazy: fragments that never show the top bar (polls, partials) cost no query.
    return {
        "kling_configured": kling.is_configured(),
        "nav": SimpleLazyObject(lambda: _nav(request)),
    }
