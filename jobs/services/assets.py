"""The team's library: validated portraits and voice-overs, stored once, renamed, deleted."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models.deletion import ProtectedError

from jobs.media.audio import ValidAudio
from jobs.media.names import display_name
from jobs.media.portraits import ValidPortrait
from jobs.models import (
    Asset,
    Team,
)


def asset_store(*, team: Team, user: User | None, valid: ValidPortrait | ValidAudio) -> Asset:
    """Store a validated file in the team's library, or return the copy it already has.

    The same bytes uploaded twice are stored once (by checksum, per team and kind).
    """
    kind = Asset.Kind.PORTRAIT if isinstance(valid, ValidPortrait) else Asset.Kind.AUDIO
    existing = Asset.objects.filter(team=team, kind=kind, sha256=valid.sha256).first()
    if existing is not None:
        return existing
    asset = Asset(
        team=team,
        created_by=user,
        kind=kind,
        name=valid.name,
        sha256=valid.sha256,
        size=valid.size,
        format=valid.format,
        width=getattr(valid, "width", None),
        height=getattr(valid, "height", None),
        duration=getattr(valid, "duration", None),
    )
    asset.file.save(f"upload.{valid.ext}", ContentFile(valid.content), save=False)
    try:
        with transaction.atomic():
            asset.save()
    except IntegrityError:
        # Someone stored the same file a moment ago: keep theirs, drop ours.
        asset.file.delete(save=False)
        return Asset.objects.get(team=team, kind=kind, sha256=valid.sha256)
    except BaseException:
        asset.file.delete(save=False)
        raise
    return asset


def asset_rename(*, asset: Asset, name: str) -> Asset:
    cleaned = display_name(name or "")
    if not cleaned:
        raise ValidationError("Give the file a name.")
    asset.name = cleaned
    asset.save(update_fields=["name"])
    return asset


def asset_delete(*, asset: Asset) -> None:
    """Delete a library file that no job uses (jobs keep their inputs for good)."""
    used = asset.portrait_jobs.exists() or asset.audio_jobs.exists()
    if used:
        raise ValidationError(
            f"{asset.name} is used by jobs, which keep their inputs: it cannot be deleted."
        )
    try:
        with transaction.atomic():
            asset.delete()
            transaction.on_commit(lambda: asset.file.delete(save=False))
    except ProtectedError:  # a job started using it a moment ago
        raise ValidationError(
            f"{asset.name} is used by jobs, which keep their inputs: it cannot be deleted."
        ) from None
