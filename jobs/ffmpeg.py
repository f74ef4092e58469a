"""The ffmpeg binary that imageio-ffmpeg ships, and the few ways we use it.

There is no ffprobe in that package, so probing reads ffmpeg's own stream report and, where
the header cannot be trusted, decodes the media and counts what came out.
"""

from __future__ import annotations

import re
import subprocess
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
