"""Workflows that touch several models. Keyword-only, typed, atomic; side effects on commit."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from jobs.models import Membership, Team


@transaction.atomic
def personal_team_create(*, user: AbstractBaseUser) -> Team:
    name = user.get_username()
    team = Team.objects.create(name=f"{name}'s team", personal=True)
    Membership.objects.create(user=user, team=team, role=Membership.Role.ADMIN)
    return team
