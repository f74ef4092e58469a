"""The studio's public address, the absolute links built on it, and the HMAC-signed links.

Every link that leaves the server (an email, a callback, an invite or share link shown to be
copied, an API task's video URL) is built here, so the address rule lives in one place:
PUBLIC_BASE_URL when it is set, else the address the request came in on, else (a worker with
no request) the address `make run` serves on.

Signed links carry an HMAC of the job's code made with SECRET_KEY and a purpose of their own
(`_signature`), so a link for one purpose never opens another.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from django.utils.crypto import salted_hmac

from jobs.models import AvatarJob

# The worker's fallback without PUBLIC_BASE_URL: where `make run` serves the studio.
DEV_SERVER_URL = "http://127.0.0.1:8000"

_VIDEO_PURPOSE = "avatarsite.api-video"
_CALLBACK_PURPOSE = "avatarsite.kling-callback"


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


def video_signature(job: AvatarJob) -> str:
    """The secret part of a result's link: works without a session, for as long as the job lives."""
    return _signature(_VIDEO_PURPOSE, job)


def video_url(job: AvatarJob, *, base_url: str) -> str:
    """The API's link to a finished job's video (`/kling/files/<code>/<signature>/video.mp4`)."""
    path = reverse("api:video-file", args=[job.code, video_signature(job)])
    return f"{base_url}{path}"


def callback_secret(job: AvatarJob) -> str:
    """The secret part of the address Kling calls back on for one job."""
    return _signature(_CALLBACK_PURPOSE, job)


def callback_url(job: AvatarJob) -> str | None:
    """Where Kling reports this job's progress; None while callbacks are off."""
    if not callbacks_enabled():
        return None
    return absolute(reverse("kling-callback", args=[job.code, callback_secret(job)]))
