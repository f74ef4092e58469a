"""The OpenAPI 3.1 description of the Kling-compatible API, served at /kling/openapi.json.

Built from the same limits the code enforces, so the document cannot drift from them. The two
`servers` are the two prefixes the API answers under: `/kling` (the base URL Kling tools and
gateways use) and the bare root (`/v1/...`, like Kling's own host).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from jobs.api.contract import (
    AUDIO_ID_MAX_CHARS,
    CALLBACK_URL_MAX_CHARS,
    EXTERNAL_ID_MAX_CHARS,
    PAGE_NUM_MAX,
    PAGE_SIZE_DEFAULT,
    PAGE_SIZE_MAX,
)
from jobs.links import VIDEO_LINK_MAX_AGE
from jobs.media.limits import AUDIO_MAX_BYTES, MB, PORTRAIT_MAX_BYTES, PROMPT_MAX_CHARS
from jobs.models import DRAFT_MODE_HELP, JOB_NAME_MAX_CHARS
from jobs.tts.script import AUDIO_ID_SHAPE, KLING_TTS_MAX_CHARS, SPEED_MAX, SPEED_MIN
from jobs.voices import VOICES

TASK_STATUSES = ["submitted", "processing", "succeed", "failed"]
BATCH_ROW_STATUSES = ("done", "running", "queued", "failed", "canceled")


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema, or null (callers send null or "" for parameters they do not use)."""
    return {"anyOf": [schema, {"type": "null"}]}


def _error_response(description: str, codes: list[int]) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/Error"},
                "example": {
                    "code": codes[0],
                    "message": "image: This file is not a JPEG or PNG image (…).",
                    "request_id": "3f1c5a36-…",
                    "data": None,
                },
            }
        },
    }


def _envelope(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["code", "message", "request_id", "data"],
        "properties": {
            "code": {"type": "integer", "const": 0},
            "message": {"type": "string"},
            "request_id": {"type": "string"},
            "data": data,
        },
    }


def _errors(*statuses: int) -> dict[str, Any]:
    known = {
        "400": _error_response(
            "1200: the body is not a JSON object; 1201: a parameter is wrong (the message starts "
            "with the parameter's name).",
            [1201, 1200],
        ),
        "401": _error_response(
            "1001: no Authorization header; 1002: the token is invalid, revoked, or its owner "
            "can no longer make jobs in the team (for a key pair's JWT also: not HS256, an "
            "unknown iss, a wrong signature, no exp); 1003: the JWT's nbf is in the future; "
            "1004: the JWT has expired.",
            [1002, 1001, 1003, 1004],
        ),
        "404": _error_response("1203: no such task in this token's team.", [1203]),
        "405": _error_response("1202: the method is not allowed on this path.", [1202]),
        "429": _error_response(
            "1102: the team's monthly quota for this mode is used up (the message says what is "
            "left); 1302: this token already has 2 creates fetching files from URLs, or the "
            "studio is running as many URL fetches as it allows at once (retry with backoff, or "
            "send the files as base64).",
            [1102, 1302],
        ),
        "413": _error_response("1200: the body is larger than this path accepts.", [1200]),
        "500": _error_response(
            "5000: an internal error (logged with the request id), or (text to speech) the "
            "studio's Kling account cannot make voices.",
            [5000],
        ),
    }
    return {str(status): known[str(status)] for status in statuses}


def document(base_url: str) -> dict[str, Any]:
    link_hours = int(VIDEO_LINK_MAX_AGE.total_seconds() // 3600)
    """The OpenAPI document, with this server's address in `servers`."""
    # The limits are those jobs/api/contract.py defines and the endpoints enforce.
    max_audio = settings.KLING_MAX_AUDIO_SECONDS
    task_short: dict[str, Any] = {
        "type": "object",
        "required": ["task_id", "task_status", "task_info", "created_at", "updated_at"],
        "properties": {
            "task_id": {"type": "string", "description": "Our task id (a UUID)."},
            "task_status": {"type": "string", "enum": TASK_STATUSES},
            "task_info": {
                "type": "object",
                "properties": {
                    "external_task_id": {
                        "type": "string",
                        "description": 'The caller\'s own id, as sent ("" if none).',
                    }
                },
            },
            "created_at": {"type": "integer", "description": "Unix time in milliseconds."},
            "updated_at": {"type": "integer", "description": "Unix time in milliseconds."},
        },
    }
    task = {
        "type": "object",
        "required": [*task_short["required"], "task_status_msg", "task_result"],
        "properties": {
            **task_short["properties"],
            "task_status_msg": {
                "type": "string",
                "description": "Why the task failed or, for a finished draft, why it has no lip "
                "movement (no usable face in the portrait); empty otherwise.",
            },
            "task_result": {
                "type": "object",
                "properties": {
                    "videos": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["id", "url", "duration"],
                            "properties": {
                                "id": {"type": "string"},
                                "url": {
                                    "type": "string",
                                    "description": "Our stored copy (kept after Kling's "
                                    "30-day purge): a signed link that needs no session, "
                                    f"supports byte ranges and HEAD, and works for {link_hours} "
                                    "hours and only while the API token that listed it is "
                                    "live and its owner is in the team (else 403, code 1103, "
                                    "or 404, code 1203). Query the task again for a fresh "
                                    "link.",
                                },
                                "duration": {
                                    "type": "string",
                                    "description": 'Seconds, as a string ("5.033").',
                                },
                            },
                        },
                    }
                },
            },
            "final_unit_deduction": {
                "type": "string",
                "description": 'Kling units charged, as a string; "0" for drafts.',
            },
            "watermark_info": {
                "type": "object",
                "properties": {"enabled": {"type": "boolean"}},
            },
        },
    }
    create_body = {
        "type": "object",
        "required": ["image"],
        "properties": {
            "image": {
                "type": "string",
                "description": "The portrait: an http(s) URL this server fetches (public "
                "addresses only, at most 20 s), or the bare base64 of the file (no "
                f"'data:' prefix). JPG or PNG, at most {PORTRAIT_MAX_BYTES // MB} MB, both sides "
                "at least 300 px, aspect ratio between 1:2.5 and 2.5:1.",
            },
            "audio_id": _nullable(
                {
                    "type": "string",
                    "maxLength": AUDIO_ID_MAX_CHARS,
                    # "" means "not given", as the seed documents send it.
                    "pattern": f"^({AUDIO_ID_SHAPE.pattern.strip('^$')})?$",
                    "description": "A text-to-speech voice: a voice-over in the team's library "
                    "made from text, or (std/pro only) an id Kling made in the last 30 days. "
                    "Exactly one of audio_id and sound_file.",
                }
            ),
            "sound_file": _nullable(
                {
                    "type": "string",
                    "description": "The voice-over: an http(s) URL or bare base64. MP3, WAV, "
                    f"M4A or AAC, at most {AUDIO_MAX_BYTES // MB} MB, 2 to {max_audio} seconds. "
                    "Exactly one of audio_id and sound_file.",
                }
            ),
            "prompt": _nullable(
                {
                    "type": "string",
                    "maxLength": PROMPT_MAX_CHARS,
                    "description": "Actions, emotions, camera movement.",
                }
            ),
            "name": _nullable(
                {
                    "type": "string",
                    "maxLength": JOB_NAME_MAX_CHARS,
                    "description": "This server's addition: the job's name on the studio's cards "
                    "and share page. Without it, the prompt's first words (else the voice-over "
                    "script's, else the portrait's and the day). Not an id: external_task_id is.",
                }
            ),
            "mode": _nullable(
                {
                    "type": "string",
                    "enum": ["std", "pro", "draft"],
                    "default": "std",
                    "description": "std or pro: Kling (needs a Kling key on the server). draft: "
                    f"free and offline, rendered here: {DRAFT_MODE_HELP}.",
                }
            ),
            "callback_url": _nullable(
                {
                    "type": "string",
                    "maxLength": CALLBACK_URL_MAX_CHARS,
                    "description": "Receives the bare task object (POST, JSON) on every status "
                    "change; public addresses only; redirects are not followed; retried with "
                    "backoff. Refused (1201) while the studio's admin has not set "
                    "PUBLIC_BASE_URL: the links in callbacks would have no address to point at.",
                }
            ),
            "external_task_id": _nullable(
                {
                    "type": "string",
                    "maxLength": EXTERNAL_ID_MAX_CHARS,
                    "description": "Your own id, unique per team. Sending it again returns the "
                    "task it made instead of making another; usable in queries.",
                }
            ),
            "watermark_info": _nullable(
                {
                    "type": "object",
                    "properties": {"enabled": {"type": "boolean"}},
                    "description": "Passed on to Kling as given (std and pro); the task "
                    "shows it back.",
                }
            ),
        },
        "example": {
            "image": "https://example.com/portrait.jpg",
            "sound_file": "https://example.com/voice.mp3",
            "prompt": "",
            "mode": "draft",
            "callback_url": "",
            "external_task_id": "",
        },
    }
    bearer: list[dict[str, list[str]]] = [{"bearerAuth": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "avatarsite: Kling-compatible avatar API",
            "version": "1.0.0",
            "description": "Kling's avatar image-to-video API served by this studio: the team's "
            "queue, quotas and permanent copies, plus a free `draft` mode. Authenticate with "
            "a personal API token (Authorization: Bearer <token>), made on the API tokens "
            "page. Every answer is Kling's envelope {code, message, request_id, data}; code 0 "
            "is success. Key pairs (access key + secret key) from the same page authenticate "
            "the way Kling's official API does: Authorization: Bearer <JWT>, HS256, payload "
            "{iss: access key, exp, nbf}.",
        },
        "servers": [
            {"url": f"{base_url}/kling", "description": "The base URL for Kling tools."},
            {"url": base_url, "description": "The same API without the /kling prefix."},
        ],
        "security": bearer,
        "paths": {
            **_more_paths(bearer),
            **_batch_paths(bearer, base_url),
            "/v1/videos/avatar/image2video": {
                "post": {
                    "operationId": "createAvatarTask",
                    "summary": "Create an avatar video task",
                    "security": bearer,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": create_body}},
                    },
                    "responses": {
                        "200": {
                            "description": "The task was queued (or, for a repeated "
                            "external_task_id, the task that id already made).",
                            "content": {"application/json": {"schema": _envelope(task_short)}},
                        },
                        **_errors(400, 401, 405, 429, 500),
                    },
                },
                "get": {
                    "operationId": "listAvatarTasks",
                    "summary": "List the team's tasks, newest first",
                    "security": bearer,
                    "parameters": [
                        {
                            "name": "pageNum",
                            "in": "query",
                            "required": False,
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": PAGE_NUM_MAX,
                                "default": 1,
                            },
                        },
                        {
                            "name": "pageSize",
                            "in": "query",
                            "required": False,
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": PAGE_SIZE_MAX,
                                "default": PAGE_SIZE_DEFAULT,
                            },
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "One page of tasks.",
                            "content": {
                                "application/json": {
                                    "schema": _envelope({"type": "array", "items": task})
                                }
                            },
                        },
                        **_errors(400, 401, 405, 500),
                    },
                },
            },
            "/v1/videos/avatar/image2video/{task_id}": {
                "get": {
                    "operationId": "getAvatarTask",
                    "summary": "Query one task by task_id or by your external_task_id",
                    "security": bearer,
                    "parameters": [
                        {
                            "name": "task_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "minLength": 1},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The task.",
                            "content": {"application/json": {"schema": _envelope(task)}},
                        },
                        **_errors(401, 404, 405, 500),
                    },
                },
            },
        },
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A personal API token from the API tokens page, or a JWT "
                    "signed (HS256) with a key pair's secret key: {iss: access key, exp, nbf}.",
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["code", "message", "request_id", "data"],
                    "properties": {
                        "code": {"type": "integer"},
                        "message": {"type": "string"},
                        "request_id": {"type": "string"},
                        "data": {"type": "null"},
                    },
                }
            },
        },
    }


def _more_paths(bearer: list[dict[str, list[str]]]) -> dict[str, Any]:
    """Text to speech, the voice list and the account's costs."""
    tts_body = {
        "type": "object",
        "required": ["text", "voice_id"],
        "properties": {
            "text": {"type": "string", "minLength": 1, "maxLength": KLING_TTS_MAX_CHARS},
            "voice_id": {
                "type": "string",
                "enum": [voice.id for voice in VOICES],
                "description": "One of GET /v1/general/presets-voices.",
            },
            "voice_language": {
                "type": "string",
                "enum": ["en", "zh"],
                "description": "Must match the voice; the voice's own when left out.",
            },
            "voice_speed": {
                "type": "number",
                "minimum": SPEED_MIN,
                "maximum": SPEED_MAX,
                "default": 1.0,
                "description": "In steps of 0.1.",
            },
        },
        "example": {
            "text": "Hello, and welcome to the studio.",
            "voice_id": "oversea_male1",
            "voice_language": "en",
            "voice_speed": 1.0,
        },
    }
    audio_task = {
        "type": "object",
        "required": ["task_id", "task_status", "task_result"],
        "properties": {
            "task_id": {"type": "string"},
            "task_status": {"type": "string", "enum": ["succeed"]},
            "task_status_msg": {"type": "string"},
            "created_at": {"type": "integer"},
            "updated_at": {"type": "integer"},
            "task_result": {
                "type": "object",
                "properties": {
                    "audios": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["id", "duration"],
                            "properties": {
                                "id": {
                                    "type": "string",
                                    "description": "The audio_id to create avatar tasks with: "
                                    "the voice-over in the team's library. It never goes stale "
                                    "(Kling's own id is sent while fresh, our copy after).",
                                },
                                "url": {
                                    "type": "string",
                                    "description": "The voice-over file: a signed link that "
                                    "needs no session and works while this token does (for "
                                    "the same hours as video links).",
                                },
                                "duration": {"type": "string"},
                            },
                        },
                    }
                },
            },
        },
    }
    voices = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "task_id": {"type": "string"},
                "task_status": {"type": "string"},
                "task_result": {
                    "type": "object",
                    "properties": {
                        "voices": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["voice_id", "voice_name", "voice_language"],
                                "properties": {
                                    "voice_id": {"type": "string"},
                                    "voice_name": {"type": "string"},
                                    "voice_language": {"type": "string", "enum": ["en", "zh"]},
                                    "trial_url": {"type": "string"},
                                    "owned_by": {"type": "string"},
                                },
                            },
                        }
                    },
                },
            },
        },
    }
    pack = {
        "type": "object",
        "properties": {
            "resource_pack_name": {"type": "string"},
            "resource_pack_id": {"type": "string"},
            "resource_pack_type": {"type": "string"},
            "total_quantity": {"type": "number"},
            "used_quantity": {"type": "number"},
            "remaining_quantity": {"type": "number"},
            "purchase_time": {"type": "integer"},
            "effective_time": {"type": "integer"},
            "invalid_time": {"type": "integer"},
            "status": {"type": "string", "enum": ["online", "runOut"]},
            "mode": {"type": "string"},
        },
    }
    millis = {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999}
    return {
        "/v1/audio/tts": {
            "post": {
                "operationId": "textToSpeech",
                "summary": "Make a voice-over from text; its id is an audio_id",
                "description": "Made at once, by Kling's voices when the studio has a Kling "
                "key, else by the offline voice, and kept in the team's library. The same text, "
                "voice and speed again returns the same audio_id (not made or charged twice).",
                "security": bearer,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": tts_body}},
                },
                "responses": {
                    "200": {
                        "description": "The voice-over.",
                        "content": {"application/json": {"schema": _envelope(audio_task)}},
                    },
                    **_errors(400, 401, 405, 413, 429, 500),
                },
            }
        },
        "/v1/general/presets-voices": {
            "get": {
                "operationId": "presetVoices",
                "summary": "The voices text to speech takes",
                "security": bearer,
                "responses": {
                    "200": {
                        "description": "One task listing every voice.",
                        "content": {"application/json": {"schema": _envelope(voices)}},
                    },
                    **_errors(401, 405, 500),
                },
            }
        },
        "/account/costs": {
            "get": {
                "operationId": "accountCosts",
                "summary": "The team's monthly quotas and use, as Kling's resource packs",
                "description": "One pack per mode with a limit, in seconds of video; modes "
                "without a limit have none.",
                "security": bearer,
                "parameters": [
                    {"name": "start_time", "in": "query", "required": False, "schema": millis},
                    {"name": "end_time", "in": "query", "required": False, "schema": millis},
                    {
                        "name": "resource_pack_name",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The packs.",
                        "content": {
                            "application/json": {
                                "schema": _envelope(
                                    {
                                        "type": "object",
                                        "required": ["resource_pack_subscribe_infos"],
                                        "properties": {
                                            "code": {"type": "integer"},
                                            "msg": {"type": "string"},
                                            "resource_pack_subscribe_infos": {
                                                "type": "array",
                                                "items": pack,
                                            },
                                        },
                                    }
                                )
                            }
                        },
                    },
                    **_errors(400, 401, 405, 500),
                },
            }
        },
    }


def _batch_paths(bearer: list[dict[str, list[str]]], base_url: str) -> dict[str, Any]:
    """The studio's batches, outside Kling's paths: at the server's root, never under /kling."""
    root = [{"url": base_url, "description": "Batches answer at the root only."}]
    text = {"type": "string", "maxLength": JOB_NAME_MAX_CHARS}
    row_problems = {
        "type": "object",
        "required": ["row", "name", "problems"],
        "properties": {
            "row": {"type": "integer", "description": "1 = the first row under the header."},
            "name": {"type": "string"},
            "problems": {"type": "array", "items": {"type": "string"}},
        },
    }
    row = {
        "type": "object",
        "required": ["row", "name", "task_id", "status", "reason", "video_url"],
        "properties": {
            "row": {"type": "integer"},
            "name": {"type": "string"},
            "task_id": {
                "type": "string",
                "description": "The row's job: GET /v1/videos/avatar/image2video/{task_id}.",
            },
            "status": {"type": "string", "enum": list(BATCH_ROW_STATUSES)},
            "reason": {"type": "string", "description": "Why it failed or was canceled."},
            "video_url": {
                "type": "string",
                "description": "When done: a signed link to the video, like a task's "
                "(no session needed, works while this token does). Empty otherwise.",
            },
        },
    }
    counts = {name: {"type": "integer", "minimum": 0} for name in BATCH_ROW_STATUSES}
    batch: dict[str, Any] = {
        "type": "object",
        "required": [
            "batch_id", "name", "source", "created_at", "state", "problem", "finished",
            "total", *counts, "voiceovers_needed", "voiceovers_made", "eta_seconds", "rows",
            "links",
        ],
        "properties": {
            "batch_id": {"type": "string", "description": "The batch's id (a UUID)."},
            "name": {"type": "string"},
            "source": {"type": "string", "enum": ["web", "command", "api"]},
            "created_at": {"type": "integer", "description": "Unix time in milliseconds."},
            "state": {
                "type": "string",
                "enum": ["preparing", "ready", "failed", "canceled"],
                "description": "preparing: the worker is making the rows' voice-overs from "
                "their scripts, and queues every row when all are made (rows is empty until "
                "then); ready: the rows are queued; failed: a row could not be queued (see "
                "problem) and none was; canceled: canceled before its rows were queued.",
            },
            "problem": {
                "type": "string",
                "description": "When failed: which row and why (empty otherwise).",
            },
            "finished": {
                "type": "boolean",
                "description": "No row is queued or running any more (or the batch failed or "
                "was canceled before its rows were queued).",
            },
            "total": {"type": "integer", "minimum": 0},
            **counts,
            "voiceovers_needed": {"type": "integer", "minimum": 0},
            "voiceovers_made": {"type": "integer", "minimum": 0},
            "eta_seconds": {
                "type": ["integer", "null"],
                "description": "About how many seconds until every row has finished: from "
                "this batch's pace, or the team's history; null when there is nothing to go "
                "on or nothing left.",
            },
            "rows": {"type": "array", "items": row},
            "links": {
                "type": "object",
                "required": ["self", "report", "videos", "page"],
                "properties": {
                    "self": {"type": "string"},
                    "report": {"type": "string", "description": "The report as CSV."},
                    "videos": {"type": "string", "description": "Every video, one ZIP."},
                    "page": {"type": "string", "description": "The batch's studio page."},
                },
            },
        },
    }  # fmt: skip
    created = {
        **batch,
        "required": [*batch["required"], "dropped_rows"],
        "properties": {
            **batch["properties"],
            "dropped_rows": {
                "type": "array",
                "items": row_problems,
                "description": "With drop_bad_rows: the rows left out, with their problems.",
            },
        },
    }
    refused = {
        "description": "Nothing was created. 1201: the spreadsheet, a row or a parameter is "
        "wrong (the message names it first); a spreadsheet or a row refused comes with "
        "data.problems (the spreadsheet's) and data.rows (each bad row's). 1200: the body "
        "is not JSON or a multipart form.",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["code", "message", "request_id", "data"],
                    "properties": {
                        "code": {"type": "integer"},
                        "message": {"type": "string"},
                        "request_id": {"type": "string"},
                        "data": {
                            "anyOf": [
                                {"type": "null"},
                                {
                                    "type": "object",
                                    "required": ["created", "problems", "rows"],
                                    "properties": {
                                        "created": {"type": "boolean", "const": False},
                                        "problems": {"type": "array", "items": {"type": "string"}},
                                        "rows": {"type": "array", "items": row_problems},
                                    },
                                },
                            ]
                        },
                    },
                },
            }
        },
    }
    csv_help = (
        "The spreadsheet (UTF-8; at most 2 MB and 500 rows): a header row, then one row per "
        "video. Columns: name, portrait, audio or script (+ voice, speed), prompt, mode, and "
        "any {placeholder} a script or prompt uses. A portrait or recording is a file in the "
        "ZIP (its path or bare name) or a library file's name."
    )
    shared = {
        "template": {
            **text,
            "description": "A team template's name: a row's empty cells are taken from it.",
        },
        "name": {**text, "description": "The batch's name (default: the CSV's and the day)."},
    }
    json_body = {
        "type": "object",
        "required": ["csv"],
        "additionalProperties": False,
        "properties": {
            "csv": {"type": "string", "minLength": 1, "description": csv_help},
            **{key: _nullable(value) for key, value in shared.items()},
            "drop_bad_rows": _nullable(
                {
                    "type": "boolean",
                    "default": False,
                    "description": "Make the rows that pass and leave out the others.",
                }
            ),
        },
        "example": {"csv": "name,portrait,audio\nWelcome Ana,Ana.jpg,hello.mp3\n"},
    }
    form_body = {
        "type": "object",
        "required": ["csv"],
        "additionalProperties": False,
        "properties": {
            "csv": {"type": "string", "format": "binary", "description": csv_help},
            "zip": {
                "type": "string",
                "format": "binary",
                "description": "The portraits and recordings the rows name (at most 200 MB, "
                "1,000 files, 1 GB unpacked).",
            },
            **shared,
            "drop_bad_rows": {
                "type": "string",
                "enum": ["true", "false", "1", "0", "yes", "no", "on", "off"],
                "default": "false",
            },
        },
    }
    batch_id = {
        "name": "batch_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1},
    }
    not_found = {"404": _error_response("1203: no such batch in this token's team.", [1203])}

    def download(operation: str, summary: str, media: str) -> dict[str, Any]:
        return {
            "servers": root,
            "get": {
                "operationId": operation,
                "summary": summary,
                "security": bearer,
                "parameters": [batch_id],
                "responses": {
                    "200": {
                        "description": summary,
                        "content": {media: {"schema": {"type": "string", "format": "binary"}}},
                    },
                    **_errors(401),
                    **not_found,
                    **_errors(405, 500),
                },
            },
        }

    return {
        "/api/batches": {
            "servers": root,
            "post": {
                "operationId": "createBatch",
                "summary": "Make a batch of avatar videos from a spreadsheet (and a ZIP)",
                "description": "Every row is checked as the studio's New batch page checks it. "
                "With any bad row (and drop_bad_rows not set) the answer is 400 with every "
                "row's problems and nothing is stored, queued or charged; otherwise the batch "
                "is made at once and answered as GET /api/batches/{batch_id} shows it.",
                "security": bearer,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": json_body},
                        "multipart/form-data": {"schema": form_body},
                    },
                },
                "responses": {
                    "200": {
                        "description": "The batch was made and its jobs queued.",
                        "content": {"application/json": {"schema": _envelope(created)}},
                    },
                    "400": refused,
                    **_errors(401, 405, 413, 429, 500),
                },
            },
        },
        "/api/batches/{batch_id}": {
            "servers": root,
            "get": {
                "operationId": "getBatch",
                "summary": "A batch's progress: its counts and every row",
                "security": bearer,
                "parameters": [batch_id],
                "responses": {
                    "200": {
                        "description": "The batch.",
                        "content": {"application/json": {"schema": _envelope(batch)}},
                    },
                    **_errors(401),
                    **not_found,
                    **_errors(405, 500),
                },
            },
        },
        "/api/batches/{batch_id}/report.csv": download(
            "getBatchReport", "The report: row, name, status, reason, video link", "text/csv"
        ),
        "/api/batches/{batch_id}/videos.zip": download(
            "getBatchVideos",
            "Every finished video, in one ZIP streamed as it is written",
            "application/zip",
        ),
    }
