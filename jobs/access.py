"""The one gate every view goes through to reach a team's objects.

Outsiders get 404 (they must not learn that the object exists); members whose role does not
allow the action get 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest

from jobs.models import Asset, AvatarJob, Membership, Team

User = AbstractBaseUser | AnonymousUser


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


def current_team(request: HttpRequest) -> Access:
    """The team the user is working in: the one chosen in the session, else the personal one."""
    user = request.user
    qs = Membership.objects.filter(user=user).select_related("team")
    chosen = request.session.get("team")
    membership = None
    if chosen:
        membership = qs.filter(team__code=chosen).first()
    if membership is None:
        membership = qs.order_by("-team__personal", "created").first()
    if membership is None:
        # Accounts always get a personal team; this only happens if it was deleted by hand.
        from jobs.services import personal_team_create

        personal_team_create(user=user)
        membership = qs.first()
    assert membership is not None
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
