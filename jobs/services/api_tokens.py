"""API tokens for the Kling-compatible API: made, checked on every request, revoked.

Two kinds, both scoped to one team and only as good as their owner's standing in it:

- an opaque Bearer token, stored as its hash;
- a key pair like Kling's (access key + secret key): the caller signs a short-lived HS256 JWT
  (`iss` = access key, `exp`, `nbf`) with the secret, as Kling's official API expects. Checking
  a signature needs the secret itself, so it is kept encrypted (Fernet: AES-128-CBC + HMAC)
  with a key derived by HKDF-SHA256 from SECRET_KEY (SECRET_KEY_FALLBACKS still decrypt, so a
  key rotation keeps pairs working); it is shown once and never again.
"""

from __future__ import annotations

import base64
import secrets
from datetime import timedelta
from typing import Any

import jwt
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.utils import timezone

from jobs.api.contract import AUTH_EXPIRED, AUTH_INVALID, AUTH_NOT_YET_VALID
from jobs.models import (
    ApiToken,
    Membership,
    Team,
    hash_token,
    new_token,
)

API_TOKEN_PREFIX = "avs_"  # noqa: S105 (a public marker: recognisable in logs and by scanners)
API_TOKEN_TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often
ACCESS_KEY_PREFIX = "avsak"  # a public marker, like API_TOKEN_PREFIX
SECRET_KEY_PREFIX = "avssk"  # noqa: S105 (the marker only)
# Clock difference tolerated on exp and nbf: Kling's own clients already send nbf = now - 5.
JWT_LEEWAY_SECONDS = 5
_FERNET_INFO = b"avatarsite api key pair secrets v1"


class ApiTokenRefused(Exception):
    """An API token that cannot be used; str() says why, in words for the caller, and `code`
    is Kling's business code for it (1002 invalid, 1003 not yet valid, 1004 expired)."""

    def __init__(self, message: str, *, code: int = AUTH_INVALID) -> None:
        super().__init__(message)
        self.code = code


def _fernet() -> MultiFernet:
    """Fernet keys derived from SECRET_KEY (first: encrypts) and its fallbacks (decrypt only)."""
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet(
        [
            Fernet(
                base64.urlsafe_b64encode(
                    HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_FERNET_INFO).derive(
                        str(key).encode()
                    )
                )
            )
            for key in keys
        ]
    )


def _secret_of(token: ApiToken) -> str | None:
    try:
        return _fernet().decrypt(token.secret_encrypted.encode()).decode()
    except (InvalidToken, ValueError):
        return None  # SECRET_KEY changed with no fallback: the pair cannot be checked any more


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


def api_key_pair_create(*, user: User, team: Team, name: str = "") -> tuple[ApiToken, str]:
    """A new access key + secret key pair for one team; (token, secret), the secret returned
    once. The access key is not secret (it travels in every JWT) and stays on the token."""
    membership = Membership.objects.filter(user=user, team=team).first()
    if membership is None or not membership.can_write:
        raise ValidationError(
            f"Only members who can make jobs in {team.name} can create API keys for it."
        )
    name = " ".join((name or "").split())[:100] or "API key pair"
    access_key = ACCESS_KEY_PREFIX + secrets.token_hex(14)
    secret = SECRET_KEY_PREFIX + secrets.token_urlsafe(32)
    api_token = ApiToken.objects.create(
        user=user,
        team=team,
        name=name,
        # The Bearer route stays shut for a pair: the hash of a value nobody holds.
        token_hash=hash_token(new_token()),
        prefix=access_key[:12],
        access_key=access_key,
        secret_encrypted=_fernet().encrypt(secret.encode()).decode(),
    )
    return api_token, secret


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


def looks_like_jwt(raw: str) -> bool:
    """Whether a Bearer value is a JWT (three base64url parts) rather than an opaque token."""
    return raw.count(".") == 2 and not raw.startswith(API_TOKEN_PREFIX)


def api_token_authenticate(raw: str) -> ApiToken:
    """The live token for a raw Bearer value (an opaque token or a JWT signed with a key
    pair's secret), or ApiTokenRefused saying why not."""
    if looks_like_jwt(raw):
        return _in_good_standing(_token_for_jwt(raw))
    token = (
        ApiToken.objects.select_related("team", "user").filter(token_hash=hash_token(raw)).first()
    )
    if token is None:
        raise ApiTokenRefused(
            "This API token is not valid: check that it was copied whole, or create a new one."
        )
    return _in_good_standing(token)


def _token_for_jwt(raw: str) -> ApiToken:
    """The key pair that signed this JWT, checked the way Kling checks its own: HS256 only,
    `iss` a known access key, the signature, then `exp` (required) and `nbf`."""
    try:
        header = jwt.get_unverified_header(raw)
        claims = jwt.decode(raw, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise ApiTokenRefused(
            "This token is not a readable JWT: sign {iss, exp, nbf} with HS256 and send it as "
            "'Bearer <jwt>'."
        ) from None
    if header.get("alg") != "HS256":
        raise ApiTokenRefused(
            f"JWT algorithm {str(header.get('alg'))[:20]!r} is not accepted: sign with HS256."
        )
    access_key = claims.get("iss")
    if not isinstance(access_key, str) or not access_key:
        raise ApiTokenRefused("The JWT has no iss: put your access key in it.")
    token = (
        ApiToken.objects.select_related("team", "user").filter(access_key=access_key[:64]).first()
    )
    secret = _secret_of(token) if token is not None else None
    if token is None or secret is None:
        raise ApiTokenRefused(
            "The JWT's iss is not an access key of this studio: check the access key, or "
            "create a key pair on the API tokens page."
        )
    try:
        jwt.decode(
            raw,
            secret,
            algorithms=["HS256"],
            options={"require": ["exp"]},
            leeway=JWT_LEEWAY_SECONDS,
        )
    except jwt.InvalidSignatureError:
        raise ApiTokenRefused(
            "The JWT's signature does not match its access key: sign it with the secret key "
            "that was shown with this access key."
        ) from None
    except jwt.ExpiredSignatureError:
        raise ApiTokenRefused(
            "The JWT has expired (exp is in the past): sign a new one, and check the clock.",
            code=AUTH_EXPIRED,
        ) from None
    except jwt.ImmatureSignatureError:
        raise ApiTokenRefused(
            "The JWT is not valid yet (nbf is in the future): check the clock.",
            code=AUTH_NOT_YET_VALID,
        ) from None
    except jwt.MissingRequiredClaimError:
        raise ApiTokenRefused("The JWT has no exp: give it one (e.g. now + 1800 s).") from None
    except jwt.PyJWTError as exc:
        raise ApiTokenRefused(f"The JWT is invalid: {exc}.") from None
    return token


def _in_good_standing(token: ApiToken) -> ApiToken:
    """A token is only as good as its owner's standing: it stops working when the owner leaves
    the team, is made a viewer, or is deactivated, without anyone having to remember to revoke
    it."""
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
