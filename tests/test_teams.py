"""Teams and roles: invites are single use and expire; the last admin cannot go."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from jobs.models import Membership, TeamInvite, hash_token
from jobs.services.teams import (
    invite_accept,
    invite_create,
    member_add,
    member_remove,
    member_set_role,
    team_create,
)

pytestmark = pytest.mark.django_db
Role = Membership.Role


def test_a_new_team_has_its_creator_as_admin(owner):
    team = team_create(name="  Marketing ", user=owner)
    assert team.name == "Marketing" and team.slug == "marketing" and not team.personal
    assert Membership.objects.get(team=team).role == Role.ADMIN


def test_a_team_needs_a_name(owner):
    with pytest.raises(ValidationError, match="Give the team a name"):
        team_create(name="   ", user=owner)


def test_add_an_existing_user_by_name_or_email(team, outsider):
    membership = member_add(team=team, login="OSCAR@example.com", role=Role.VIEWER)
    assert (membership.user, membership.role) == (outsider, Role.VIEWER)
    with pytest.raises(ValidationError, match="already in"):
        member_add(team=team, login="oscar")
    with pytest.raises(ValidationError, match="no account called 'nobody'"):
        member_add(team=team, login="nobody")


def test_invites_are_hashed_single_use_and_grant_their_role(team, owner, outsider, viewer):
    invite, token = invite_create(team=team, by=owner, role=Role.VIEWER)
    assert len(token) >= 32 and invite.token_hash == hash_token(token)
    assert not TeamInvite.objects.filter(token_hash=token).exists()  # only the hash is kept
    membership = invite_accept(token=token, user=outsider)
    assert (membership.team, membership.role) == (team, Role.VIEWER)
    invite.refresh_from_db()
    assert invite.used_by == outsider and invite.used_at
    stranger = type(outsider).objects.create_user("stranger")
    with pytest.raises(ValidationError, match="already used"):
        invite_accept(token=token, user=stranger)


def test_expired_and_unknown_invites_are_refused(team, owner, outsider):
    invite, token = invite_create(team=team, by=owner)
    TeamInvite.objects.filter(pk=invite.pk).update(expires_at=timezone.now() - timedelta(1))
    with pytest.raises(ValidationError, match="expired"):
        invite_accept(token=token, user=outsider)
    with pytest.raises(ValidationError, match="not valid"):
        invite_accept(token="guessed-" + token[8:], user=outsider)
    assert not Membership.objects.filter(team=team, user=outsider).exists()


def test_the_last_admin_cannot_leave_or_be_demoted(team, owner, teammate):
    admin_membership = Membership.objects.get(team=team, user=owner)
    with pytest.raises(ValidationError, match="at least one admin"):
        member_set_role(membership=admin_membership, role=Role.MEMBER)
    with pytest.raises(ValidationError, match="last admin cannot leave"):
        member_remove(membership=admin_membership)
    bob = Membership.objects.get(team=team, user=teammate)
    member_set_role(membership=bob, role=Role.ADMIN)
    member_set_role(membership=admin_membership, role=Role.VIEWER)
    assert Membership.objects.get(team=team, user=owner).role == Role.VIEWER
    with pytest.raises(ValidationError, match="last admin"):
        member_remove(membership=bob)


def test_members_can_be_removed(team, teammate):
    member_remove(membership=Membership.objects.get(team=team, user=teammate))
    assert not Membership.objects.filter(team=team, user=teammate).exists()
