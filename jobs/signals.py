"""Every account gets a personal team the moment it exists, however it was created."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="personal_team")
def give_personal_team(sender: Any, instance: Any, created: bool, raw: bool = False,
                       **kwargs: Any) -> None:
    if created and not raw:
        from jobs.services import personal_team_create

        personal_team_create(user=instance)
