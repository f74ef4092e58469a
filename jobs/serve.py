"""Serve stored files to people who passed the access gate, with HTTP range support.

Media is never exposed on a public URL; video players need byte ranges to seek.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO, Any

from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils.http import content_disposition_header

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 64 * 1024


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


def serve_stored_file(
    request: HttpRequest,
    field: Any,
    *,
    content_type: str,
    filename: str,
    attachment: bool = False,
) -> HttpResponseBase:
    """Answer with the stored file, the whole of it or the one byte range asked for."""
    size = field.size
    fh = field.open("rb")
    match = _RANGE.match(request.headers.get("Range", "").strip())
    response: HttpResponseBase
    if match and (match[1] or match[2]):
        if match[1]:
            start = int(match[1])
            end = min(int(match[2]), size - 1) if match[2] else size - 1
        else:  # a suffix range: the last N bytes
            start, end = max(size - int(match[2]), 0), size - 1
        if start >= size or start > end:
            fh.close()
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
        response = StreamingHttpResponse(
            _read_range(fh, start, end - start + 1), status=206, content_type=content_type
        )
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(end - start + 1)
    else:
        response = FileResponse(fh, content_type=content_type)
        response["Content-Length"] = str(size)
    response["Accept-Ranges"] = "bytes"
    disposition = content_disposition_header(attachment, filename)
    if disposition:  # None only for an inline file with no name
        response["Content-Disposition"] = disposition
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    return response
