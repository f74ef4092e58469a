"""The studio's public address, the absolute links built on it, and the HMAC-signed links.

Every link that leaves the server (an email, a callback, an invite or share link shown to be
copied, an API task's video URL) is built here, so the address rule lives in one place:
PUBLIC_BASE_URL when it is set, else the address the request came in on, else (a worker with
no request) the address `make run` serves on.

Signed links carry an HMAC of the job's code made with SECRET_KEY and a purpose of their own
(`_signature`), so a link for one purpose never opens another. The API's video links also carry
the API token they were listed to and the time they were made: they expire after
VIDEO_LINK_MAX_AGE, and the view re-checks the token on every request (jobs/api/views.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from django.conf import settings
from django.core import signing
from django.http import HttpRequest
from django.urls import reverse
from django.utils.crypto import salted_hmac

from jobs.models import ApiToken, Asset, AvatarJob

# The worker's fallback without PUBLIC_BASE_URL: where `make run` serves the studio.
DEV_SERVER_URL = "http://127.0.0.1:8000"

_VIDEO_PURPOSE = "avatarsite.api-video"
_AUDIO_PURPOSE = "avatarsite.api-audio"  # text to speech's audios[].url
_CALLBACK_PURPOSE = "avatarsite.kling-callback"
# A listed video link works this long; asking for the task again gives a fresh one.
VIDEO_LINK_MAX_AGE = timedelta(days=1)


def public_base_url(request: HttpRequest | None = None) -> str:
    """Where people and callers reach this server: PUBLIC_BASE_URL, else the address they used."""
    if settings.PUBLIC_BASE_URL:
        return str(settings.PUBLIC_BASE_URL).rstrip("/")
    if request is not None:
        return request.build_absolute_uri("/").rstrip("/")
    return DEV_SERVER_URL


def absolute(path: str, request: HttpRequest | None = None) -> str:
    """`path` (from reverse() or get_absolute_url()) as a full URL on the public address."""
    return f"{public_base_url(request)}{path}"


def callbacks_enabled() -> bool:
    """Kling can only call back when the server knows an address Kling can reach."""
    return bool(settings.PUBLIC_BASE_URL)


# --- signed links ------------------------------------------------------------------------------


def _signature(purpose: str, job: AvatarJob) -> str:
    return salted_hmac(purpose, str(job.code)).hexdigest()[:32]


def _video_signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=_VIDEO_PURPOSE)


def video_signature(job: AvatarJob, token: ApiToken) -> str:
    """The secret part of a result's link: `<token id>:<time>:<HMAC of code, token id, time>`.

    The job's code is signed but not repeated: it is already in the link's path.
    """
    signed = _video_signer().sign(f"{job.code}:{token.pk}")
    return signed.removeprefix(f"{job.code}:")


class VideoLinkExpired(Exception):
    """A genuine video link past VIDEO_LINK_MAX_AGE."""


@dataclass(frozen=True)
class VideoLink:
    code: UUID
    token_id: int


def video_link_open(code: UUID, signature: str) -> VideoLink | None:
    """What a video link names, if its signature is ours; VideoLinkExpired once it is too old.

    Says nothing about whether the token is still good: the caller checks that.
    """
    return _link_open(_video_signer(), code, signature)


def audio_link_open(code: UUID, signature: str) -> VideoLink | None:
    """The same for a voice-over's link (the asset's code), with its own purpose."""
    return _link_open(signing.TimestampSigner(salt=_AUDIO_PURPOSE), code, signature)


def _link_open(signer: signing.TimestampSigner, code: UUID, signature: str) -> VideoLink | None:
    try:
        value = signer.unsign(f"{code}:{signature}", max_age=VIDEO_LINK_MAX_AGE)
    except signing.SignatureExpired:
        raise VideoLinkExpired from None
    except signing.BadSignature:
        return None
    signed_code, _, token_id = value.partition(":")
    if signed_code != str(code) or not token_id.isdigit():
        return None
    return VideoLink(code=code, token_id=int(token_id))


def audio_url(asset: Asset, *, token: ApiToken, base_url: str) -> str:
    """The API's link to a voice-over (text to speech's `audios[].url`), for the caller holding
    `token`, valid for VIDEO_LINK_MAX_AGE and only while the token is."""
    signed = signing.TimestampSigner(salt=_AUDIO_PURPOSE).sign(f"{asset.code}:{token.pk}")
    path = reverse("api:audio-file", args=[asset.code, signed.removeprefix(f"{asset.code}:")])
    return f"{base_url}{path}"


def video_url(job: AvatarJob, *, token: ApiToken, base_url: str) -> str:
    """The API's link to a finished job's video (`/kling/files/<code>/<signature>/video.mp4`),
    for the caller holding `token`, valid for VIDEO_LINK_MAX_AGE."""
    path = reverse("api:video-file", args=[job.code, video_signature(job, token)])
    return f"{base_url}{path}"


def callback_secret(job: AvatarJob) -> str:
    """The secret part of the address Kling calls back on for one job."""
    return _signature(_CALLBACK_PURPOSE, job)


def callback_url(job: AvatarJob) -> str | None:
    """Where Kling reports this job's progress; None while callbacks are off."""
    if not callbacks_enabled():
        return None
    return absolute(reverse("kling-callback", args=[job.code, callback_secret(job)]))
