"""Kling's input limits, the error every refusal raises, and how numbers are said in it."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.files.base import File

MB = 1024 * 1024
PORTRAIT_MAX_BYTES = 10 * 1024 * 1024
AUDIO_MAX_BYTES = 5 * 1024 * 1024
PROMPT_MAX_CHARS = 2500

PORTRAIT_MIN_SIDE = 300
PORTRAIT_MAX_RATIO = 2.5  # w/h and h/w, inclusive (Kling: between 1/2.5 and 2.5)
# Far below Pillow's bomb limit (89 MP warns, 179 MP raises): a 40 MP RGB image is 120 MB of
# pixels, already more than a web worker should hold, and far more than any portrait needs.
PORTRAIT_MAX_PIXELS = 40_000_000
AUDIO_MIN_SECONDS = 2
NAME_MAX_CHARS = 255

PORTRAIT_EXTENSIONS = ("jpg", "jpeg", "png")
# Extension -> the container family it promises.
AUDIO_EXTENSIONS = {"mp3": "mp3", "wav": "wav", "m4a": "m4a", "mp4": "m4a", "aac": "aac"}
FFMPEG_TIMEOUT = 20  # seconds; a 5 MB file takes a fraction of one

Upload = File | Path


class MediaError(ValidationError):
    """An upload or prompt we refuse; `.messages` are sentences to show the user as they are."""

    def __init__(self, *messages: str, code: str = "invalid") -> None:
        super().__init__([ValidationError(m, code=code) for m in messages])
        self.code = code


# ------------------------------------------------------------------------- numbers in words


def beside(value: float, limit: float, *, decimals: int = 1) -> str:
    """`value` with enough decimals that it never reads as the limit it broke (1.96 ≠ "2.0")."""
    for places in range(decimals, decimals + 4):
        text = f"{value:,.{places}f}"
        if float(text.replace(",", "")) != limit:
            return text
    return f"{value:,}"


def size_text(size: int, limit: int) -> str:
    """Megabytes to one decimal, or exact bytes when rounding would hide the excess."""
    text = f"{size / MB:.1f}"
    return f"{size:,} bytes" if float(text) * MB <= limit else f"{text} MB"
