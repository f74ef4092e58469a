"""The Kling-compatible API: Kling's avatar endpoints, served by the team's own server.

Any script or tool written for Kling (or for the gateways that re-expose it) can point its base
URL at `<server>/kling` (or `<server>`) and its Bearer key at a personal API token: it gets the
team's queue, quotas, permanent copies and the free draft mode, and the team's Kling key never
leaves the server.

The contract is Kling's (see /work/shared/KLING_API.md): every answer is the envelope
`{"code", "message", "request_id", "data"}`, business codes say what went wrong (1001/1002 auth,
1102 quota, 1201 a parameter, named first in the message as "<field>: ..."), timestamps are
milliseconds and statuses are `submitted`, `processing`, `succeed`, `failed`. API jobs are
ordinary jobs (services.api_job_create → services.job_create), so they show on the dashboard.

The portal pages that go with it (tokens, docs) are at the end of this module.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from functools import wraps
from typing import Any
from urllib.parse import unquote, urlsplit
from uuid import UUID

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.crypto import constant_time_compare, salted_hmac
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from jobs import netfetch, openapi, services, tts
from jobs.access import current_team, membership_for
from jobs.media import (
    AUDIO_MAX_BYTES,
    MB,
    PORTRAIT_MAX_BYTES,
    MediaError,
    _sniff,
    validate_audio,
    validate_portrait,
    validate_prompt,
)
from jobs.models import ApiToken, Asset, AvatarJob, Membership
from jobs.serve import serve_stored_file

log = logging.getLogger(__name__)
# An API view: (request, token, **url kwargs) -> the envelope's `data`.
ApiViewFunc = Callable[..., Any]

# Kling's business codes used here (KLING_API.md, "Error codes"), with Kling's HTTP statuses.
AUTH_MISSING = 1001
AUTH_INVALID = 1002
QUOTA_USED_UP = 1102
BAD_REQUEST = 1200
BAD_PARAMETER = 1201
BAD_METHOD = 1202
NOT_FOUND = 1203
SERVER_ERROR = 5000
HTTP_STATUS = {
    AUTH_MISSING: 401,
    AUTH_INVALID: 401,
    QUOTA_USED_UP: 429,
    BAD_REQUEST: 400,
    BAD_PARAMETER: 400,
    BAD_METHOD: 405,
    NOT_FOUND: 404,
    SERVER_ERROR: 500,
}

# Fetched and decoded files may exceed the limit by a little, so that media validation (which
# says exactly how big the file is) gives the verdict; beyond the margin we refuse ourselves.
MARGIN_BYTES = 1 * MB
IMAGE_MAX_BYTES = PORTRAIT_MAX_BYTES + MARGIN_BYTES
SOUND_MAX_BYTES = AUDIO_MAX_BYTES + MARGIN_BYTES
# Both files as base64 (4 bytes per 3) and room for the other fields.
BODY_MAX_BYTES = (IMAGE_MAX_BYTES + SOUND_MAX_BYTES) * 4 // 3 + 256 * 1024
FETCH_SECONDS = 20.0
PAGE_NUM_MAX = 1000
PAGE_SIZE_MAX = 500
PAGE_SIZE_DEFAULT = 30
EXTERNAL_ID_MAX_CHARS = 200  # AvatarJob.client_external_id
AUDIO_ID_MAX_CHARS = 100  # AvatarJob.kling_audio_id
CALLBACK_URL_MAX_CHARS = 2000  # AvatarJob.client_callback_url

# Our lifecycle seen through Kling's four statuses.
_KLING_STATUS = {
    AvatarJob.Status.QUEUED: "submitted",
    AvatarJob.Status.SUBMITTING: "submitted",
    AvatarJob.Status.SUBMITTED: "processing",
    AvatarJob.Status.PROCESSING: "processing",
    AvatarJob.Status.DOWNLOADING: "processing",
    AvatarJob.Status.SUCCEEDED: "succeed",  # sic: Kling's spelling
    AvatarJob.Status.FAILED: "failed",
    AvatarJob.Status.CANCELED: "failed",
}
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_BASE64_URLSAFE = str.maketrans("-_", "+/")
_PAGE_VALUE = re.compile(r"^[0-9]{1,7}$")

# Extensions media validation accepts, by what a URL's Content-Type or a file's bytes say.
_IMAGE_EXT_BY_TYPE = {"image/jpeg": "jpg", "image/jpg": "jpg", "image/png": "png"}
_AUDIO_EXT_BY_TYPE = {
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/vnd.wave": "wav",
    "audio/mp4": "m4a",
    "audio/m4a": "m4a",
    "audio/x-m4a": "m4a",
    "audio/aac": "aac",
    "audio/aacp": "aac",
    "audio/x-aac": "aac",
}
_IMAGE_EXT_BY_KIND = {"jpeg": "jpg", "png": "png"}
_AUDIO_EXT_BY_KIND = {"mp3": "mp3", "wav": "wav", "mp4": "m4a", "aac": "aac"}


class ApiError(Exception):
    """A Kling error answer: business code, message (the field first), HTTP status."""

    def __init__(self, code: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers or {}

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 400)


def bad(field: str, problem: str) -> ApiError:
    return ApiError(BAD_PARAMETER, f"{field}: {problem}")


# --- representation --------------------------------------------------------------------------


def kling_status(status: str) -> str:
    return _KLING_STATUS.get(status, "processing")


def public_base_url(request: HttpRequest | None = None) -> str:
    """Where callers reach this server: PUBLIC_BASE_URL, else the address they used."""
    if settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL.rstrip("/")
    if request is not None:
        return request.build_absolute_uri("/").rstrip("/")
    return "http://127.0.0.1:8000"  # the worker without PUBLIC_BASE_URL: the dev server's address


def video_signature(job: AvatarJob) -> str:
    """The secret part of a result's link: works without a session, for as long as the job lives."""
    return salted_hmac("avatarsite.api-video", str(job.code)).hexdigest()[:32]


def video_url(job: AvatarJob, *, base_url: str) -> str:
    path = reverse("api:video-file", args=[job.code, video_signature(job)])
    return f"{base_url}{path}"


def _ms(moment: Any) -> int:
    return int(moment.timestamp() * 1000)


def _units(value: Decimal | None) -> str:
    """Kling sends units as a string ("0", "2.5"); drafts cost nothing."""
    if value is None:
        return "0"
    text = f"{value.normalize():f}"
    return text if text not in ("", "-0") else "0"


def task_object(job: AvatarJob, *, base_url: str, full: bool = True) -> dict[str, Any]:
    """A job as Kling shows a task: short in a create reply, full in queries and callbacks."""
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
    if job.status == AvatarJob.Status.SUCCEEDED and job.video:
        videos.append(
            {
                "id": str(job.code),
                "url": video_url(job, base_url=base_url),
                "duration": f"{job.duration or 0:.3f}",
            }
        )
    message = ""
    if job.status == AvatarJob.Status.FAILED:
        message = job.error_message or "The video could not be made."
    elif job.status == AvatarJob.Status.CANCELED:
        message = job.error_message or "Canceled in the studio before it started."
    data.update(
        task_status_msg=message,
        task_result={"videos": videos},
        final_unit_deduction=_units(job.units_charged),
        # Accepted on create, never applied: stored copies carry no watermark.
        watermark_info={"enabled": False},
    )
    return data


# --- plumbing: auth, envelope, errors --------------------------------------------------------


def _envelope(data: Any, request_id: str) -> JsonResponse:
    body = {"code": 0, "message": "SUCCEED", "request_id": request_id, "data": data}
    return JsonResponse(body, safe=False)


def _error_response(exc: ApiError, request_id: str) -> JsonResponse:
    body = {"code": exc.code, "message": exc.message, "request_id": request_id, "data": None}
    response = JsonResponse(body, status=exc.http_status)
    for name, value in exc.headers.items():
        response[name] = value
    return response


def _authenticate(request: HttpRequest) -> ApiToken:
    header = request.headers.get("Authorization", "").strip()
    challenge = {"WWW-Authenticate": 'Bearer realm="avatarsite"'}
    if not header:
        raise ApiError(
            AUTH_MISSING,
            "Authorization is empty: send the header 'Authorization: Bearer <API token>' "
            "(create a token on the API tokens page).",
            headers=challenge,
        )
    scheme, _, raw = header.partition(" ")
    raw = raw.strip()
    if scheme.lower() != "bearer" or not raw:
        raise ApiError(
            AUTH_INVALID,
            "Authorization is invalid: it must be 'Bearer <API token>'.",
            headers=challenge,
        )
    try:
        return services.api_token_authenticate(raw)
    except services.ApiTokenRefused as exc:
        raise ApiError(
            AUTH_INVALID, f"Authorization is invalid: {exc}", headers=challenge
        ) from None


def api_view(*methods: str) -> Callable[[ApiViewFunc], Callable[..., HttpResponse]]:
    """Token auth, the allowed methods and Kling's envelope around a view returning `data`.

    Whatever goes wrong becomes an envelope: a bug answers 5000 (logged), never an HTML page.
    """

    def decorate(view: ApiViewFunc) -> Callable[..., HttpResponse]:
        @csrf_exempt  # token auth: no cookies are involved, so there is nothing to forge
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            request_id = str(uuid.uuid4())
            try:
                token = _authenticate(request)
                if request.method not in methods:
                    raise ApiError(
                        BAD_METHOD,
                        f"The requested method is invalid: {request.method} is not allowed here "
                        f"(use {' or '.join(methods)}).",
                        headers={"Allow": ", ".join(methods)},
                    )
                response = _envelope(view(request, token, *args, **kwargs), request_id)
            except ApiError as exc:
                response = _error_response(exc, request_id)
            except Exception:
                log.exception("API request %s failed", request_id)
                response = _error_response(
                    ApiError(
                        SERVER_ERROR,
                        "Server internal error: the operator can find it by "
                        f"its request id {request_id}.",
                    ),
                    request_id,
                )
            response["X-Request-Id"] = request_id
            response["Cache-Control"] = "no-store"
            return response

        return wrapper

    return decorate


def _json_body(request: HttpRequest) -> dict[str, Any]:
    """The request's JSON object, read with our own cap (Django's 2.5 MB one is for forms)."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > BODY_MAX_BYTES:
        raise ApiError(
            BAD_REQUEST,
            f"body: the request is {length / MB:.1f} MB: the limit is {BODY_MAX_BYTES // MB} MB "
            "(a 10 MB image and a 5 MB sound file as base64). Send large files as URLs.",
        )
    raw = request.read(BODY_MAX_BYTES + 1)
    if len(raw) > BODY_MAX_BYTES:
        raise ApiError(BAD_REQUEST, f"body: the request is larger than {BODY_MAX_BYTES // MB} MB.")
    if not raw.strip():
        raise ApiError(BAD_REQUEST, "body: it is empty: send the parameters as a JSON object.")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(
            BAD_REQUEST,
            "body: it is not valid JSON: send the parameters as a JSON object with "
            "'Content-Type: application/json'.",
        ) from None
    if not isinstance(body, dict):
        raise ApiError(BAD_REQUEST, "body: it must be a JSON object ({...}).")
    return body


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a value of another type"


def _text(body: dict[str, Any], field: str, *, max_chars: int | None = None) -> str:
    """A string parameter; absent, null and "" (as the seed documents send) all mean "not given"."""
    value = body.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise bad(field, f"must be a string, not {_json_type(value)}")
    value = value.strip()
    if max_chars is not None and len(value) > max_chars:
        raise bad(field, f"is {len(value):,} characters long: the limit is {max_chars:,}")
    return value


def _shown(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")


# --- the endpoints ---------------------------------------------------------------------------


@api_view("POST", "GET")
def image2video(request: HttpRequest, token: ApiToken) -> Any:
    """POST: create a task. GET: list the team's tasks, newest first."""
    if request.method == "GET":
        return _list_tasks(request, token)
    return _create_task(request, token)


@api_view("GET")
def image2video_task(request: HttpRequest, token: ApiToken, task_ref: str) -> Any:
    """One task, by our task_id or by the caller's external_task_id (only within the team)."""
    job = services.api_task_find(team=token.team, ref=task_ref)
    if job is None:
        raise ApiError(
            NOT_FOUND,
            f"task_id: no task {_shown(task_ref)} in this team (looked up as a task_id and as an "
            "external_task_id).",
        )
    return task_object(job, base_url=public_base_url(request))


@csrf_exempt
def api_not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    """Any other path under the API: Kling's "not found" envelope, not an HTML page."""
    request_id = str(uuid.uuid4())
    error = ApiError(NOT_FOUND, f"The requested resource does not exist: {request.path}")
    response = _error_response(error, request_id)
    response["X-Request-Id"] = request_id
    return response


@require_GET
def openapi_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(openapi.document(public_base_url(request)))


def video_file(request: HttpRequest, code: UUID, signature: str) -> HttpResponse:
    """A result video by its signed link: no session needed, seekable (byte ranges)."""
    job = AvatarJob.objects.filter(code=code, status=AvatarJob.Status.SUCCEEDED).first()
    if job is None or not job.video or not constant_time_compare(signature, video_signature(job)):
        raise Http404("No such video.")
    return serve_stored_file(
        request, job.video, content_type="video/mp4", filename=f"{job.code}.mp4"
    )


def _list_tasks(request: HttpRequest, token: ApiToken) -> list[dict[str, Any]]:
    page = _page_param(request, "pageNum", default=1, maximum=PAGE_NUM_MAX)
    size = _page_param(request, "pageSize", default=PAGE_SIZE_DEFAULT, maximum=PAGE_SIZE_MAX)
    base_url = public_base_url(request)
    jobs = services.api_task_page(team=token.team, page=page, size=size)
    return [task_object(job, base_url=base_url) for job in jobs]


def _page_param(request: HttpRequest, name: str, *, default: int, maximum: int) -> int:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip()
    if not _PAGE_VALUE.match(value) or not 1 <= int(value) <= maximum:
        raise bad(name, f"must be a whole number from 1 to {maximum}, not {_shown(raw)}")
    return int(value)


def _create_task(request: HttpRequest, token: ApiToken) -> dict[str, Any]:
    body = _json_body(request)
    base_url = public_base_url(request)

    # A repeat of a known external_task_id (a retry after a lost reply) gets the task it made,
    # before anything is fetched or checked again.
    external_id = _text(body, "external_task_id", max_chars=EXTERNAL_ID_MAX_CHARS)
    existing = services.api_task_by_external_id(team=token.team, external_id=external_id)
    if existing is not None:
        return task_object(existing, base_url=base_url, full=False)

    # The cheap checks first: nothing is downloaded for a request that is refused anyway.
    mode = _text(body, "mode", max_chars=40) or AvatarJob.Mode.STD  # Kling's default
    if mode not in AvatarJob.Mode.values:
        raise bad("mode", f"{_shown(mode)} is not a mode: use std, pro or draft (free, offline)")
    try:
        services.check_mode(mode)
    except ValidationError as exc:
        # Not 1103 ("no permission for this model"): the caller fixes it by changing this
        # parameter (draft always works), so it is reported like any other bad parameter.
        raise bad("mode", " ".join(exc.messages)) from None
    prompt_value = body.get("prompt")
    if prompt_value is not None and not isinstance(prompt_value, str):
        raise bad("prompt", f"must be a string, not {_json_type(prompt_value)}")
    try:
        prompt = validate_prompt(prompt_value)
    except MediaError as exc:
        raise bad("prompt", " ".join(exc.messages)) from None
    image_value = _text(body, "image")
    if not image_value:
        raise bad("image", "is required: an http(s) URL or the bare base64 of a .jpg or .png file")
    audio_id = _text(body, "audio_id", max_chars=AUDIO_ID_MAX_CHARS)
    sound_value = _text(body, "sound_file")
    if bool(audio_id) == bool(sound_value):
        which = "both were given" if audio_id else "neither was given"
        raise ApiError(
            BAD_PARAMETER,
            f"audio_id, sound_file: give exactly one of them ({which}): audio_id for a "
            "text-to-speech voice, or sound_file as a URL or bare base64.",
        )
    callback_url = _text(body, "callback_url", max_chars=CALLBACK_URL_MAX_CHARS)
    if callback_url:
        try:
            netfetch.check_url(callback_url)
        except netfetch.UrlRefused as exc:
            raise bad("callback_url", str(exc)) from None
    _check_watermark(body.get("watermark_info"))

    audio: Asset | None = None
    kling_audio_id = ""
    if audio_id:
        try:
            audio_id = tts.check_audio_id(audio_id)  # the shape the studio's form accepts
        except ValidationError as exc:
            raise bad("audio_id", " ".join(exc.messages)) from None
        # The team's own text voice-over: the engine sends Kling its id while it is fresh
        # and our stored copy after that, and drafts can use the copy.
        audio = services.api_voiceover(team=token.team, audio_id=audio_id)
        if audio is None:
            if mode == AvatarJob.Mode.DRAFT:
                raise bad(
                    "audio_id",
                    f"{_shown(audio_id)} is not a voice-over this team has, so a draft cannot use "
                    "it: send the audio as sound_file, or use mode std or pro (Kling then uses "
                    "its own audio id).",
                )
            kling_audio_id = audio_id  # Kling's own id: Kling checks it when the job is sent

    portrait = _store_portrait(token, image_value)
    if sound_value:
        audio = _store_sound(token, sound_value)

    try:
        job, _created = services.api_job_create(
            token=token,
            portrait=portrait,
            audio=audio,
            kling_audio_id=kling_audio_id,
            prompt=prompt,
            mode=mode,
            callback_url=callback_url,
            external_id=external_id,
        )
    except ValidationError as exc:
        text = " ".join(exc.messages)
        if getattr(exc, "code", None) == "quota":
            raise ApiError(QUOTA_USED_UP, f"quota: {text}") from None
        raise bad("mode" if getattr(exc, "code", None) == "mode" else "request", text) from None
    return task_object(job, base_url=base_url, full=False)


def _check_watermark(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict) or not isinstance(value.get("enabled", False), bool):
        raise bad("watermark_info", 'must be an object like {"enabled": false}')


# --- inputs: URL or bare base64, then the same validation as the studio's forms --------------


def _input_bytes(field: str, value: str, *, max_bytes: int, limit: int) -> tuple[bytes, str, str]:
    """(bytes, content type, URL path) of a file given as an http(s) URL or as bare base64."""
    if value[:5].lower() == "data:":
        raise bad(field, "send the bare base64 string, without the 'data:...;base64,' prefix")
    if _URL_SCHEME.match(value):
        try:
            fetched = netfetch.fetch(value, max_bytes=max_bytes, total_timeout=FETCH_SECONDS)
        except netfetch.TooLarge:
            raise bad(
                field, f"the file at the URL is larger than the {limit // MB} MB limit"
            ) from None
        except (netfetch.UrlRefused, netfetch.FetchError) as exc:
            raise bad(field, f"{exc}") from None
        if not fetched.content:
            raise bad(field, "the URL answered an empty file")
        return fetched.content, fetched.content_type, urlsplit(fetched.url).path
    compact = "".join(value.split()).translate(_BASE64_URLSAFE)
    if len(compact) // 4 * 3 > max_bytes:
        raise bad(
            field,
            f"the base64 data holds about {len(compact) * 3 / 4 / MB:.1f} MB: the limit is "
            f"{limit // MB} MB",
        )
    try:
        data = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise bad(
            field,
            "is neither an http(s) URL nor valid base64: send a URL, or the file's bytes as "
            "bare base64",
        ) from None
    if not data:
        raise bad(field, "the base64 data is empty")
    return data, "", ""


def _file_name(
    path: str,
    content_type: str,
    data: bytes,
    *,
    stem: str,
    allowed: set[str],
    by_type: dict[str, str],
    by_kind: dict[str, str],
    fallback: str,
) -> str:
    """A name whose extension media validation accepts, so that the bytes give the verdict.

    From the URL's own file name if it has a usable extension, else from its Content-Type,
    else from the bytes; a display name only (stored names are always our own).
    """
    last = unquote(path.rsplit("/", 1)[-1]) if path else ""
    ext = last.rpartition(".")[2].lower() if "." in last else ""
    if last and ext in allowed:
        return last
    ext = by_type.get(content_type) or by_kind.get(_sniff(data)) or fallback
    return f"{stem}.{ext}"


def _store_portrait(token: ApiToken, value: str) -> Asset:
    data, content_type, path = _input_bytes(
        "image", value, max_bytes=IMAGE_MAX_BYTES, limit=PORTRAIT_MAX_BYTES
    )
    name = _file_name(
        path,
        content_type,
        data,
        stem="api-portrait",
        allowed={"jpg", "jpeg", "png"},
        by_type=_IMAGE_EXT_BY_TYPE,
        by_kind=_IMAGE_EXT_BY_KIND,
        fallback="jpg",
    )
    try:
        valid = validate_portrait(ContentFile(data, name=name))
    except MediaError as exc:
        raise bad("image", " ".join(exc.messages)) from None
    return services.asset_store(team=token.team, user=token.user, valid=valid)


def _store_sound(token: ApiToken, value: str) -> Asset:
    data, content_type, path = _input_bytes(
        "sound_file", value, max_bytes=SOUND_MAX_BYTES, limit=AUDIO_MAX_BYTES
    )
    name = _file_name(
        path,
        content_type,
        data,
        stem="api-voiceover",
        allowed={"mp3", "wav", "m4a", "aac"},
        by_type=_AUDIO_EXT_BY_TYPE,
        by_kind=_AUDIO_EXT_BY_KIND,
        fallback="mp3",
    )
    try:
        valid = validate_audio(ContentFile(data, name=name))
    except MediaError as exc:
        raise bad("sound_file", " ".join(exc.messages)) from None
    return services.asset_store(team=token.team, user=token.user, valid=valid)


# --- portal pages: API tokens and the docs -----------------------------------------------------


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        required=False,
        label="Token name",
        help_text="What will use it, e.g. “ComfyUI on the edit PC”. Jobs it makes show this name.",
    )


@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    """List the team's tokens (admins see everyone's), create one (shown once), revoke."""
    access = current_team(request)
    form = TokenForm(request.POST or None)
    created: tuple[ApiToken, str] | None = None
    if request.method == "POST":
        if not access.can_write:
            raise PermissionDenied("Your role in this team can only view: it cannot make tokens.")
        if form.is_valid():
            try:
                created = services.api_token_create(
                    user=request.user, team=access.team, name=form.cleaned_data["name"]
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                form = TokenForm()
    token_list = services.api_tokens_visible(
        user=request.user, team=access.team, is_admin=access.is_admin
    )
    response = render(
        request,
        "api/tokens.html",
        {
            "access": access,
            "form": form,
            "tokens": token_list,
            "new_token": created[1] if created else None,
            "new_token_name": created[0].name if created else "",
            "base_url": public_base_url(request),
        },
        status=201 if created else 200,
    )
    # The page may hold a token shown once: it must not sit in a cache or the history.
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke(request: HttpRequest, code: UUID) -> HttpResponse:
    """Revoke a token: its owner can, and so can the team's admins; others get 404."""
    token = ApiToken.objects.select_related("team").filter(code=code).first()
    if token is None:
        raise Http404("No such token.")
    membership = membership_for(request.user, token.team)
    is_owner = token.user_id == request.user.pk
    if membership is None or not (is_owner or membership.role == Membership.Role.ADMIN):
        raise Http404("No such token.")
    if services.api_token_revoke(token=token):
        messages.success(request, f"Revoked {token.name}: requests with it now get 401.")
    return redirect("api:tokens")


@login_required
def docs(request: HttpRequest) -> HttpResponse:
    """How to call the API from scripts, with this server's own address in every example."""
    access = current_team(request)
    base_url = public_base_url(request)
    return render(
        request,
        "api/docs.html",
        {
            "access": access,
            "base_url": base_url,
            "kling_base": f"{base_url}/kling",
            "create_url": f"{base_url}/kling/v1/videos/avatar/image2video",
            "openapi_url": f"{base_url}{reverse('api:openapi')}",
            "max_audio_seconds": settings.KLING_MAX_AUDIO_SECONDS,
            "has_tokens": services.api_tokens_visible(
                user=request.user, team=access.team, is_admin=False
            )
            .filter(revoked_at__isnull=True)
            .exists(),
        },
    )
