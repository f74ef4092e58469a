"""Serve stored files to people who passed the access gate, with HTTP range support.

Media is never exposed on a public URL; video players need byte ranges to seek. HEAD gets the
same headers as GET and no body (players and link checkers ask before they fetch).

With object storage (STORAGE_URL) the answer is instead a 302 to a presigned URL that lives
STORAGE_LINK_SECONDS and carries the download name and content type, so the bytes (and range
requests) go between the browser and the bucket, never through a web worker.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import IO, Any, cast

from django.conf import settings
from django.core.files.storage import Storage
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.utils.http import content_disposition_header
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")  # ASCII digits only: \d takes any script's
CHUNK = 64 * 1024
# Longer than any file's size can be: a position with more digits is past every end, and
# int() of a 5,000-digit string would raise (Python's int-from-text limit) before we compared.
_MAX_DIGITS = 18
# Media behind a login or token: browsers may keep it a few minutes, shared caches never, so a
# member who loses access stops getting it soon.
PRIVATE_CACHE = "private, max-age=300"


def _position(digits: str) -> int | None:
    """A byte position from the header; None for one too long to be in any file."""
    digits = digits.lstrip("0") or "0"
    return None if len(digits) > _MAX_DIGITS else int(digits)


def byte_range(header: str, size: int) -> tuple[int, int] | None | bool:
    """The (start, end) a Range header asks for, inclusive; None to send the whole file (no
    header, or one we ignore as RFC 9110 allows: malformed, several ranges); False when the
    range cannot be satisfied (answer 416)."""
    match = _RANGE.match(header.strip())
    if not match or not (match[1] or match[2]):
        return None
    if match[1]:
        start = _position(match[1])
        if start is None or start >= size:
            return False
        last = _position(match[2]) if match[2] else None
        end = size - 1 if last is None else min(last, size - 1)
        if start > end:
            return False
        return start, end
    suffix = _position(match[2])  # a suffix range: the last N bytes
    if suffix == 0 or size == 0:
        return False
    start = 0 if suffix is None else max(size - suffix, 0)
    return start, size - 1


def _read_range(fh: IO[bytes], start: int, length: int) -> Iterator[bytes]:
    try:
        fh.seek(start)
        while length > 0:
            chunk = fh.read(min(CHUNK, length))
            if not chunk:
                break
            length -= len(chunk)
            yield chunk
    finally:
        fh.close()


def _storage_of(stored: Any) -> Storage | None:
    """The storage a FieldFile is in (a file already opened from storage has none: it is sent
    through here, so callers with only a storage name use presigned_url themselves)."""
    storage = getattr(stored, "storage", None)
    return storage if isinstance(storage, Storage) else None


def is_object_storage(storage: Storage | None) -> bool:
    """True for S3-compatible storage (default_storage is lazy; isinstance sees through it)."""
    return isinstance(storage, S3Storage)


def open_stored(stored: Any) -> AbstractContextManager[IO[bytes]]:
    """A stored file (a FieldFile) to read front to back, a chunk at a time, never held whole.

    Local files open as they are. An object is read from the bucket's response as it arrives:
    django-storages' own file (S3File) first downloads the whole object into a
    SpooledTemporaryFile that never rolls over to disk (AWS_S3_MAX_MEMORY_SIZE is 0), so a
    200 MB result would take 200 MB of a web worker (bench/batchzip.py --s3 measured it).
    """
    storage = _storage_of(stored)
    if not isinstance(storage, S3Storage):
        return cast(AbstractContextManager[IO[bytes]], stored.open("rb"))
    key = storage._normalize_name(clean_name(stored.name))  # as S3Storage._open names it
    body = storage.bucket.Object(key).get()["Body"]  # botocore's StreamingBody: read(n)
    return cast(AbstractContextManager[IO[bytes]], contextlib.closing(body))


def presigned_url(
    storage: Storage | None,
    name: str,
    *,
    content_type: str,
    filename: str = "",
    attachment: bool = False,
) -> str | None:
    """A link straight to the object for STORAGE_LINK_SECONDS, or None when files are local."""
    if not isinstance(storage, S3Storage):
        return None
    parameters = {"ResponseContentType": content_type}
    disposition = content_disposition_header(attachment, filename)
    if disposition:
        parameters["ResponseContentDisposition"] = disposition
    url: str = storage.url(name, parameters=parameters, expire=settings.STORAGE_LINK_SECONDS)
    return url


def redirect_to_stored(url: str) -> HttpResponseRedirect:
    response = HttpResponseRedirect(url)
    # The link expires: nobody may keep the redirect longer than it works.
    response["Cache-Control"] = "private, no-store"
    return response


def serve_stored_file(
    request: HttpRequest,
    field: Any,
    *,
    content_type: str,
    filename: str,
    attachment: bool = False,
    cache_control: str = PRIVATE_CACHE,
) -> HttpResponseBase:
    """Answer with the stored file, the whole of it or the one byte range asked for.

    `cache_control` defaults to a short private lifetime; share links pass their own.
    Object storage answers with a presigned redirect instead (the caller has checked access).
    """
    url = presigned_url(
        _storage_of(field),
        field.name,
        content_type=content_type,
        filename=filename,
        attachment=attachment,
    )
    if url is not None:
        field.close()  # a caller may hand over an open file
        return redirect_to_stored(url)
    size = field.size
    wanted = byte_range(request.headers.get("Range", ""), size)
    response: HttpResponseBase
    if wanted is False:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    head = request.method == "HEAD"
    fh = None if head else field.open("rb")
    if head:
        field.close()  # a caller may hand over an open file
    if isinstance(wanted, tuple):
        start, end = wanted
        if fh is None:
            response = HttpResponse(status=206, content_type=content_type)
        else:
            response = StreamingHttpResponse(
                _read_range(fh, start, end - start + 1), status=206, content_type=content_type
            )
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(end - start + 1)
    else:
        if fh is None:
            response = HttpResponse(content_type=content_type)
        else:
            response = FileResponse(fh, content_type=content_type)
        response["Content-Length"] = str(size)
    response["Accept-Ranges"] = "bytes"
    disposition = content_disposition_header(attachment, filename)
    if disposition:  # None only for an inline file with no name
        response["Content-Disposition"] = disposition
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = cache_control
    return response
