"""File names: the display name kept for an upload, and the extension it claims."""

from __future__ import annotations

import unicodedata

from jobs.media.limits import NAME_MAX_CHARS

# ---------------------------------------------------------------------------------- names


_INVISIBLE = {"Cc", "Cf", "Cs", "Zl", "Zp"}  # control, format (bidi overrides), surrogates, breaks


def display_name(name: str) -> str:
    """The uploader's file name made safe to show: last path part, printable, ≤ 255 chars.

    Stored names are the app's own; this one is only ever displayed, so it just has to be
    harmless (no path parts, no right-to-left tricks, no line breaks) and recognisable.
    """
    text = unicodedata.normalize("NFC", str(name or ""))
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(ch for ch in text if unicodedata.category(ch) not in _INVISIBLE)
    text = " ".join(text.split())
    if not text.strip("."):
        return "unnamed"
    if len(text) > NAME_MAX_CHARS:
        stem, dot, ext = text.rpartition(".")
        if dot and stem and len(ext) <= 16:
            text = f"{stem[: NAME_MAX_CHARS - len(ext) - 1]}.{ext}"
        else:
            text = text[:NAME_MAX_CHARS]
    return text


def extension(name: str) -> str:
    stem, dot, ext = name.rpartition(".")
    return ext.lower() if dot and stem else ""
