"""The Kling-compatible API's endpoints: Kling's avatar paths, served by the team's own server.

Any script or tool written for Kling (or for the gateways that re-expose it) can point its base
URL at `<server>/kling` (or `<server>`) and its Bearer key at a personal API token: it gets the
team's queue, quotas, permanent copies and the free draft mode, and the team's Kling key never
leaves the server. API jobs are ordinary jobs (jobs/services/api_tasks.py), so they show on the
dashboard. The portal pages that go with the API are in jobs/views/tokens.py.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_safe

from jobs import netfetch
from jobs.api.contract import (
    AUDIO_ID_MAX_CHARS,
    AUTH_INVALID,
    AUTH_MISSING,
    BAD_METHOD,
    BAD_PARAMETER,
    CALLBACK_URL_MAX_CHARS,
    EXTERNAL_ID_MAX_CHARS,
    NO_PERMISSION,
    NOT_FOUND,
    PAGE_NUM_MAX,
    PAGE_SIZE_DEFAULT,
    PAGE_SIZE_MAX,
    QUOTA_USED_UP,
    SERVER_ERROR,
    TOO_MANY_REQUESTS,
    ApiError,
    bad,
    envelope,
    error_response,
    task_object,
)
from jobs.api.inputs import (
    fetch_slot,
    json_body,
    json_type,
    portrait_from,
    shown,
    sound_from,
    text_param,
)
from jobs.api.openapi import document
from jobs.links import (
    VIDEO_LINK_MAX_AGE,
    VideoLinkExpired,
    audio_link_open,
    audio_url,
    callbacks_enabled,
    public_base_url,
    video_link_open,
)
from jobs.media.audio import ValidAudio
from jobs.media.limits import MediaError
from jobs.media.prompts import validate_prompt
from jobs.models import JOB_NAME_MAX_CHARS, ApiToken, Asset, AvatarJob
from jobs.serve import PRIVATE_CACHE, serve_stored_file
from jobs.services.api_tasks import (
    api_job_create,
    api_task_by_external_id,
    api_task_find,
    api_task_page,
    api_voiceover,
)
from jobs.services.api_tokens import ApiTokenRefused, api_token_authenticate, api_token_can_read
from jobs.services.jobs import check_mode
from jobs.services.quotas import quota_packs
from jobs.services.voiceovers import voiceover_create
from jobs.tts.script import KLING_TTS_MAX_CHARS, check_audio_id
from jobs.voices import VOICES, get_voice

log = logging.getLogger(__name__)
# An API view: (request, token, **url kwargs) -> the envelope's `data`.
ApiViewFunc = Callable[..., Any]
_PAGE_VALUE = re.compile(r"^[0-9]{1,7}$")


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
        return api_token_authenticate(raw)
    except ApiTokenRefused as exc:
        what = "invalid" if exc.code == AUTH_INVALID else "refused"
        raise ApiError(exc.code, f"Authorization is {what}: {exc}", headers=challenge) from None


def api_view(*methods: str) -> Callable[[ApiViewFunc], Callable[..., HttpResponseBase]]:
    """Token auth, the allowed methods and Kling's envelope around a view returning `data`
    (or a response of its own, for a file).

    Whatever goes wrong becomes an envelope: a bug answers 5000 (logged), never an HTML page.
    """

    def decorate(view: ApiViewFunc) -> Callable[..., HttpResponseBase]:
        @csrf_exempt  # token auth: no cookies are involved, so there is nothing to forge
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            request_id = str(uuid.uuid4())
            response: HttpResponseBase
            try:
                token = _authenticate(request)
                if request.method not in methods:
                    raise ApiError(
                        BAD_METHOD,
                        f"The requested method is invalid: {request.method} is not allowed here "
                        f"(use {' or '.join(methods)}).",
                        headers={"Allow": ", ".join(methods)},
                    )
                result = view(request, token, *args, **kwargs)
                # A download (a batch's report or videos) is answered as it is.
                is_file = isinstance(result, HttpResponseBase)
                response = result if is_file else envelope(result, request_id)
            except ApiError as exc:
                response = error_response(exc, request_id)
            except Exception:
                log.exception("API request %s failed", request_id)
                response = error_response(
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
    job = api_task_find(team=token.team, ref=task_ref)
    if job is None:
        raise ApiError(
            NOT_FOUND,
            f"task_id: no task {shown(task_ref)} in this team (looked up as a task_id and as an "
            "external_task_id).",
        )
    return task_object(job, base_url=public_base_url(request), token=token)


@csrf_exempt
def api_not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    """Any other path under the API: Kling's "not found" envelope, not an HTML page."""
    request_id = str(uuid.uuid4())
    error = ApiError(NOT_FOUND, f"The requested resource does not exist: {request.path}")
    response = error_response(error, request_id)
    response["X-Request-Id"] = request_id
    return response


@require_GET
def openapi_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(document(public_base_url(request)))


@require_safe
def video_file(request: HttpRequest, code: UUID, signature: str) -> HttpResponseBase:
    """A result video by its signed link: no session needed, seekable (byte ranges).

    The link works for VIDEO_LINK_MAX_AGE and only while the token it was listed to does: every
    request checks again that the token is not revoked and its owner is still in the team.
    """
    try:
        link = video_link_open(code, signature)
        if link is None:
            raise ApiError(NOT_FOUND, "This video link is not valid: query the task for its link.")
        job = AvatarJob.objects.filter(code=code, status=AvatarJob.Status.SUCCEEDED).first()
        if job is None or not job.video:
            raise ApiError(NOT_FOUND, "This video does not exist (any more).")
        token = ApiToken.objects.select_related("user").filter(pk=link.token_id).first()
        if token is None or token.team_id != job.team_id or not api_token_can_read(token):
            raise ApiError(
                NO_PERMISSION,
                "This video link no longer works: the API token it was given to was revoked or "
                "its owner left the team.",
            )
    except VideoLinkExpired:
        hours = int(VIDEO_LINK_MAX_AGE.total_seconds() // 3600)
        error = ApiError(
            NO_PERMISSION,
            f"This video link has expired (links work for {hours} hours): query the task "
            "again for a fresh link.",
        )
        return error_response(error, str(uuid.uuid4()))
    except ApiError as exc:
        return error_response(exc, str(uuid.uuid4()))
    return serve_stored_file(
        request,
        job.video,
        content_type="video/mp4",
        filename=f"{job.code}.mp4",
        cache_control=PRIVATE_CACHE,
    )


_AUDIO_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav", "m4a": "audio/mp4", "aac": "audio/aac"}


@require_safe
def audio_file(request: HttpRequest, code: UUID, signature: str) -> HttpResponseBase:
    """A text-to-speech voice-over by its signed link (`audios[].url`): like video_file, it
    works for VIDEO_LINK_MAX_AGE and only while the token it was given to does."""
    try:
        link = audio_link_open(code, signature)
        if link is None:
            raise ApiError(NOT_FOUND, "This audio link is not valid: make the voice-over again.")
        token = ApiToken.objects.select_related("user").filter(pk=link.token_id).first()
        asset = Asset.objects.filter(code=code, kind=Asset.Kind.AUDIO).first()
        if asset is None or token is None or token.team_id != asset.team_id:
            raise ApiError(NOT_FOUND, "This voice-over does not exist (any more).")
        if not api_token_can_read(token):
            raise ApiError(
                NO_PERMISSION,
                "This audio link no longer works: the API token it was given to was revoked or "
                "its owner left the team.",
            )
    except VideoLinkExpired:
        error = ApiError(NO_PERMISSION, "This audio link has expired: ask for it again.")
        return error_response(error, str(uuid.uuid4()))
    except ApiError as exc:
        return error_response(exc, str(uuid.uuid4()))
    return serve_stored_file(
        request,
        asset.file,
        content_type=_AUDIO_TYPES.get(asset.format, "application/octet-stream"),
        filename=f"{asset.code}.{asset.format or 'bin'}",
        cache_control=PRIVATE_CACHE,
    )


def _list_tasks(request: HttpRequest, token: ApiToken) -> list[dict[str, Any]]:
    page = _page_param(request, "pageNum", default=1, maximum=PAGE_NUM_MAX)
    size = _page_param(request, "pageSize", default=PAGE_SIZE_DEFAULT, maximum=PAGE_SIZE_MAX)
    base_url = public_base_url(request)
    jobs = api_task_page(team=token.team, page=page, size=size)
    return [task_object(job, base_url=base_url, token=token) for job in jobs]


def _page_param(request: HttpRequest, name: str, *, default: int, maximum: int) -> int:
    raw = request.GET.get(name)
    if raw is None:
        return default
    value = raw.strip()
    if not _PAGE_VALUE.match(value) or not 1 <= int(value) <= maximum:
        raise bad(name, f"must be a whole number from 1 to {maximum}, not {shown(raw)}")
    return int(value)


def _create_task(request: HttpRequest, token: ApiToken) -> dict[str, Any]:
    body = json_body(request)
    base_url = public_base_url(request)

    # A repeat of a known external_task_id (a retry after a lost reply) gets the task it made,
    # before anything is fetched or checked again.
    external_id = text_param(body, "external_task_id", max_chars=EXTERNAL_ID_MAX_CHARS)
    existing = api_task_by_external_id(team=token.team, external_id=external_id)
    if existing is not None:
        return task_object(existing, base_url=base_url, full=False)

    # The cheap checks first: nothing is downloaded for a request that is refused anyway.
    mode = _mode_param(body)
    prompt = _prompt_param(body)
    # Our own field (Kling has none): the job's name in the studio, else the default one.
    name = text_param(body, "name", max_chars=JOB_NAME_MAX_CHARS)
    image_value = text_param(body, "image")
    if not image_value:
        raise bad("image", "is required: an http(s) URL or the bare base64 of a .jpg or .png file")
    audio_id = text_param(body, "audio_id", max_chars=AUDIO_ID_MAX_CHARS)
    sound_value = text_param(body, "sound_file")
    if bool(audio_id) == bool(sound_value):
        which = "both were given" if audio_id else "neither was given"
        raise ApiError(
            BAD_PARAMETER,
            f"audio_id, sound_file: give exactly one of them ({which}): audio_id for a "
            "text-to-speech voice, or sound_file as a URL or bare base64.",
        )
    callback_url = text_param(body, "callback_url", max_chars=CALLBACK_URL_MAX_CHARS)
    if callback_url:
        try:
            netfetch.check_url(callback_url)
        except netfetch.UrlRefused as exc:
            raise bad("callback_url", str(exc)) from None
        if not callbacks_enabled():
            # Without it the callbacks' video links would point at the loopback address.
            raise bad(
                "callback_url",
                "this studio cannot send callbacks yet: its admin must set PUBLIC_BASE_URL "
                "(the address callers reach it on). Leave callback_url out and query the task.",
            )
    watermark = _watermark_param(body.get("watermark_info"))

    audio: Asset | ValidAudio | None = None
    kling_audio_id = ""
    if audio_id:
        audio, kling_audio_id = _audio_by_id(token, audio_id, mode)

    with fetch_slot(token.pk, image_value, sound_value):
        portrait = portrait_from(image_value)
        if sound_value:
            audio = sound_from(sound_value)

    try:
        job, _created = api_job_create(
            token=token,
            portrait=portrait,
            audio=audio,
            kling_audio_id=kling_audio_id,
            prompt=prompt,
            mode=mode,
            callback_url=callback_url,
            external_id=external_id,
            name=name,
            watermark=watermark,
        )
    except ValidationError as exc:
        text = " ".join(exc.messages)
        if getattr(exc, "code", None) == "quota":
            raise ApiError(QUOTA_USED_UP, f"quota: {text}") from None
        raise bad("mode" if getattr(exc, "code", None) == "mode" else "request", text) from None
    return task_object(job, base_url=base_url, full=False)


def _mode_param(body: dict[str, Any]) -> str:
    mode = text_param(body, "mode", max_chars=40) or AvatarJob.Mode.STD  # Kling's default
    if mode not in AvatarJob.Mode.values:
        raise bad("mode", f"{shown(mode)} is not a mode: use std, pro or draft (free, offline)")
    try:
        check_mode(mode)
    except ValidationError as exc:
        # Not 1103 ("no permission for this model"): the caller fixes it by changing this
        # parameter (draft always works), so it is reported like any other bad parameter.
        raise bad("mode", " ".join(exc.messages)) from None
    return mode


def _prompt_param(body: dict[str, Any]) -> str:
    prompt_value = body.get("prompt")
    if prompt_value is not None and not isinstance(prompt_value, str):
        raise bad("prompt", f"must be a string, not {json_type(prompt_value)}")
    try:
        return validate_prompt(prompt_value)
    except MediaError as exc:
        raise bad("prompt", " ".join(exc.messages)) from None


def _audio_by_id(token: ApiToken, audio_id: str, mode: str) -> tuple[Asset | None, str]:
    """(the team's voice-over Kling knows by this id, or None; else the id to send Kling)."""
    try:
        audio_id = check_audio_id(audio_id)  # the shape the studio's form accepts
    except ValidationError as exc:
        raise bad("audio_id", " ".join(exc.messages)) from None
    # The team's own text voice-over: the engine sends Kling its id while it is fresh
    # and our stored copy after that, and drafts can use the copy.
    audio = api_voiceover(team=token.team, audio_id=audio_id)
    if audio is not None:
        return audio, ""
    if mode == AvatarJob.Mode.DRAFT:
        raise bad(
            "audio_id",
            f"{shown(audio_id)} is not a voice-over this team has, so a draft cannot use "
            "it: send the audio as sound_file, or use mode std or pro (Kling then uses "
            "its own audio id).",
        )
    return None, audio_id  # Kling's own id: Kling checks it when the job is sent


def _watermark_param(value: Any) -> bool | None:
    """watermark_info.enabled, to pass on to Kling; None when the caller did not say."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("enabled", False), bool):
        raise bad("watermark_info", 'must be an object like {"enabled": false}')
    enabled = value.get("enabled")
    return enabled if isinstance(enabled, bool) else None


# --- text to speech, voices, costs -----------------------------------------------------------

# Which request field a refusal of check_script() or synthesize() is about, by its code.
_TTS_FIELD = {
    "empty_script": "text",
    "too_long": "text",
    "too_short": "text",
    "no_voice": "voice_id",
    "unknown_voice": "voice_id",
    "bad_speed": "voice_speed",
}


@api_view("POST")
def audio_tts(request: HttpRequest, token: ApiToken) -> Any:
    """Kling's text to speech: the voice-over is made now (by Kling when the studio has a key,
    else by the offline voice), kept in the team's library, and named by an `audio_id` of ours
    that never goes stale: jobs naming it send Kling's id while fresh, our stored copy after."""
    body = json_body(request)
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise bad("text", "is required: the words to speak, up to 1000 characters")
    if len(text) > KLING_TTS_MAX_CHARS:
        raise bad("text", f"is {len(text):,} characters: at most {KLING_TTS_MAX_CHARS:,}")
    voice_id = text_param(body, "voice_id", max_chars=64)
    voice = get_voice(voice_id)
    if voice is None:
        raise bad(
            "voice_id",
            f"voice id {shown(voice_id)} not found: GET /v1/general/presets-voices lists them"
            if voice_id
            else "is required: one of the voices GET /v1/general/presets-voices lists",
        )
    language = text_param(body, "voice_language", max_chars=10) or voice.language
    if language != voice.language:
        raise bad(
            "voice_language",
            f"{shown(language)} does not match voice {voice.id}, which speaks {voice.language!r}",
        )
    speed = body.get("voice_speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, int | float):
        raise bad("voice_speed", f"must be a number from 0.8 to 2.0, not {json_type(speed)}")
    try:
        asset = voiceover_create(
            team=token.team, user=token.user, text=text, voice_id=voice.id, speed=speed
        )
    except ValidationError as exc:
        raise _tts_refusal(exc) from None
    created = int(asset.created.timestamp() * 1000)
    return {
        "task_id": str(asset.code),
        "task_status": "succeed",
        "task_status_msg": "",
        "task_info": {},
        "created_at": created,
        "updated_at": created,
        "task_result": {
            "audios": [
                {
                    "id": str(asset.code),
                    "url": audio_url(asset, token=token, base_url=public_base_url(request)),
                    "duration": f"{asset.duration or 0:.3f}",
                }
            ]
        },
    }


def _tts_refusal(exc: ValidationError) -> ApiError:
    codes = [error.code for error in exc.error_list]
    text = " ".join(exc.messages)
    if "kling_busy" in codes:
        return ApiError(TOO_MANY_REQUESTS, f"text: {text}")
    if "kling_operator" in codes or "kling_not_configured" in codes:
        return ApiError(SERVER_ERROR, f"text: {text}")
    field = next((_TTS_FIELD[code] for code in codes if code in _TTS_FIELD), "text")
    return bad(field, text)


@api_view("GET")
def presets_voices(request: HttpRequest, token: ApiToken) -> Any:
    """The voices the text to speech takes, in the shape of Kling's voice lists (one task
    whose task_result.voices[] are {voice_id, voice_name, trial_url, owned_by}), with each
    voice's `voice_language` added."""
    return [
        {
            "task_id": "presets-voices",
            "task_status": "succeed",
            "task_info": {},
            "task_result": {
                "voices": [
                    {
                        "voice_id": voice.id,
                        "voice_name": voice.name,
                        "voice_language": voice.language,
                        "trial_url": "",
                        "owned_by": "kling",
                    }
                    for voice in VOICES
                ]
            },
        }
    ]


@api_view("GET")
def account_costs(request: HttpRequest, token: ApiToken) -> Any:
    """The team's monthly quotas and use, as Kling's resource packs (units: seconds of video).

    One pack per mode that has a limit; a mode without one has no pack (it is not limited).
    start_time and end_time (ms) are checked like Kling's and select the packs valid in that
    window; the studio's quotas are monthly, so that is at most this month's.
    """
    start = _ms_param(request, "start_time")
    end = _ms_param(request, "end_time")
    if start is not None and end is not None and start > end:
        raise bad("start_time", "must not be after end_time")
    wanted = request.GET.get("resource_pack_name", "").strip()
    packs = []
    for pack in quota_packs(team=token.team):
        if wanted and pack["resource_pack_name"] != wanted:
            continue
        if start is not None and pack["invalid_time"] < start:
            continue
        if end is not None and pack["effective_time"] > end:
            continue
        packs.append(pack)
    return {"code": 0, "msg": "success", "resource_pack_subscribe_infos": packs}


def _ms_param(request: HttpRequest, name: str) -> int | None:
    raw = request.GET.get(name)
    if raw is None:
        return None
    if not re.fullmatch(r"[0-9]{1,15}", raw.strip()):  # an empty one too, like pageSize
        raise bad(name, f"must be a Unix time in milliseconds, not {shown(raw)}")
    return int(raw.strip())
