"""Make sure an admin account exists, so a fresh install can be logged into at once."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Create the admin account if there is none: from DJANGO_SUPERUSER_USERNAME / "
        "DJANGO_SUPERUSER_PASSWORD when set, otherwise 'admin' with a generated password "
        "printed once."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "").strip()
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD", "")
        if not username:
            existing = User.objects.filter(is_superuser=True).order_by("pk").first()
            if existing is not None:
                self.stdout.write(f"Admin account: {existing.get_username()}")
                return
            username = "admin"
        user = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
        if user is not None:
            changed = not (user.is_superuser and user.is_staff and user.is_active)
            user.is_superuser = user.is_staff = user.is_active = True
            if password and not user.check_password(password):
                user.set_password(password)
                changed = True
                self.stdout.write("Admin password set from DJANGO_SUPERUSER_PASSWORD.")
            if changed:
                user.save()
            self.stdout.write(f"Admin account: {username}")
            return
        generated = not password
        password = password or secrets.token_urlsafe(12)
        User.objects.create_superuser(**{User.USERNAME_FIELD: username}, password=password)
        if generated:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Created the admin account '{username}' with the password: {password}\n"
                    "It is shown only this once: write it down, then change it in the admin "
                    "(or set DJANGO_SUPERUSER_PASSWORD and run again)."
                )
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Created the admin account '{username}' with DJANGO_SUPERUSER_PASSWORD."
                )
            )
