"""The one gate every view goes through to reach a team's objects.

Outsiders get 404 (they must not learn that the object exists); members whose role does not
allow the action get 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as Account
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django_htmx.middleware import HtmxDetails

from jobs.models import Asset, AvatarJob, Membership, ShareLink, Team
from jobs.services.teams import personal_team_create

User = Account | AnonymousUser


class StudioRequest(HttpRequest):
    """A request as a signed-in studio view gets it: login_required, django-htmx's middleware."""

    user: Account
    htmx: HtmxDetails


@dataclass(frozen=True)
class Access:
    team: Team
    membership: Membership

    @property
    def can_write(self) -> bool:
        return self.membership.can_write

    @property
    def is_admin(self) -> bool:
        return self.membership.role == Membership.Role.ADMIN


def membership_for(user: User, team: Team) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(user=user, team=team).first()


def _check(user: User, team: Team, *, write: bool) -> Access:
    membership = membership_for(user, team)
    if membership is None:
        raise Http404("No such object.")
    if write and not membership.can_write:
        raise PermissionDenied("Your role in this team can only view.")
    return Access(team=team, membership=membership)


def memberships(request: StudioRequest) -> list[Membership]:
    """The user's memberships with their teams, in one query, kept for the rest of the request.

    current_team picks from this list and the navigation's team switcher shows it, so a page
    pays for it once.
    """
    cached = getattr(request, "_memberships", None)
    if cached is None:
        cached = list(
            Membership.objects.filter(user=request.user)
            .select_related("team")
            .order_by("-team__personal", "team__name", "created")
        )
        request._memberships = cached  # type: ignore[attr-defined]
    return cached


def current_team(request: StudioRequest) -> Access:
    """The team the user is working in: the one chosen in the session, else the personal one."""
    mine = memberships(request)
    chosen = request.session.get("team")
    membership = next((m for m in mine if chosen and str(m.team.code) == chosen), None)
    if membership is None and mine:
        membership = min(mine, key=lambda m: (not m.team.personal, m.created))
    if membership is None:
        # Accounts always get a personal team; this only happens if it was deleted by hand.
        personal_team_create(user=request.user)
        request._memberships = None  # type: ignore[attr-defined]
        membership = memberships(request)[0]
    return Access(team=membership.team, membership=membership)


def get_team(user: User, code: UUID, *, admin: bool = False) -> Access:
    """A team the user is in (404 otherwise); `admin` asks for the admin role (403 otherwise)."""
    membership = (
        Membership.objects.select_related("team").filter(team__code=code, user_id=user.pk).first()
        if user.is_authenticated
        else None
    )
    if membership is None:
        raise Http404("No such team.")
    if admin and membership.role != Membership.Role.ADMIN:
        raise PermissionDenied("Only the team's admins can do that.")
    return Access(team=membership.team, membership=membership)


def get_job(user: User, code: UUID, *, write: bool = False) -> tuple[AvatarJob, Access]:
    job = (
        AvatarJob.objects.select_related("team", "portrait", "audio", "created_by")
        .filter(code=code)
        .first()
    )
    if job is None:
        raise Http404("No such job.")
    return job, _check(user, job.team, write=write)


def get_asset(user: User, code: UUID, *, write: bool = False) -> tuple[Asset, Access]:
    asset = Asset.objects.select_related("team").filter(code=code).first()
    if asset is None:
        raise Http404("No such file.")
    return asset, _check(user, asset.team, write=write)


def get_share(user: User, code: UUID, *, write: bool = True) -> tuple[ShareLink, Access]:
    """A share link of one of the user's teams' jobs; changing it needs write rights."""
    link = ShareLink.objects.select_related("job", "job__team").filter(code=code).first()
    if link is None:
        raise Http404("No such share link.")
    return link, _check(user, link.job.team, write=write)
