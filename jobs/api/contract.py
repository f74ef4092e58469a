"""Kling's contract as this server answers it: business codes, limits, errors, task objects.

Every answer is the envelope `{"code", "message", "request_id", "data"}`; business codes (those
of Kling's API documentation) say what went wrong (1001/1002 auth, 1102 quota, 1201 a
parameter, named first in the message as "<field>: ..."); timestamps are milliseconds and
statuses are `submitted`, `processing`, `succeed`, `failed`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.http import JsonResponse

from jobs.links import video_url
from jobs.media.limits import AUDIO_MAX_BYTES, MB, PORTRAIT_MAX_BYTES
from jobs.models import ApiToken, AvatarJob
from jobs.presenters import kling_status

# Kling's business codes used here (its documentation's "Error codes"), with their HTTP statuses.
AUTH_MISSING = 1001
AUTH_INVALID = 1002
AUTH_NOT_YET_VALID = 1003
AUTH_EXPIRED = 1004
QUOTA_USED_UP = 1102
NO_PERMISSION = 1103
BAD_REQUEST = 1200
BAD_PARAMETER = 1201
BAD_METHOD = 1202
NOT_FOUND = 1203
TOO_MANY_REQUESTS = 1302
SERVER_ERROR = 5000
HTTP_STATUS = {
    AUTH_MISSING: 401,
    AUTH_INVALID: 401,
    AUTH_NOT_YET_VALID: 401,
    AUTH_EXPIRED: 401,
    QUOTA_USED_UP: 429,
    NO_PERMISSION: 403,
    BAD_REQUEST: 400,
    BAD_PARAMETER: 400,
    BAD_METHOD: 405,
    NOT_FOUND: 404,
    TOO_MANY_REQUESTS: 429,
    SERVER_ERROR: 500,
}

# Fetched and decoded files may exceed the limit by a little, so that media validation (which
# says exactly how big the file is) gives the verdict; beyond the margin we refuse ourselves.
MARGIN_BYTES = 1 * MB
IMAGE_MAX_BYTES = PORTRAIT_MAX_BYTES + MARGIN_BYTES
SOUND_MAX_BYTES = AUDIO_MAX_BYTES + MARGIN_BYTES
# Both files as base64 (4 bytes per 3) and room for the other fields.
BODY_MAX_BYTES = (IMAGE_MAX_BYTES + SOUND_MAX_BYTES) * 4 // 3 + 256 * 1024
FETCH_SECONDS = 20.0  # wall-clock time for one URL fetch, redirects included
# URL fetches one token may have running at once, across all web processes: each holds a web
# thread for up to FETCH_SECONDS, so a caller pointing many creates at a slow server would
# otherwise take every thread and stall the site for everyone.
FETCH_SLOTS_PER_TOKEN = 2
# URL fetches one web process runs at once, whatever the tokens: run_studio gives each gunicorn
# worker 4 threads, so callers with many tokens still leave half of them free for pages.
FETCHES_PER_PROCESS = 2
PAGE_NUM_MAX = 1000
PAGE_SIZE_MAX = 500
PAGE_SIZE_DEFAULT = 30
EXTERNAL_ID_MAX_CHARS = 200  # AvatarJob.client_external_id
AUDIO_ID_MAX_CHARS = 100  # AvatarJob.kling_audio_id
CALLBACK_URL_MAX_CHARS = 2000  # AvatarJob.client_callback_url


class ApiError(Exception):
    """A Kling error answer: business code, message (the field first), HTTP status, and (for
    a refusal with details, such as a batch's rows) the envelope's `data`."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        data: Any = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.data = data

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 400)


def bad(field: str, problem: str) -> ApiError:
    return ApiError(BAD_PARAMETER, f"{field}: {problem}")


def _ms(moment: Any) -> int:
    return int(moment.timestamp() * 1000)


def _units(value: Decimal | None) -> str:
    """Kling sends units as a string ("0", "2.5"); drafts cost nothing."""
    if value is None:
        return "0"
    text = f"{value.normalize():f}"
    return text if text not in ("", "-0") else "0"


def task_object(
    job: AvatarJob, *, base_url: str, full: bool = True, token: ApiToken | None = None
) -> dict[str, Any]:
    """A job as Kling shows a task: short in a create reply, full in queries and callbacks.

    The video link is signed for `token` (the caller's; a callback's is the job's own token)
    and stops working when the token does; without a token there is no link to give.
    """
    data: dict[str, Any] = {
        "task_id": str(job.code),
        "task_status": kling_status(job.status),
        "task_info": {"external_task_id": job.client_external_id},
        "created_at": _ms(job.created),
        "updated_at": _ms(job.updated),
    }
    if not full:
        return data
    videos = []
    token = token or job.api_token
    if job.status == AvatarJob.Status.SUCCEEDED and job.video and token is not None:
        videos.append(
            {
                "id": str(job.code),
                "url": video_url(job, token=token, base_url=base_url),
                "duration": f"{job.duration or 0:.3f}",
            }
        )
    message = ""
    if job.status == AvatarJob.Status.FAILED:
        message = job.error_message or "The video could not be made."
    elif job.status == AvatarJob.Status.CANCELED:
        message = job.error_message or "Canceled in the studio before it started."
    elif job.status == AvatarJob.Status.SUCCEEDED:
        message = job.draft_note  # a draft without lip movement says why; "" otherwise
    data.update(
        task_status_msg=message,
        task_result={"videos": videos},
        final_unit_deduction=_units(job.units_charged),
        # As the caller asked on create (and Kling was told); stored copies are Kling's `url`.
        watermark_info={"enabled": bool(job.watermark)},
    )
    return data


# --- plumbing: auth, envelope, errors --------------------------------------------------------


def envelope(data: Any, request_id: str) -> JsonResponse:
    body = {"code": 0, "message": "SUCCEED", "request_id": request_id, "data": data}
    return JsonResponse(body, safe=False)


def error_response(exc: ApiError, request_id: str) -> JsonResponse:
    body = {"code": exc.code, "message": exc.message, "request_id": request_id, "data": exc.data}
    response = JsonResponse(body, status=exc.http_status)
    for name, value in exc.headers.items():
        response[name] = value
    return response
