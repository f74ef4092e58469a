"""Reading an upload with a size cap, before anything else looks at it."""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path
from typing import IO

from django.core.files.base import File

from jobs.media.limits import MB, MediaError, Upload, size_text

# ---------------------------------------------------------------------------- reading


def upload_name(upload: Upload) -> str:
    return upload.name if isinstance(upload, Path) else str(getattr(upload, "name", "") or "")


def declared_size(upload: Upload) -> int | None:
    """The size the upload reports without reading it, if it knows."""
    if isinstance(upload, Path):
        return upload.stat().st_size
    try:
        size = upload.size
    except (AttributeError, OSError, ValueError):
        return None
    return size if isinstance(size, int) else None


def _read_at_most(fh: IO[bytes] | File, limit: int) -> bytes:
    parts: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = fh.read(min(remaining, 1024 * 1024))
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def read_upload(upload: Upload, *, max_bytes: int, subject: str, how_to_shrink: str) -> bytes:
    """Read the whole upload, refusing empty or oversized files without reading past max+1."""

    def too_big(size: int | None) -> MediaError:
        shown = f"{size_text(size, max_bytes)}" if size else f"larger than {max_bytes // MB} MB"
        return MediaError(
            f"{subject} is {shown}: the limit is {max_bytes // MB} MB. {how_to_shrink}",
            code="too_large",
        )

    declared = declared_size(upload)
    if declared is not None and declared > max_bytes:
        raise too_big(declared)
    if isinstance(upload, Path):
        with upload.open("rb") as fh:
            data = _read_at_most(fh, max_bytes + 1)
    else:
        if upload.closed:
            upload.open("rb")
        with suppress(AttributeError, OSError, ValueError):
            upload.seek(0)
        data = _read_at_most(upload, max_bytes + 1)
        with suppress(AttributeError, OSError, ValueError):
            upload.seek(0)
    if not data:
        raise MediaError(f"{subject} file is empty (0 bytes). Upload it again.", code="empty")
    if len(data) > max_bytes:
        raise too_big(declared if declared and declared > max_bytes else None)
    return data
