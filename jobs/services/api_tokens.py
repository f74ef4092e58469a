"""API tokens for the Kling-compatible API: made, checked on every request, revoked.

A token is stored as its hash, is scoped to one team, and is only as good as its owner's
standing in that team.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.utils import timezone

from jobs.models import (
    ApiToken,
    Membership,
    Team,
    hash_token,
    new_token,
)

API_TOKEN_PREFIX = "avs_"  # noqa: S105 (a public marker: recognisable in logs and by scanners)
API_TOKEN_TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often


class ApiTokenRefused(Exception):
    """An API token that cannot be used; str() says why, in words for the caller."""


def api_token_create(*, user: User, team: Team, name: str = "") -> tuple[ApiToken, str]:
    """A new token for one team; the token is returned once and only its hash is kept."""
    membership = Membership.objects.filter(user=user, team=team).first()
    if membership is None or not membership.can_write:
        raise ValidationError(
            f"Only members who can make jobs in {team.name} can create API tokens for it."
        )
    name = " ".join((name or "").split())[:100] or "API token"
    token = API_TOKEN_PREFIX + new_token()
    api_token = ApiToken.objects.create(
        user=user, team=team, name=name, token_hash=hash_token(token), prefix=token[:10]
    )
    return api_token, token


def api_token_revoke(*, token: ApiToken) -> bool:
    """Revoke a token for good; False if it was already revoked."""
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    return bool(revoked)


def api_token_can_read(token: ApiToken) -> bool:
    """Whether what was handed out for this token (its video links) still opens: the token is
    not revoked and its owner is an active member of its team."""
    if token.revoked_at is not None or not token.user.is_active:
        return False
    return Membership.objects.filter(user=token.user_id, team=token.team_id).exists()


def api_tokens_revoke_for(*, user: User, team: Team) -> int:
    """Revoke every live token `user` holds for `team`: they lost the right to make jobs there
    (removed, or made a viewer), and getting it back later must not bring the tokens back."""
    return ApiToken.objects.filter(user=user, team=team, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def api_token_authenticate(raw: str) -> ApiToken:
    """The live token for a raw Bearer value, or ApiTokenRefused saying why not.

    A token is only as good as its owner's standing: it stops working when the owner leaves the
    team, is made a viewer, or is deactivated, without anyone having to remember to revoke it.
    """
    token = (
        ApiToken.objects.select_related("team", "user").filter(token_hash=hash_token(raw)).first()
    )
    if token is None:
        raise ApiTokenRefused(
            "This API token is not valid: check that it was copied whole, or create a new one."
        )
    if token.revoked_at is not None:
        raise ApiTokenRefused(
            f"This API token ({token.name}) was revoked on {token.revoked_at:%Y-%m-%d}: "
            "create a new one."
        )
    membership = Membership.objects.filter(user=token.user_id, team=token.team_id).first()
    if not token.user.is_active or membership is None or not membership.can_write:
        raise ApiTokenRefused(
            f"The owner of this API token can no longer make jobs in {token.team.name}, so the "
            "token no longer works."
        )
    now = timezone.now()
    if token.last_used_at is None or token.last_used_at < now - API_TOKEN_TOUCH_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def api_tokens_visible(*, user: User, team: Team, is_admin: bool) -> Any:
    """The tokens a person may see on the tokens page: their own, or all the team's for admins."""
    tokens = ApiToken.objects.filter(team=team).select_related("user")
    return tokens if is_admin else tokens.filter(user=user)
