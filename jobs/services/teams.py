"""Teams and roles: personal teams, new teams, members, roles and invite links."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from jobs.models import (
    Membership,
    Team,
    TeamInvite,
    hash_token,
    new_token,
)
from jobs.services.api_tokens import api_tokens_revoke_for


@transaction.atomic
def personal_team_create(*, user: User) -> Team:
    name = user.get_username()
    team = Team.objects.create(name=f"{name}'s team", personal=True)
    Membership.objects.create(user=user, team=team, role=Membership.Role.ADMIN)
    return team


Role = Membership.Role


@transaction.atomic
def team_create(*, name: str, user: User) -> Team:
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
    if role == Role.VIEWER:  # a viewer cannot make jobs, so their API tokens go
        api_tokens_revoke_for(user=membership.user, team=membership.team)
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
    api_tokens_revoke_for(user=membership.user, team=membership.team)


INVITE_DAYS = 7


def invite_create(
    *, team: Team, by: User, role: str = Role.MEMBER, days: int = INVITE_DAYS
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
def invite_accept(*, token: str, user: User) -> Membership:
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


@transaction.atomic
def signup_with_invite(*, token: str, username: str, email: str, password: str) -> Membership:
    """A new account joined to the inviting team in one step: if the invite is gone by the time
    the form is sent, no account is left behind either (the whole step rolls back)."""
    user = get_user_model().objects.create_user(username, email, password)  # + personal team
    return invite_accept(token=token, user=user)
