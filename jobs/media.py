"""Check uploads (portraits, voice-overs, prompts) before any Kling credit is spent.

Kling refuses bad inputs only once a job reaches it, so everything it would refuse is refused
here first, with one message per problem that says what is wrong and how to fix it. Formats are
read from the bytes, never from the name or the browser's content type; the name only has to
agree. Portraits are stored clean: metadata stripped, nothing appended survives, pixels upright
and sRGB. A JPEG that already is upright and sRGB keeps its own compressed data (no generation
loss); anything else is decoded and re-encoded. Voice-overs are stored as uploaded, because Kling
inspects the audio itself.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import subprocess
import tempfile
import unicodedata
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import File
from PIL import Image, ImageCms, ImageFile
from PIL.JpegImagePlugin import JpegImageFile
from PIL.PngImagePlugin import PngImageFile

from jobs.ffmpeg import DECODE_RATE, FFmpegError, Probe, probe, run_ffmpeg

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

JPEG_QUALITIES = (92, 85, 75, 65, 50)  # tried in turn until the portrait fits under the limit
TRUNCATION_TOLERANCE = 0.5  # seconds a file may play short of what its header promises
DECODE_CHECK_SECONDS = 10  # how much audio is fully decoded to prove the stream is sound
FFMPEG_TIMEOUT = 20  # seconds; a 5 MB file takes a fraction of one

Upload = File | Path


class MediaError(ValidationError):
    """An upload or prompt we refuse; `.messages` are sentences to show the user as they are."""

    def __init__(self, *messages: str, code: str = "invalid") -> None:
        super().__init__([ValidationError(m, code=code) for m in messages])
        self.code = code


@dataclass(frozen=True)
class ValidPortrait:
    content: bytes  # upright, sRGB, metadata stripped, anything appended gone
    format: str  # "jpeg" or "png", as decoded (never from the name)
    ext: str  # "jpg" or "png"
    width: int
    height: int
    sha256: str
    size: int
    name: str  # display name of the original file


@dataclass(frozen=True)
class ValidAudio:
    content: bytes  # the bytes as uploaded
    format: str  # "mp3", "wav", "m4a" or "aac"
    ext: str
    duration: float  # seconds of audio actually in the file, not what the header claims
    sha256: str
    size: int
    name: str


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


def _extension(name: str) -> str:
    stem, dot, ext = name.rpartition(".")
    return ext.lower() if dot and stem else ""


# ------------------------------------------------------------------------- what a file is


# kind -> how to name it in a sentence ("This file is not audio (it is a GIF image)")
_KINDS = {
    "jpeg": "a JPEG image",
    "png": "a PNG image",
    "gif": "a GIF image",
    "webp": "a WebP image",
    "bmp": "a BMP image",
    "tiff": "a TIFF image",
    "heic": "a HEIC photo (the iPhone format)",
    "avif": "an AVIF image",
    "pdf": "a PDF document",
    "zip": "a ZIP archive or Office document",
    "mp3": "MP3 audio",
    "wav": "WAV audio",
    "mp4": "an MP4/M4A file",
    "aac": "AAC (ADTS) audio",
    "ogg": "Ogg audio",
    "flac": "FLAC audio",
    "aiff": "AIFF audio",
    "wma": "a Windows Media file",
    "amr": "AMR audio",
    "webm": "a WebM/Matroska file",
    "avi": "an AVI video",
    # guessed from text, so "it looks like ..."
    "html": "HTML",
    "svg": "an SVG drawing",
    "xml": "XML",
    "text": "plain text",
}
_TEXT_KINDS = {"html", "svg", "xml", "text"}
_AUDIO_KINDS = {"mp3": "mp3", "wav": "wav", "mp4": "m4a", "aac": "aac"}  # kind -> family
_OTHER_AUDIO_KINDS = {"ogg", "flac", "aiff", "wma", "amr", "webm", "avi"}
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")


def _what_it_is(kind: str) -> str:
    if kind in _TEXT_KINDS:
        return f"it looks like {_KINDS[kind]}"
    if kind in _KINDS:
        return f"it is {_KINDS[kind]}"
    return "its contents match no known format"


def _is_adts(b: bytes) -> bool:
    # 12-bit sync, layer 00, and a real sampling-frequency index.
    return len(b) >= 7 and b[0] == 0xFF and b[1] & 0xF6 == 0xF0 and (b[2] >> 2) & 0x0F < 13


def _is_mpeg_audio(b: bytes) -> bool:
    # 11-bit sync, then version != reserved, layer != reserved, bitrate != bad, rate != reserved.
    return (
        len(b) >= 4
        and b[0] == 0xFF
        and b[1] & 0xE0 == 0xE0
        and (b[1] >> 3) & 0b11 != 0b01
        and (b[1] >> 1) & 0b11 != 0b00
        and b[2] >> 4 != 0x0F
        and (b[2] >> 2) & 0b11 != 0b11
    )


def _id3_end(data: bytes) -> int:
    """Offset just after a leading ID3v2 tag (and any zero padding after it), else 0."""
    if data[:3] != b"ID3" or len(data) < 10:
        return 0
    size = (data[6] & 0x7F) << 21 | (data[7] & 0x7F) << 14 | (data[8] & 0x7F) << 7 | data[9] & 0x7F
    end = 10 + size + (10 if data[5] & 0x10 else 0)
    while end < len(data) and data[end] == 0:
        end += 1
    return end


def _sniff(data: bytes) -> str:
    """Name a file's format from its bytes: a key of _KINDS, or "unknown"."""
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    riff = {b"WAVE": "wav", b"WEBP": "webp", b"AVI ": "avi"}
    if head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] in riff:
        return riff[head[8:12]]
    if head[:2] == b"BM" and head[6:10] == b"\0\0\0\0":
        return "bmp"
    if head[:4] in (b"II*\0", b"MM\0*"):
        return "tiff"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            return "heic"
        return "avif" if brand in (b"avif", b"avis") else "mp4"
    signatures = {
        b"OggS": "ogg",
        b"fLaC": "flac",
        b"\x1aE\xdf\xa3": "webm",
        b"#!AM": "amr",
        b"%PDF": "pdf",
        b"PK\x03\x04": "zip",
    }
    if head[:4] in signatures:
        return signatures[head[:4]]
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:16] == _ASF_GUID:
        return "wma"
    if head[:3] == b"ID3":
        # ID3 tags front MP3 files, and sometimes raw AAC.
        return "aac" if _is_adts(data[_id3_end(data) :][:8]) else "mp3"
    if _is_adts(head):
        return "aac"
    if _is_mpeg_audio(head):
        return "mp3"
    return _sniff_text(data[:4096])


def _sniff_text(head: bytes) -> str:
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    low = text.lower()
    if low.startswith(b"<svg") or (low.startswith(b"<?xml") and b"<svg" in low):
        return "svg"
    html_starts = (b"<!doctype html", b"<html", b"<head", b"<body", b"<script", b"<!--", b"<meta")
    if low.startswith(html_starts) or b"<html" in low:
        return "html"
    if low.startswith(b"<?xml"):
        return "xml"
    if text and b"\0" not in text:
        try:
            text.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(text) - 4:  # a character cut at the end of the sample is fine
                return "unknown"
        return "text"
    return "unknown"


# ---------------------------------------------------------------------------- reading


def _upload_name(upload: Upload) -> str:
    return upload.name if isinstance(upload, Path) else str(getattr(upload, "name", "") or "")


def _declared_size(upload: Upload) -> int | None:
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


def _read_upload(upload: Upload, *, max_bytes: int, subject: str, how_to_shrink: str) -> bytes:
    """Read the whole upload, refusing empty or oversized files without reading past max+1."""

    def too_big(size: int | None) -> MediaError:
        shown = f"{_size_text(size, max_bytes)}" if size else f"larger than {max_bytes // MB} MB"
        return MediaError(
            f"{subject} is {shown}: the limit is {max_bytes // MB} MB. {how_to_shrink}",
            code="too_large",
        )

    declared = _declared_size(upload)
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


# ------------------------------------------------------------------------- numbers in words


def _beside(value: float, limit: float, *, decimals: int = 1) -> str:
    """`value` with enough decimals that it never reads as the limit it broke (1.96 ≠ "2.0")."""
    for places in range(decimals, decimals + 4):
        text = f"{value:,.{places}f}"
        if float(text.replace(",", "")) != limit:
            return text
    return f"{value:,}"


def _size_text(size: int, limit: int) -> str:
    """Megabytes to one decimal, or exact bytes when rounding would hide the excess."""
    text = f"{size / MB:.1f}"
    return f"{size:,} bytes" if float(text) * MB <= limit else f"{text} MB"


# ----------------------------------------------------------------------------- portraits

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# What Pillow raises on bad image data, besides OSError (truncation is an OSError).
_PIL_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, struct.error)


class _TooDetailed(Exception):
    """Even the lowest JPEG quality does not fit under the size limit."""


def validate_portrait(upload: Upload, *, name: str | None = None) -> ValidPortrait:
    """Check a portrait against Kling's rules and return it clean, ready to store.

    Cheap checks come first (name, size, header); the pixels are decoded only once the header
    says the image is a sane size, so a decompression bomb costs a few milliseconds. An upright
    sRGB JPEG is stored as its own compressed data minus the metadata (_jpeg_as_is); any other
    portrait is decoded once and re-encoded.
    """
    shown = display_name(name if name is not None else _upload_name(upload))
    ext = _extension(shown)
    if ext not in PORTRAIT_EXTENSIONS:
        raise _bad_portrait_name(shown, ext)
    data = _read_upload(
        upload,
        max_bytes=PORTRAIT_MAX_BYTES,
        subject="Portrait",
        how_to_shrink="Export it smaller or as JPEG.",
    )
    kind = _sniff(data)
    if kind not in ("jpeg", "png"):
        raise MediaError(
            f"This file is not a JPEG or PNG image ({_what_it_is(kind)}). "
            "Upload a .jpg or .png photo.",
            code="not_image",
        )
    label = kind.upper()
    try:
        image: ImageFile.ImageFile = (JpegImageFile if kind == "jpeg" else PngImageFile)(
            io.BytesIO(data)
        )
    except _PIL_ERRORS as exc:
        raise _damaged_portrait(label, exc) from None
    with image:  # leaving the block lets go of the file object, not of the pixels
        width, height = image.size
        orientation = _orientation(image.info.get("exif"))
        if orientation in (5, 6, 7, 8):
            width, height = height, width  # stored sideways: the user sees it the other way
        _check_dimensions(width, height)  # from the header alone: nothing decoded yet
        kept = _jpeg_as_is(image, data, orientation) if kind == "jpeg" else None
        if kept is None:
            try:
                image.load()
            except _PIL_ERRORS as exc:
                raise _damaged_portrait(label, exc) from None
            # A PNG may keep its EXIF after the pixels; now that they are loaded, it is in info.
            upright = _normalized(image, _orientation(image.info.get("exif")))
    if kept is not None:
        return ValidPortrait(
            content=kept,
            format="jpeg",
            ext="jpg",
            width=width,
            height=height,
            sha256=hashlib.sha256(kept).hexdigest(),
            size=len(kept),
            name=shown,
        )
    del data, image  # only the decoded pixels are needed now: free the rest before encoding
    try:
        content, fmt = _encode_portrait(upright, kind, max_bytes=PORTRAIT_MAX_BYTES)
    except _TooDetailed:
        raise MediaError(
            f"Portrait is {width}×{height} px and too detailed to fit in "
            f"{PORTRAIT_MAX_BYTES // MB} MB even as a compressed JPEG. "
            "Resize it to about 4000 px on the longest side.",
            code="too_detailed",
        ) from None
    return ValidPortrait(
        content=content,
        format=fmt,
        ext="jpg" if fmt == "jpeg" else "png",
        width=upright.width,
        height=upright.height,
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
        name=shown,
    )


def _bad_portrait_name(shown: str, ext: str) -> MediaError:
    if not ext:
        return MediaError(
            f"“{shown}” has no file extension. Upload the portrait as a .jpg or .png photo.",
            code="bad_extension",
        )
    return MediaError(
        f"Portraits must be .jpg or .png files, and “{shown}” is a .{ext} file. "
        "Export it as JPEG or PNG.",
        code="bad_extension",
    )


def _damaged_portrait(label: str, exc: BaseException) -> MediaError:
    if "truncated" in str(exc).lower():
        return MediaError(
            f"Portrait file is incomplete: the {label} data stops early, as if the upload or "
            "download was cut off. Export or download it again.",
            code="truncated",
        )
    return MediaError(
        f"Portrait file is damaged: its {label} data cannot be decoded. "
        "Export it again from your photo app.",
        code="damaged",
    )


def _orientation(exif: bytes | None) -> int:
    """The EXIF orientation (1-8) in raw EXIF bytes; 1 if absent or unreadable.

    Parsed from bytes rather than with getexif(), which makes Pillow decode a whole PNG to look
    for a trailing eXIf chunk: exactly what must not happen before the size checks.
    """
    if not exif:
        return 1
    try:
        tags = Image.Exif()
        tags.load(exif)
        value = tags.get(0x0112, 1)
    except (*_PIL_ERRORS, TypeError):
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _check_dimensions(width: int, height: int) -> None:
    size = f"{width}×{height} px"
    pixels, limit = width * height, PORTRAIT_MAX_PIXELS / 1e6
    if pixels > PORTRAIT_MAX_PIXELS:
        raise MediaError(
            f"Portrait is {size} ({_beside(pixels / 1e6, limit, decimals=0)} megapixels): "
            f"the limit is {limit:.0f} megapixels. Resize it, for example to "
            "4000 px on the longest side.",
            code="too_many_pixels",
        )
    problems = []
    if min(width, height) < PORTRAIT_MIN_SIDE:
        problems.append(
            f"Portrait is {size}: both sides must be at least {PORTRAIT_MIN_SIDE} px. "
            "Use a larger photo."
        )
    # Integer comparisons, so exactly 1:2.5 passes: h/w > 2.5  <=>  2h > 5w.
    limit = f"1:{PORTRAIT_MAX_RATIO} (tall) and {PORTRAIT_MAX_RATIO}:1 (wide)"
    if 2 * height > 5 * width:
        ratio = _beside(height / width, PORTRAIT_MAX_RATIO)
        problems.append(
            f"Portrait is {size}, 1:{ratio} (too tall): the shape must be between {limit}. "
            "Crop it closer to a square."
        )
    elif 2 * width > 5 * height:
        ratio = _beside(width / height, PORTRAIT_MAX_RATIO)
        problems.append(
            f"Portrait is {size}, {ratio}:1 (too wide): the shape must be between {limit}. "
            "Crop it closer to a square."
        )
    if problems:
        raise MediaError(*problems, code="bad_dimensions")


@cache
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _foreign_profile(image: Image.Image) -> ImageCms.ImageCmsProfile | None:
    """The colour profile to convert the pixels from; None if they are sRGB as they are.

    Untagged pixels count as sRGB, and so do pixels whose profile is too broken to read: there
    is nothing to convert from, so they are kept as they are.
    """
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK", "L"):
        return None
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in ImageCms.getProfileDescription(source).lower():
            return None
    except (ImageCms.PyCMSError, *_PIL_ERRORS, TypeError):
        return None  # a broken profile: keep the pixels as they are
    return source


def _to_srgb(image: Image.Image) -> Image.Image:
    """Convert pixels tagged with another colour profile to sRGB.

    The profile is metadata we strip; dropping it without converting would shift the colours of
    a wide-gamut (Display P3, Adobe RGB) or CMYK photo.
    """
    source = _foreign_profile(image)
    if source is None:
        return image
    try:
        mode = "RGBA" if image.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(image, source, _srgb(), outputMode=mode)
    except (ImageCms.PyCMSError, *_PIL_ERRORS, TypeError):
        return image  # a profile that cannot convert: keep the pixels as they are
    return converted if converted is not None else image


# JPEG markers (ITU T.81, table B.1) that _stripped_jpeg handles; any other one sends the file
# down the re-encoding path.
_EOI, _SOS, _APP0, _APP14, _COM = 0xD9, 0xDA, 0xE0, 0xEE, 0xFE
_FRAMES = {0xC0, 0xC2}  # baseline and progressive, Huffman-coded: what every decoder reads
_TABLES = {0xC4, 0xDB, 0xDD}  # DHT, DQT, DRI: kept as they are, the decoder needs them
_METADATA = {*range(0xE1, 0xEE), 0xEF, _COM}  # APP1-13, APP15 (EXIF, XMP, ICC...), comments
# In entropy-coded data 0xFF is always followed by 0x00 (a stuffed data byte) or starts a
# restart marker (0xD0-0xD7); anything else, fill bytes included, leads to the next marker.
_SCAN_BREAK = re.compile(rb"\xff[^\x00\xd0-\xd7]")


def _jpeg_as_is(image: JpegImageFile, data: bytes, orientation: int) -> bytes | None:
    """The JPEG's own compressed data without its metadata, if nothing else needs changing.

    That is when it is upright, colour (not greyscale or CMYK), sRGB or untagged, 8-bit baseline
    or progressive, and laid out as _stripped_jpeg expects; the stripped file must then decode
    to the end like any upload. Pixels are not kept, so the decoder scales them down 8 times as
    it goes (every bit of every scan is still read: truncated or garbled data fails the same).
    Otherwise None, and the caller decodes the upload and re-encodes it.
    """
    if orientation != 1 or image.mode != "RGB" or _foreign_profile(image) is not None:
        return None
    stripped = _stripped_jpeg(data)
    if stripped is None:
        return None
    try:
        with JpegImageFile(io.BytesIO(stripped)) as check:
            if check.size != image.size or check.mode != image.mode:
                return None
            check.draft(check.mode, (check.width // 8, check.height // 8))
            check.load()
    except _PIL_ERRORS:
        return None  # the caller's full decode of the upload says what is wrong with it
    return stripped


def _stripped_jpeg(data: bytes) -> bytes | None:
    """`data` without APP1-15 segments, comments or anything after the end of the image.

    Kept, in order: the start marker; quantisation, Huffman and restart-interval tables; the
    frame header; every scan with its entropy-coded data (restart markers included); the end
    marker. A JFIF (APP0) or Adobe (APP14) segment is kept without its optional extras (a
    thumbnail, say), because those two tell decoders whether the pixels are YCbCr or RGB.
    None when the file holds anything else, or is cut short: the caller re-encodes it then.
    """
    if data[:2] != b"\xff\xd8":
        return None
    view = memoryview(data)
    out: list[bytes | memoryview] = [b"\xff\xd8"]
    pos, end = 2, len(data)
    seen: set[int] = set()  # frame, JFIF and Adobe segments: one of each at most
    scans = 0
    while pos < end:
        if data[pos] != 0xFF:
            return None  # stray bytes between segments
        while pos < end and data[pos] == 0xFF:
            pos += 1  # fill bytes before a marker
        if pos == end:
            return None
        marker = data[pos]
        if marker == _EOI:
            if not scans:
                return None
            out.append(b"\xff\xd9")
            return b"".join(out)
        length = int.from_bytes(data[pos + 1 : pos + 3])
        if length < 2 or pos + 1 + length > end:
            return None
        body, pos = view[pos + 3 : pos + 1 + length], pos + 1 + length
        if marker in _FRAMES:
            if seen & _FRAMES or scans or length < 8 or body[0] != 8:  # one 8-bit frame
                return None
            seen.add(marker)
            out += (bytes((0xFF, marker)), view[pos - length : pos])
        elif marker in _TABLES:
            out += (bytes((0xFF, marker)), view[pos - length : pos])
        elif marker == _SOS:
            if not seen & _FRAMES:
                return None
            scan_end = _scan_end(data, pos)
            if scan_end is None:
                return None  # the data runs to the end of the file: it was cut short
            out += (b"\xff\xda", view[pos - length : scan_end])
            pos = scan_end
            scans += 1
        elif marker == _APP0:
            if body[:5] == b"JFIF\0" and len(body) >= 14:  # what libjpeg takes for JFIF
                if _APP0 in seen:
                    return None
                seen.add(_APP0)
                out += (b"\xff\xe0\x00\x10", body[:12], b"\0\0")  # no thumbnail
            # other APP0 segments (JFXX thumbnails) are dropped
        elif marker == _APP14:
            if body[:5] == b"Adobe" and len(body) >= 12:  # what libjpeg takes for Adobe
                if _APP14 in seen:
                    return None
                seen.add(_APP14)
                out += (b"\xff\xee\x00\x0e", body[:12])
        elif marker not in _METADATA:
            return None  # arithmetic coding, lossless, hierarchical, DNL, reserved...
    return None  # no end marker


def _scan_end(data: bytes, start: int) -> int | None:
    """Where the entropy-coded data that begins at `start` ends: at the next marker (or the
    fill bytes before it) that is not a restart marker. None if no marker follows."""
    pos = start
    while found := _SCAN_BREAK.search(data, pos):
        after = found.start() + 1
        while after < len(data) and data[after] == 0xFF:
            after += 1  # a run of 0xFF: fill bytes, and the marker comes after them
        if after == len(data):
            return None
        if data[after] != 0x00 and not 0xD0 <= data[after] <= 0xD7:
            return found.start()
        pos = after + 1  # fill bytes before a restart marker or a stuffed byte: still data
    return None


def _normalized(image: Image.Image, orientation: int) -> Image.Image:
    """Upright, sRGB, plain RGB or RGBA pixels with no metadata attached."""
    result = _to_srgb(image)
    if result.mode.startswith("I;16") or result.mode == "I":
        # Pillow clips 16-bit values to 255 when converting; scale them down instead.
        result = result.convert("I").point(lambda v: v * (1 / 256)).convert("L")
        result.info.pop("transparency", None)  # a 16-bit key colour means nothing in 8 bits
    if result.mode != "RGBA" and (
        result.has_transparency_data or result.mode in ("LA", "La", "PA", "RGBa")
    ):
        result = result.convert("RGBA")  # palette or key-colour transparency becomes alpha
    elif result.mode not in ("RGB", "RGBA"):
        result = result.convert("RGB")
    if method := _TRANSPOSE.get(orientation):
        result = result.transpose(method)
    result.info = {}  # EXIF, XMP, ICC, comments, text chunks: none of it is written out
    return result


def _encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _flattened(image: Image.Image) -> Image.Image:
    if image.mode != "RGBA":
        return image
    background = Image.new("RGB", image.size, "white")
    background.paste(image, mask=image.getchannel("A"))
    return background


def _encode_portrait(image: Image.Image, kind: str, *, max_bytes: int) -> tuple[bytes, str]:
    """Encode as `kind`, stepping down until it fits in `max_bytes`: Kling must accept it.

    PNG tries the default zlib level, then the slow optimizer, then gives way to JPEG (on white,
    if it had transparency); JPEG steps down through JPEG_QUALITIES.
    """
    if kind == "png":
        for options in ({"compress_level": 6}, {"optimize": True}):
            content = _encode(image, "PNG", **options)
            if len(content) <= max_bytes:
                return content, "png"
    rgb = _flattened(image)
    for quality in JPEG_QUALITIES:
        content = _encode(rgb, "JPEG", quality=quality)
        if len(content) <= max_bytes:
            return content, "jpeg"
    raise _TooDetailed


# ---------------------------------------------------------------------------- voice-overs

_FAMILY_LABELS = {"mp3": "an MP3", "wav": "a WAV", "m4a": "an M4A", "aac": "an AAC (ADTS)"}
_FAMILY_CONTAINERS = {"mp3": "mp3", "wav": "wav", "m4a": "mp4", "aac": "aac"}
_COVER_ART_CODECS = {"mjpeg", "png", "bmp", "gif", "webp"}  # "video" streams that are album art
_AUDIO_EXT_LIST = ".mp3, .wav, .m4a or .aac"


def validate_audio(
    upload: Upload, *, name: str | None = None, max_seconds: int | None = None
) -> ValidAudio:
    """Check a voice-over against Kling's rules; return its bytes as uploaded, with facts.

    `max_seconds` defaults to settings.KLING_MAX_AUDIO_SECONDS (deployments differ: 300 or 60).
    """
    if max_seconds is None:
        max_seconds = settings.KLING_MAX_AUDIO_SECONDS
    shown = display_name(name if name is not None else _upload_name(upload))
    ext = _extension(shown)
    if ext not in AUDIO_EXTENSIONS:
        raise _bad_audio_name(shown, ext)
    data = _read_upload(
        upload,
        max_bytes=AUDIO_MAX_BYTES,
        subject="Voice-over",
        how_to_shrink="Export it as MP3 at 128 kbps or less, or make it shorter.",
    )
    family = _audio_family(data)
    if family != AUDIO_EXTENSIONS[ext]:
        raise MediaError(
            f"This file is really {_FAMILY_LABELS[family]} but its name ends in .{ext}. "
            f"Rename it to .{family}, or export it as {AUDIO_EXTENSIONS[ext].upper()}.",
            code="wrong_extension",
        )
    with _local_path(upload, data, suffix=f".{family}") as path:
        duration = _check_audio_file(path, data, family, max_seconds)
    return ValidAudio(
        content=data,
        format=family,
        ext=family,
        duration=duration,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        name=shown,
    )


def _bad_audio_name(shown: str, ext: str) -> MediaError:
    if not ext:
        return MediaError(
            f"“{shown}” has no file extension. Upload the voice-over as an {_AUDIO_EXT_LIST} file.",
            code="bad_extension",
        )
    return MediaError(
        f"Voice-overs must be {_AUDIO_EXT_LIST} files, and “{shown}” is a .{ext} file. "
        "Export it as MP3 or WAV.",
        code="bad_extension",
    )


def _audio_family(data: bytes) -> str:
    kind = _sniff(data)
    if kind in _AUDIO_KINDS:
        return _AUDIO_KINDS[kind]
    if kind in _OTHER_AUDIO_KINDS:
        raise MediaError(
            f"This file is {_KINDS[kind]}, which Kling does not accept. "
            "Export the voice-over as MP3, WAV, M4A or AAC.",
            code="unsupported_audio",
        )
    raise MediaError(
        f"This file is not audio ({_what_it_is(kind)}). "
        f"Upload the voice-over as an {_AUDIO_EXT_LIST} file.",
        code="not_audio",
    )


@contextmanager
def _local_path(upload: Upload, data: bytes, *, suffix: str) -> Iterator[Path]:
    """A path ffmpeg can read: the upload's own file if it has one, else a temporary copy.

    The copy is deleted when the block ends, whatever happens inside it.
    """
    if isinstance(upload, Path):
        yield upload.resolve()
        return
    temporary_file_path = getattr(upload, "temporary_file_path", None)
    if callable(temporary_file_path):
        yield Path(temporary_file_path()).resolve()
        return
    with tempfile.NamedTemporaryFile(
        prefix="avatarsite-audio-", suffix=suffix, dir=settings.FILE_UPLOAD_TEMP_DIR
    ) as fh:
        fh.write(data)
        fh.flush()
        yield Path(fh.name)


def _damaged_audio(family: str) -> MediaError:
    return MediaError(
        f"Voice-over file is damaged: it starts like {_FAMILY_LABELS[family]} file but cannot "
        "be opened. Export it again.",
        code="damaged",
    )


def _check_audio_file(path: Path, data: bytes, family: str, max_seconds: int) -> float:
    """Probe, measure and judge the file at `path`; return its duration in seconds.

    The ffmpeg runs (probe, decode of the start, and the packet count unless an MP3's frames
    were counted here) are independent, so they run side by side; their results are judged in
    order, the probe's first.
    """
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="media-ffmpeg") as pool:
        probed = pool.submit(_probe, path)
        head = pool.submit(_decoded_head_seconds, path)
        packets: Future[float] = Future()
        counted = _mp3_frame_seconds(data) if family == "mp3" else None
        if counted is None:
            packets = pool.submit(_packet_seconds, path)
        else:
            packets.set_result(counted)
        info = probed.result()
        if info is None or _FAMILY_CONTAINERS[family] not in info.container.split(","):
            raise _damaged_audio(family)
        _check_streams(info, family)
        try:
            played = packets.result()
        except FFmpegError:
            raise _damaged_audio(family) from None
        try:
            decoded = head.result()
        except FFmpegError:  # ffmpeg gives up when most packets fail to decode
            decoded = 0.0
    if played <= 0:
        raise MediaError(
            "Voice-over contains no sound (0 seconds of audio). "
            "Export it again with the recording in it.",
            code="no_sound",
        )
    if decoded < min(played, DECODE_CHECK_SECONDS) - TRUNCATION_TOLERANCE:
        raise MediaError(
            "Voice-over file is damaged: its sound cannot be decoded. "
            "Export it again from your audio app.",
            code="undecodable",
        )
    promised = _promised_seconds(info, data, family)
    if promised is not None and promised - played > TRUNCATION_TOLERANCE:
        raise MediaError(
            f"Voice-over is cut off: the file says it lasts {promised:.1f} s but only "
            f"{played:.1f} s of sound is in it. Export or download it again.",
            code="truncated",
        )
    # Packets include the encoder's padding (MP3: a few ms); a header that counts samples does
    # not, so a file cut exactly at the limit is not refused for padding it cannot help.
    duration = min(played, promised) if promised is not None else played
    if duration < AUDIO_MIN_SECONDS:
        raise MediaError(
            f"Voice-over is {_beside(duration, AUDIO_MIN_SECONDS)} s long: it must last at "
            f"least {AUDIO_MIN_SECONDS} seconds.",
            code="too_short",
        )
    if duration > max_seconds:
        raise MediaError(
            f"Voice-over is {_beside(duration, max_seconds)} s long: the limit is "
            f"{max_seconds} seconds. Trim it to {max_seconds} seconds or less.",
            code="too_long",
        )
    return duration


def _check_streams(info: Probe, family: str) -> None:
    videos = [s for s in info.streams if s.kind == "video" and s.codec not in _COVER_ART_CODECS]
    if info.audio is None:
        what = " (it only contains video)" if videos else ""
        raise MediaError(
            f"This file has no sound track{what}. "
            f"Upload the voice-over as an {_AUDIO_EXT_LIST} file.",
            code="no_audio_stream",
        )
    if videos:
        raise MediaError(
            "This file contains video as well as sound. Upload only the voice-over: "
            "export the sound as .m4a or .mp3.",
            code="has_video",
        )
    codec = info.audio.codec
    allowed = {
        "mp3": codec == "mp3",
        "wav": codec.startswith("pcm_"),
        "m4a": codec in ("aac", "alac"),
        "aac": codec == "aac",
    }[family]
    if not allowed:
        fix = {
            "mp3": "Export it again as a real MP3 (MPEG layer III).",
            "wav": "Export it as a standard 16-bit PCM WAV, or as MP3.",
            "m4a": "Export it as AAC in an .m4a file, or as MP3.",
            "aac": "Export it as MP3 or WAV.",
        }[family]
        raise MediaError(
            f"This {family.upper()} file holds {codec} audio, which Kling may not play. {fix}",
            code="bad_codec",
        )


_OUT_TIME = re.compile(rb"^out_time=(\d+):(\d+):(\d+(?:\.\d+)?)\s*$", re.M)


def _packet_seconds(path: Path) -> float:
    """How long the audio plays, from the packets really present (fast: nothing is decoded).

    A truncated file has fewer packets whatever its header claims, so this catches cut-off
    uploads as well as decoding would, at a fraction of the cost (0.1 s vs 0.5 s for 5 min).
    Most MP3s are counted by _mp3_frame_seconds instead, faster still, to the same result.
    """
    report = run_ffmpeg(
        ["-v", "error", "-i", str(path), "-map", "0:a:0", "-c:a", "copy"]
        + ["-f", "null", "-progress", "pipe:1", "-nostats", "-"],
        timeout=FFMPEG_TIMEOUT,
    )
    times = _OUT_TIME.findall(report)
    if not times:
        return 0.0
    h, m, s = times[-1]
    return int(h) * 3600 + int(m) * 60 + float(s)


# MPEG audio layer III: kbit/s by bitrate index (0 is "free format", which is not counted
# here), for MPEG-1 and for MPEG-2/2.5; sampling rates by version bits and rate index.
_L3_KBITS = {
    True: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    False: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
_LAME_ENCODERS = (b"LAME", b"Lavf", b"Lavc")  # the tags whose encoder delay ffmpeg skips
_DECODER_DELAY = 528 + 1  # samples ffmpeg skips on top of the LAME tag's encoder delay


def _mp3_frame_seconds(data: bytes) -> float | None:
    """How long an MP3 plays, counted from its frames exactly as _packet_seconds counts them.

    Frame headers are walked from the first to the last (each says how long its frame is), so
    a truncated file is caught as surely as by ffmpeg's count, in a few milliseconds instead of
    a process that hands every packet between threads. Only a clean file is counted here: one
    unbroken run of layer III frames with one version and sampling rate, from just after the
    ID3v2 tag to the end of the file or its ID3v1 tag, behind at most a Xing/Info frame written
    by LAME or ffmpeg. For anything else (a cut-off last frame, junk, other tags, VBRI, free
    format) the answer is None and ffmpeg counts the packets.
    """
    start, end = _id3_end(data), len(data)
    if end - start > 128 and data[end - 128 : end - 125] == b"TAG":
        end -= 128  # ID3v1
    if end - start < 40 or data[start] != 0xFF:
        return None
    b1, b2, b3 = data[start + 1 : start + 4]
    version, layer, rate_index = b1 >> 3 & 3, b1 >> 1 & 3, b2 >> 2 & 3
    if b1 >> 5 != 7 or version == 1 or layer != 1 or rate_index == 3:
        return None
    mpeg1 = version == 3
    rate = _MPEG_RATES[version][rate_index]
    slots = 144 if mpeg1 else 72  # bytes per frame per (bit/s ÷ Hz)
    # Frame length for each possible 2nd+3rd header byte that keeps this version, layer and
    # rate; the CRC, padding and private bits may change from frame to frame.
    lengths = {
        ((b1 & 0xFE) | crc) << 8 | index << 4 | rate_index << 2 | low: (
            slots * _L3_KBITS[mpeg1][index] * 1000 // rate + (low >> 1)
        )
        for crc in (0, 1)
        for index in range(1, 15)
        for low in range(4)
    }
    first = lengths.get(b1 << 8 | b2)
    if first is None:
        return None
    if data[start + 36 : start + 40] == b"VBRI":
        return None
    skipped = 0  # samples ffmpeg leaves out at the start: the encoder's and decoder's delay
    mono = b3 >> 6 == 3
    xing = start + 4 + (17 if mono else 32) if mpeg1 else start + 4 + (9 if mono else 17)
    if data[xing : xing + 4] in (b"Xing", b"Info"):
        flags = int.from_bytes(data[xing + 4 : xing + 8])
        # frame count, byte count, table of contents, quality: each there if its flag is set
        lame = xing + 8 + 4 * (flags & 1) + 4 * (flags >> 1 & 1)
        lame += 100 * (flags >> 2 & 1) + 4 * (flags >> 3 & 1)
        if not flags & 3 or data[lame : lame + 4] not in _LAME_ENCODERS:
            return None
        skipped = (int.from_bytes(data[lame + 21 : lame + 24]) >> 12) + _DECODER_DELAY
        start += first  # the tag's frame holds no sound
    frames, pos, length_of = 0, start, lengths.get
    while pos + 4 <= end and data[pos] == 0xFF:
        length = length_of(data[pos + 1] << 8 | data[pos + 2])
        if length is None:
            return None
        pos += length
        frames += 1
    samples = (1152 if mpeg1 else 576) * frames - skipped
    return samples / rate if pos == end and samples > 0 else None


def _decoded_head_seconds(path: Path) -> float:
    """Decode the first DECODE_CHECK_SECONDS to prove the stream really is sound."""
    pcm = run_ffmpeg(
        ["-v", "error", "-t", str(DECODE_CHECK_SECONDS), "-i", str(path), "-map", "0:a:0"]
        + ["-vn", "-ac", "1", "-ar", str(DECODE_RATE)]
        + ["-flush_packets", "0", "-f", "s16le", "-"],  # 32 KB writes, not one per frame
        timeout=FFMPEG_TIMEOUT,
    )
    return len(pcm) / (2 * DECODE_RATE)


def _probe(path: Path) -> Probe | None:
    try:
        return probe(path, timeout=FFMPEG_TIMEOUT)
    except subprocess.TimeoutExpired:  # probe() lets its timeout escape, unlike run_ffmpeg()
        return None


def _promised_seconds(info: Probe, data: bytes, family: str) -> float | None:
    """How long the header says the audio lasts, when that figure is a count, not a guess.

    MP3 without a Xing/Info/VBRI frame and raw AAC only have a bitrate estimate; ffmpeg clamps
    a WAV's data size to the file it has, so WAV's promise is read from the RIFF header here.
    """
    if family == "wav":
        return _wav_promised_seconds(data)
    if family == "aac":
        return None
    if family == "mp3":
        start = _id3_end(data)
        if not any(tag in data[start : start + 200] for tag in (b"Xing", b"Info", b"VBRI")):
            return None
    return info.duration


def _wav_promised_seconds(data: bytes) -> float | None:
    """Seconds the RIFF header's data-chunk size stands for; None if it does not say."""
    if data[:4] != b"RIFF":  # RF64/BW64 keep the real size elsewhere; not worth the parsing
        return None
    byte_rate = None
    offset = 12
    while offset + 8 <= len(data):
        chunk_id, size = data[offset : offset + 4], struct.unpack_from("<I", data, offset + 4)[0]
        if chunk_id == b"fmt " and offset + 20 <= len(data):
            byte_rate = struct.unpack_from("<I", data, offset + 16)[0]
        elif chunk_id == b"data":
            # 0 and 0xFFFFFFFF mean "unknown" (written by recorders that stream the file).
            if not byte_rate or size in (0, 0xFFFFFFFF):
                return None
            return size / byte_rate
        offset += 8 + size + (size & 1)
    return None


# ------------------------------------------------------------------------------- prompts


def validate_prompt(text: str | None) -> str:
    """The prompt as Kling will get it: stripped, newlines as \\n, at most 2500 characters.

    Browsers send textarea line breaks as \\r\\n; counting those twice would refuse prompts the
    form said were short enough, so they are normalised before counting.
    """
    prompt = (text or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(prompt) > PROMPT_MAX_CHARS:
        extra = len(prompt) - PROMPT_MAX_CHARS
        raise MediaError(
            f"Prompt is {len(prompt):,} characters: the limit is {PROMPT_MAX_CHARS:,}. "
            f"Shorten it by {extra:,} character{'s' if extra != 1 else ''}.",
            code="prompt_too_long",
        )
    return prompt
