"""Request bodies refused by size before anything reads them.

Without this, a 300 MB multipart POST from someone who is not even logged in is spooled to the
temp folder in full before the login check answers: CsrfViewMiddleware reads the body to find
the token, and the parser writes every file part to disk. So:

- `BodyCapMiddleware`, first in settings.MIDDLEWARE, refuses by Content-Length (413) before
  any middleware or view touches the body, with one limit per route from `ROUTE_CAPS` below;
  a body of unknown length (chunked) is refused outright, since Django's WSGI request reads
  nothing without a Content-Length anyway (the view would see an empty form).
- `BodyCapUploadHandler`, first in settings.FILE_UPLOAD_HANDLERS, counts the bytes of a
  multipart upload as they stream and stops it past the same limit, for the servers that hand
  Django more than the Content-Length said (ASGI spools the whole body, whatever it claims).
  Every temporary file is closed (and so deleted) before the refusal, which the middleware
  then turns into the same 413 page.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.template.loader import render_to_string

from jobs.api.contract import BAD_REQUEST, BODY_MAX_BYTES, ApiError, error_response
from jobs.media.limits import AUDIO_MAX_BYTES, MB, PORTRAIT_MAX_BYTES, size_text

KB = 1024
# Boundaries, part headers and the form's other fields (prompt, mode, CSRF token, picks):
# a few kilobytes in practice, with room for a long prompt and browsers' long file names.
MULTIPART_OVERHEAD = 256 * KB


@dataclass(frozen=True)
class BodyCap:
    """The largest body one route accepts, and what to call it in the refusal."""

    max_bytes: int
    what: str  # what the limit is sized for, said in the refusal
    advice: str = "Send smaller files, or fewer at once."
    api: bool = False  # answer in Kling's JSON envelope instead of an HTML page


NEW_JOB = BodyCap(
    PORTRAIT_MAX_BYTES + AUDIO_MAX_BYTES + MULTIPART_OVERHEAD,
    f"a new job: a portrait of up to {PORTRAIT_MAX_BYTES // MB} MB and a voice-over of up to "
    f"{AUDIO_MAX_BYTES // MB} MB",
)
ONE_FILE = BodyCap(
    max(PORTRAIT_MAX_BYTES, AUDIO_MAX_BYTES) + MULTIPART_OVERHEAD,
    f"one file: a portrait of up to {PORTRAIT_MAX_BYTES // MB} MB or a voice-over of up to "
    f"{AUDIO_MAX_BYTES // MB} MB",
)
API = BodyCap(
    BODY_MAX_BYTES,
    f"an API request: a {PORTRAIT_MAX_BYTES // MB} MB image and a {AUDIO_MAX_BYTES // MB} MB "
    "sound file as base64",
    advice="Send large files as URLs instead of base64.",
    api=True,
)
# 1,000 characters of text (up to 6 bytes each as JSON escapes) and the voice fields.
TTS = BodyCap(
    16 * KB,
    "a text-to-speech request: up to 1,000 characters of text",
    advice="Send at most 1,000 characters of text per request.",
    api=True,
)
# GET-only API routes (account costs): nothing to send in a body.
API_QUERY = BodyCap(4 * KB, "an API query", advice="Send the parameters in the URL.", api=True)
# A batch: the spreadsheet and one ZIP of its portraits and recordings. The ZIP's members are
# capped again when read (jobs/media/archives.py); this only bounds the upload itself.
BATCH_ZIP_MAX_BYTES = 200 * MB
BATCH = BodyCap(
    BATCH_ZIP_MAX_BYTES + 2 * MB + MULTIPART_OVERHEAD,
    f"a batch: a spreadsheet of up to 2 MB and a ZIP of up to {BATCH_ZIP_MAX_BYTES // MB} MB",
    advice="Split the batch, or name files already in the library instead of zipping them.",
)
# The same batch over the API (POST /api/batches), as a multipart form (a JSON body, the CSV as
# text, is held to the API's own BODY_MAX_BYTES by jobs/api/inputs.py).
API_BATCH = BodyCap(BATCH.max_bytes, BATCH.what, advice=BATCH.advice, api=True)
# The confirmation carries the checked plan (signed, compressed): up to 500 rows of scripts.
BATCH_CONFIRM = BodyCap(2 * MB, "a batch's confirmation", "Split the batch in two.")
# Django refuses form fields beyond DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) itself; the admin's
# biggest forms (a bulk action over thousands of rows) stay under it.
ADMIN = BodyCap(3 * MB, "an admin form", "Select fewer rows at once.")
CALLBACK = BodyCap(1 * MB, "a status callback", "A task's status is a few kilobytes.")
FORM = BodyCap(256 * KB, "a form without files", "Shorten what you typed.")

# Path (from the site root, no leading slash) -> cap; the first match wins, FORM otherwise.
ROUTE_CAPS: tuple[tuple[re.Pattern[str], BodyCap], ...] = tuple(
    (re.compile(pattern), cap)
    for pattern, cap in (
        (r"^jobs/new/$", NEW_JOB),
        # Without JavaScript, "write a voice-over" posts the whole new-job form here.
        (r"^voiceovers/new/$", NEW_JOB),
        # One file at a time: job_new.html's hx-params send only the field that changed.
        (r"^jobs/new/check/[^/]+/$", ONE_FILE),
        (r"^(?:kling/)?v1/audio/tts$", TTS),
        (r"^batches/new/$", BATCH),
        (r"^batches/new/confirm/$", BATCH_CONFIRM),
        (r"^(?:kling/)?v1/", API),
        (r"^api/batches/?$", API_BATCH),  # the slash: refused with a word, not a 413
        (r"^api/batches/", API_QUERY),
        (r"^(?:kling/)?account/", API_QUERY),
        (r"^admin/", ADMIN),
        (r"^hooks/kling/", CALLBACK),
    )
)


def cap_for(path: str) -> BodyCap:
    """The cap of the route at `path` (request.path_info)."""
    path = path.lstrip("/")
    for pattern, cap in ROUTE_CAPS:
        if pattern.match(path):
            return cap
    return FORM


class BodyTooLarge(RequestDataTooBig):
    """A body past its route's cap, found while it streamed (a SuspiciousOperation: a 400
    without a 500's stack trace in the logs, which the middleware turns into the 413 page)."""


def too_large_text(cap: BodyCap, size: int | None) -> str:
    """The refusal in words: how big the request is (when known), the limit, what it is for."""
    limit = f"{cap.max_bytes / MB:.1f} MB" if cap.max_bytes >= MB else f"{cap.max_bytes // KB} KB"
    said = "larger than that" if size is None else size_text(size, cap.max_bytes)
    return (
        f"The request is too large: this address accepts at most {limit} ({cap.what}), and "
        f"this one is {said}. {cap.advice}"
    )


UNKNOWN_LENGTH_TEXT = (
    "The request does not say how long it is (no Content-Length header): send it with one, "
    "not chunked."
)


# The refusal leaves before SecurityMiddleware, XFrameOptionsMiddleware and CSPMiddleware see
# it, so it carries their headers itself: the page loads the stylesheet and nothing else.
REFUSAL_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def refusal(cap: BodyCap, message: str, *, status: int = 413) -> HttpResponse:
    """The answer to a refused body: Kling's error envelope on the API, a short page elsewhere.

    The rest of the body is left unread. No `Connection: close` (WSGI forbids hop-by-hop
    headers): gunicorn's sync workers close the connection after every request anyway."""
    response: HttpResponse
    if cap.api:
        response = error_response(ApiError(BAD_REQUEST, f"body: {message}"), str(uuid.uuid4()))
        response.status_code = status
    else:
        # No RequestContext: nothing that would read the session, the user or the body.
        html = render_to_string("413.html", {"message": message, "status": status})
        response = HttpResponse(html, status=status)
    for name, value in REFUSAL_HEADERS.items():
        response[name] = value
    return response


def _declared_length(request: HttpRequest) -> int | None:
    """The Content-Length, 0 when there is no body, None when the length is unknown."""
    raw = request.META.get("CONTENT_LENGTH") or ""
    if raw.strip():
        try:
            length = int(raw)
        except ValueError:
            return None
        return length if length >= 0 else None
    if request.META.get("HTTP_TRANSFER_ENCODING", "").strip():
        return None  # chunked, or anything else that does not say how long it is
    return 0


class BodyCapMiddleware:
    """Refuse a body larger than its route's cap before anything reads it (see the module)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        cap = cap_for(request.path_info)
        length = _declared_length(request)
        if length is None:
            return refusal(cap, UNKNOWN_LENGTH_TEXT, status=411)
        if length > cap.max_bytes:
            return refusal(cap, too_large_text(cap, length))
        response = self.get_response(request)
        if getattr(request, "body_cap_exceeded", False):
            # The upload handler stopped the body midway: whatever CSRF or the view made of
            # that (a 400 by then), the answer is the refusal.
            response.close()
            return refusal(cap, too_large_text(cap, None))
        return response


class BodyCapUploadHandler(FileUploadHandler):
    """Stop a multipart upload once its files pass the route's cap, whatever Content-Length
    said; close every temporary file made for it, then refuse (see the module)."""

    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        cap = cap_for(request.path_info) if request is not None else FORM
        self.max_bytes = cap.max_bytes
        self.received = 0  # file bytes of every part so far
        self.exceeded = False
        self.files: list[Any] = []  # the other handlers' files, closed if the upload is stopped

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if self.received > self.max_bytes:
            self.exceeded = True
            # The parser closes the part's file and reads no further (connection_reset).
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        # The next handler makes the file; keep hold of it, to close it if a later part
        # is stopped (it would otherwise linger in the temp folder until garbage-collected).
        for handler in self.request.upload_handlers if self.request is not None else ():
            file = getattr(handler, "file", None)
            if handler is not self and file is not None:
                self.files.append(file)
        return None

    def upload_complete(self) -> None:
        if not self.exceeded:
            return
        for file in self.files:
            file.close()  # a TemporaryUploadedFile is deleted as it closes
        if self.request is not None:
            self.request.body_cap_exceeded = True  # type: ignore[attr-defined]
        raise BodyTooLarge(f"Upload stopped past {self.max_bytes:,} bytes.")
