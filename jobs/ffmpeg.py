"""The ffmpeg binary that imageio-ffmpeg ships, and the few ways we use it.

There is no ffprobe in that package, so probing reads ffmpeg's own stream report and, where
the header cannot be trusted, decodes the media and counts what came out.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import imageio_ffmpeg


class FFmpegError(Exception):
    """ffmpeg failed or ran out of time; the message is ffmpeg's last words, for logs."""


@cache
def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(args: list[str], *, timeout: float, stdin: bytes | None = None) -> bytes:
    """Run ffmpeg quietly with `args`; return stdout, raise FFmpegError on failure."""
    cmd = [ffmpeg_exe(), "-hide_banner", *(["-nostdin"] if stdin is None else []), *args]
    try:
        proc = subprocess.run(
            cmd,
            input=stdin,
            capture_output=True,
            timeout=timeout,
            check=False,
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise FFmpegError(f"ffmpeg took longer than {timeout:.0f} s") from None
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise FFmpegError(" | ".join(tail) or f"ffmpeg exited with {proc.returncode}")
    return proc.stdout


def run_ffmpeg_fed(
    args: list[str], chunks: Iterable[bytes | memoryview], *, timeout: float
) -> None:
    """Run ffmpeg with `args`, writing `chunks` to its stdin as they are made (frames, one at a
    time, so memory stays bounded however long the video); raise FFmpegError on failure.

    The chunks are made while ffmpeg encodes the previous ones: the two overlap on two cores.
    Its stderr goes to a temporary file, so a chatty ffmpeg can never block on a full pipe.
    """
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            [ffmpeg_exe(), "-hide_banner", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        assert proc.stdin is not None
        try:
            for chunk in chunks:
                if time.monotonic() > deadline:
                    raise FFmpegError(f"ffmpeg took longer than {timeout:.0f} s")
                proc.stdin.write(chunk)
            proc.stdin.close()
            returncode = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except BrokenPipeError:  # ffmpeg stopped reading: its own words say why
            returncode = proc.wait()
        except subprocess.TimeoutExpired:
            raise FFmpegError(f"ffmpeg took longer than {timeout:.0f} s") from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            with contextlib.suppress(OSError):  # a broken pipe, already reported
                proc.stdin.close()
        if returncode != 0:
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace").strip().splitlines()[-3:]
            raise FFmpegError(" | ".join(tail) or f"ffmpeg exited with {returncode}")


@dataclass(frozen=True)
class Stream:
    kind: str  # "video" or "audio"
    codec: str
    width: int | None = None
    height: int | None = None
    attached_pic: bool = False  # cover art in an audio file, not a video track


@dataclass(frozen=True)
class Probe:
    container: str  # ffmpeg's demuxer name, e.g. "mp3", "wav", "mov,mp4,m4a,3gp,3g2,mj2", "aac"
    duration: float | None  # from the header; may be an estimate
    streams: list[Stream] = field(default_factory=list)

    @property
    def video(self) -> Stream | None:
        return next((s for s in self.streams if s.kind == "video" and not s.attached_pic), None)

    @property
    def audio(self) -> Stream | None:
        return next((s for s in self.streams if s.kind == "audio"), None)


_INPUT = re.compile(r"^Input #0, (?P<container>[^,]+(?:,[^ ]+)*), from", re.M)
_DURATION = re.compile(r"Duration: (?P<h>\d+):(?P<m>\d+):(?P<s>\d+(?:\.\d+)?)")
_STREAM = re.compile(
    r"Stream #0:\d+.*?: (?P<kind>Video|Audio): (?P<codec>[\w-]+)(?P<rest>.*)$", re.M
)
_SIZE = re.compile(r"(?<![\d.])(?P<w>\d{2,5})x(?P<h>\d{2,5})(?![\d])")


def _local(path: Path | str) -> str:
    """Name a local file so ffmpeg never reads it as a protocol (`concat:`, `http:`...)."""
    return f"file:{Path(path).resolve()}"


def probe(path: Path | str, *, timeout: float = 20) -> Probe | None:
    """Read the container, streams and header duration; None if ffmpeg cannot open the file."""
    try:
        proc = subprocess.run(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", _local(path)],
            capture_output=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return None
    report = proc.stderr.decode(errors="replace")
    found = _INPUT.search(report)
    if not found:
        return None
    duration = None
    if m := _DURATION.search(report):
        duration = int(m["h"]) * 3600 + int(m["m"]) * 60 + float(m["s"])
    streams = []
    for m in _STREAM.finditer(report):
        size = _SIZE.search(m["rest"]) if m["kind"] == "Video" else None
        streams.append(
            Stream(
                kind=m["kind"].lower(),
                codec=m["codec"],
                width=int(size["w"]) if size else None,
                height=int(size["h"]) if size else None,
                attached_pic="(attached pic)" in m["rest"],
            )
        )
    return Probe(container=found["container"], duration=duration, streams=streams)


DECODE_RATE = 8000  # Hz, mono, 16-bit: plenty to measure length, cheap to produce


def decoded_audio_seconds(path: Path | str, *, timeout: float = 30) -> float:
    """Decode the first audio stream to the end and return how many seconds came out.

    Headers lie (a truncated mp3 still claims its full length); decoded samples do not.
    Raises FFmpegError when the stream cannot be decoded at all.
    """
    pcm = run_ffmpeg(
        [
            "-v",
            "error",
            "-i",
            _local(path),
            "-map",
            "0:a:0",
            "-vn",
            "-ac",
            "1",
            "-ar",
            str(DECODE_RATE),
            "-f",
            "s16le",
            "-",
        ],
        timeout=timeout,
    )
    return len(pcm) / (2 * DECODE_RATE)
