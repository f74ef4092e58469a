"""Signal receivers: a personal team for every new account, and the worker's ticker."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver
from django_q.signals import post_spawn

from jobs import ticker
from jobs.services.teams import personal_team_create


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="personal_team")
def give_personal_team(
    sender: Any, instance: Any, created: bool, raw: bool = False, **kwargs: Any
) -> None:
    """Every account has a personal team however it was made (sign-up, admin, shell)."""
    if created and not raw:
        personal_team_create(user=instance)


@receiver(post_spawn, dispatch_uid="avatarsite_ticker")
def start_ticker(sender: Any, proc_name: str, **kwargs: Any) -> None:
    ticker.start()
