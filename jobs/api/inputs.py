"""An API request's inputs: the JSON body, its string parameters, and its files.

Files come as an http(s) URL (fetched through jobs/netfetch.py) or as bare base64, and go
through the same validation as the studio's forms (jobs/media/).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from django.core.cache import cache
from django.core.exceptions import (
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
    ValidationError,
)
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest
from django.http.multipartparser import MultiPartParserError

from jobs import netfetch
from jobs.api.contract import (
    BAD_REQUEST,
    BODY_MAX_BYTES,
    FETCH_SECONDS,
    FETCH_SLOTS_PER_TOKEN,
    FETCHES_PER_PROCESS,
    IMAGE_MAX_BYTES,
    SOUND_MAX_BYTES,
    TOO_MANY_REQUESTS,
    ApiError,
    bad,
)
from jobs.media.audio import ValidAudio, validate_audio
from jobs.media.limits import AUDIO_MAX_BYTES, MB, PORTRAIT_MAX_BYTES, MediaError
from jobs.media.portraits import ValidPortrait, validate_portrait
from jobs.media.sniffing import sniff
from jobs.models import JOB_NAME_MAX_CHARS
from jobs.services.batches import CSV_MAX_BYTES, read_csv_upload

_PROCESS_FETCHES = threading.BoundedSemaphore(FETCHES_PER_PROCESS)
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_BASE64_URLSAFE = str.maketrans("-_", "+/")

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


def json_body(request: HttpRequest) -> dict[str, Any]:
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
    _check_json_shape(raw)
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


# A create request is one object of a dozen keys, two of them long base64 strings. Parsed, a
# 22 MB body of empty objects ([{},{},...]) would be 7 million dicts, 540 MB of worker; so the
# body's structure is counted before json.loads, outside strings, and refused past these.
JSON_MAX_VALUES = 10_000  # objects, arrays and the commas between values
JSON_MAX_DEPTH = 20
# A JSON string, escapes included: what is inside one is not structure.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")


def _check_json_shape(raw: bytes) -> None:
    """Refuse a body with too many values or too deep a nesting, before parsing it.

    bytes.count runs at memory speed, so an ordinary body (few brackets and commas, whatever
    the size of its strings) costs a few milliseconds; only one that looks busy is scanned
    with its strings taken out, so that commas in a prompt do not count."""
    openers = raw.count(b"{") + raw.count(b"[")
    if openers <= JSON_MAX_DEPTH and openers + raw.count(b",") <= JSON_MAX_VALUES:
        return
    skeleton = _JSON_STRING.sub(b'""', raw)
    values = skeleton.count(b"{") + skeleton.count(b"[") + skeleton.count(b",")
    if values > JSON_MAX_VALUES:
        raise bad(
            "body",
            f"it holds more than {JSON_MAX_VALUES:,} JSON values (objects, arrays and list "
            "items): a request needs a few parameters, not a data set",
        )
    brackets = _NOT_BRACKET.sub(b"", skeleton)
    if len(brackets) > 2 * JSON_MAX_VALUES:  # closers beyond their openers: not JSON anyway
        raise ApiError(BAD_REQUEST, "body: it is not valid JSON: its brackets do not pair up.")
    depth = deepest = 0
    for bracket in brackets:
        depth += 1 if bracket in b"[{" else -1
        deepest = max(deepest, depth)
    if deepest > JSON_MAX_DEPTH:
        raise bad(
            "body",
            f"its objects and arrays are nested {deepest} deep: the limit is {JSON_MAX_DEPTH}",
        )


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a value of another type"


def text_param(body: dict[str, Any], field: str, *, max_chars: int | None = None) -> str:
    """A string parameter; absent, null and "" (as the seed documents send) all mean "not given"."""
    value = body.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise bad(field, f"must be a string, not {json_type(value)}")
    value = value.strip()
    if max_chars is not None and len(value) > max_chars:
        raise bad(field, f"is {len(value):,} characters long: the limit is {max_chars:,}")
    return value


def shown(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")


# --- inputs: URL or bare base64, then the same validation as the studio's forms --------------


def _is_url(value: str) -> bool:
    return bool(value) and value[:5].lower() != "data:" and bool(_URL_SCHEME.match(value))


@contextmanager
def fetch_slot(token_id: int, *values: str) -> Iterator[None]:
    """Hold one of the token's FETCH_SLOTS_PER_TOKEN URL-fetch slots while the block runs, if
    any of `values` is a URL, and one of this process's FETCHES_PER_PROCESS; refuse with 1302
    (HTTP 429) when either is taken, so neither one caller nor many tokens can hold every thread.

    The token's slots are cache keys (shared by every web process); each expires a little after
    the longest its fetches can take, so a process killed mid-fetch cannot keep it for good.
    """
    fetches = sum(1 for value in values if _is_url(value))
    if not fetches:
        yield
        return
    expiry = int(FETCH_SECONDS * fetches) + 10
    for slot in range(FETCH_SLOTS_PER_TOKEN):
        key = f"api-fetch-slot:{token_id}:{slot}"
        if cache.add(key, 1, timeout=expiry):
            break
    else:
        raise ApiError(
            TOO_MANY_REQUESTS,
            f"image, sound_file: this token already has {FETCH_SLOTS_PER_TOKEN} requests "
            "fetching files from URLs; wait for one of them to be answered and try again, or "
            "send the files as bare base64.",
        )
    if not _PROCESS_FETCHES.acquire(blocking=False):
        cache.delete(key)
        raise ApiError(
            TOO_MANY_REQUESTS,
            "image, sound_file: the studio is already fetching as many files from URLs as it "
            "allows at once; try again in a few seconds, or send the files as bare base64.",
        )
    try:
        yield
    finally:
        _PROCESS_FETCHES.release()
        cache.delete(key)


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
    ext = by_type.get(content_type) or by_kind.get(sniff(data)) or fallback
    return f"{stem}.{ext}"


def portrait_from(value: str) -> ValidPortrait:
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
    return valid


def sound_from(value: str) -> ValidAudio:
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
    return valid


# --- a batch: the spreadsheet as JSON text or a multipart file, and its ZIP ------------------

BATCH_FIELDS = ("csv", "zip", "template", "drop_bad_rows", "name")
# drop_bad_rows in a multipart form: the words curl users write, and nothing else.
_FORM_TRUE = ("true", "1", "yes", "on")
_FORM_FALSE = ("false", "0", "no", "off", "")


@dataclass
class BatchRequest:
    """A batch request's inputs, read but not yet checked against the team."""

    csv_text: str
    archive: UploadedFile | None = None
    template: str = ""  # a template's name
    drop_bad_rows: bool = False
    name: str = ""
    filename: str = ""  # the CSV file's name, for the default batch name


def batch_request(request: HttpRequest) -> BatchRequest:
    """The inputs of POST /api/batches: a JSON object or a multipart form (see openapi.py)."""
    if request.content_type == "application/json":
        return _batch_json(json_body(request))
    if request.content_type == "multipart/form-data":
        return _batch_form(request)
    raise ApiError(
        BAD_REQUEST,
        f"body: {shown(request.content_type or 'no Content-Type')} is not accepted here: send "
        "a JSON object (Content-Type: application/json) with the CSV as text in 'csv', or a "
        "multipart/form-data form with a 'csv' file and optionally a 'zip' file.",
    )


def _unknown(names: Any) -> None:
    for name in names:
        if name not in BATCH_FIELDS:
            raise bad(
                shown(str(name)),
                f"is not a parameter of a batch: send {', '.join(BATCH_FIELDS)}",
            )


def _batch_texts(values: dict[str, Any]) -> dict[str, str]:
    texts = {
        "template": text_param(values, "template", max_chars=JOB_NAME_MAX_CHARS),
        "name": text_param(values, "name", max_chars=JOB_NAME_MAX_CHARS),
    }
    for field, value in texts.items():
        if "\x00" in value:
            raise bad(field, "contains a NUL character")
    return texts


def _csv_text(text: str) -> str:
    if not text.strip():
        raise bad("csv", "is required: the spreadsheet as CSV text, a header row first")
    if len(text.encode("utf-8", "surrogatepass")) > CSV_MAX_BYTES:
        raise bad("csv", f"is larger than {CSV_MAX_BYTES // MB} MB: a batch has at most 500 rows")
    if "\x00" in text:
        raise bad("csv", "contains a NUL character: save the spreadsheet as CSV UTF-8 again")
    return text


def _batch_json(body: dict[str, Any]) -> BatchRequest:
    if "zip" in body:
        raise bad(
            "zip",
            "cannot be sent in JSON: send the request as multipart/form-data with the ZIP as a "
            "file part named zip (and the CSV as a file part named csv)",
        )
    _unknown(body)
    value = body.get("csv")
    if not isinstance(value, str):
        raise bad(
            "csv",
            "is required: the spreadsheet as CSV text"
            if value is None
            else f"must be a string of CSV text, not {json_type(value)}",
        )
    drop = body.get("drop_bad_rows", False)
    if drop is None:
        drop = False
    if not isinstance(drop, bool):
        raise bad("drop_bad_rows", f"must be true or false, not {json_type(drop)}")
    texts = _batch_texts(body)
    return BatchRequest(
        csv_text=_csv_text(value),
        drop_bad_rows=drop,
        template=texts["template"],
        name=texts["name"],
    )


def _batch_form(request: HttpRequest) -> BatchRequest:
    try:
        form, files = request.POST, request.FILES
    except RequestDataTooBig:
        # Past the route's cap the body-cap middleware turns this into its 413; otherwise the
        # text fields passed Django's limit for them (DATA_UPLOAD_MAX_MEMORY_SIZE).
        raise ApiError(
            BAD_REQUEST,
            "body: the form's text fields are larger than Django takes: send the CSV as a file "
            "part (curl: -F csv=@rows.csv).",
        ) from None
    except (TooManyFieldsSent, TooManyFilesSent, MultiPartParserError) as exc:
        raise ApiError(BAD_REQUEST, f"body: the multipart form cannot be read: {exc}") from None
    _unknown([*form.keys(), *files.keys()])
    for field in ("template", "name", "drop_bad_rows"):
        if field in files:
            raise bad(field, "must be a text field, not a file part")
    for field in BATCH_FIELDS:
        if len(form.getlist(field)) + len(files.getlist(field)) > 1:
            raise bad(field, "is given more than once: send it once")
    if "zip" in form:
        raise bad("zip", "must be a file part (curl: -F zip=@files.zip), not a text field")
    upload = files.get("csv")
    filename = ""
    if upload is not None:
        try:
            text = read_csv_upload(upload)
        except ValidationError as exc:
            raise bad("csv", " ".join(exc.messages)) from None
        filename = upload.name or ""
    else:
        text = form.get("csv", "")
    if not text.strip():
        raise bad("csv", "is required: a CSV file part (curl: -F csv=@rows.csv) or CSV text")
    drop = form.get("drop_bad_rows", "")
    if drop not in _FORM_TRUE + _FORM_FALSE:
        raise bad("drop_bad_rows", f"must be true or false, not {shown(drop)}")
    texts = _batch_texts({k: form.get(k) for k in ("template", "name")})
    return BatchRequest(
        csv_text=_csv_text(text),
        archive=files.get("zip"),
        drop_bad_rows=drop in _FORM_TRUE,
        template=texts["template"],
        name=texts["name"],
        filename=filename,
    )
