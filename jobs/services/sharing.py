"""Share links: a finished video for anyone with the link, until it expires or is revoked.

Tokens are returned once and only their hash is kept (jobs/models.py: hash_token).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db.models import F
from django.utils import timezone

from jobs.models import (
    AvatarJob,
    ShareLink,
    hash_token,
    new_token,
)


def share_create(
    *,
    job: AvatarJob,
    by: User,
    expires_at: Any = None,
    allow_download: bool = False,
) -> tuple[ShareLink, str]:
    """A link to a finished video; the token is returned once and only its hash is kept."""
    if job.status != AvatarJob.Status.SUCCEEDED:
        raise ValidationError("Only a finished video can be shared.")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError("The expiry date is in the past: pick a later one.")
    token = new_token()
    link = ShareLink.objects.create(
        job=job,
        created_by=by,
        token_hash=hash_token(token),
        expires_at=expires_at,
        allow_download=allow_download,
    )
    return link, token


def share_revoke(*, link: ShareLink) -> None:
    ShareLink.objects.filter(pk=link.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def share_open(token: str, *, count_view: bool = False) -> ShareLink | None:
    """The live link for a token (None if unknown, revoked or expired)."""
    link = (
        ShareLink.objects.live()
        .select_related("job", "job__portrait")
        .filter(token_hash=hash_token(token), job__status=AvatarJob.Status.SUCCEEDED)
        .first()
    )
    if link is not None and count_view:
        ShareLink.objects.filter(pk=link.pk).update(
            views=F("views") + 1, last_viewed_at=timezone.now()
        )
    return link
