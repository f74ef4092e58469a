"""A ZIP written as it is sent: entries stored (videos do not compress), one chunk at a time.

zipfile writes to any object with `write()`; without `tell()`/`seek()` it falls back to data
descriptors, so the archive can be produced front to back. The sink below hands whatever
zipfile wrote to the response after every chunk, so a web worker holds one chunk (64 kB), never
a video, let alone all of them.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import IO, cast

CHUNK = 64 * 1024

Opener = Callable[[], AbstractContextManager[IO[bytes]]]


class _Sink:
    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def stream_zip(entries: Iterable[tuple[str, datetime, Opener]]) -> Iterator[bytes]:
    """The bytes of a ZIP of `entries` (name in the archive, time, a way to open the file)."""
    sink = _Sink()
    with zipfile.ZipFile(
        cast(IO[bytes], sink), "w", compression=zipfile.ZIP_STORED, allowZip64=True
    ) as archive:
        for name, when, opener in entries:
            info = zipfile.ZipInfo(name, date_time=when.timetuple()[:6])
            info.compress_type = zipfile.ZIP_STORED
            with opener() as source, archive.open(info, "w", force_zip64=True) as target:
                while chunk := source.read(CHUNK):
                    target.write(chunk)
                    if out := sink.take():
                        yield out
            if out := sink.take():
                yield out
    if out := sink.take():
        yield out
