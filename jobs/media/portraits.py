"""Portraits: checked against Kling's limits, stored upright, sRGB and stripped of metadata."""

from __future__ import annotations

import hashlib
import io
import re
import struct
from dataclasses import dataclass
from functools import cache
from typing import Any

from PIL import Image, ImageCms, ImageFile
from PIL.JpegImagePlugin import JpegImageFile
from PIL.PngImagePlugin import PngImageFile

from jobs.media.limits import (
    MB,
    PORTRAIT_EXTENSIONS,
    PORTRAIT_MAX_BYTES,
    PORTRAIT_MAX_PIXELS,
    PORTRAIT_MAX_RATIO,
    PORTRAIT_MIN_SIDE,
    MediaError,
    Upload,
    beside,
)
from jobs.media.names import display_name, extension
from jobs.media.sniffing import sniff, what_it_is
from jobs.media.uploads import read_upload, upload_name

JPEG_QUALITIES = (92, 85, 75, 65, 50)  # tried in turn until the portrait fits under the limit


# JPEG markers (ITU T.81, table B.1) that _stripped_jpeg handles; any other one sends the file
# down the re-encoding path.
_EOI, _SOS, _APP0, _APP14, _COM = 0xD9, 0xDA, 0xE0, 0xEE, 0xFE


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
    shown = display_name(name if name is not None else upload_name(upload))
    ext = extension(shown)
    if ext not in PORTRAIT_EXTENSIONS:
        raise _bad_portrait_name(shown, ext)
    data = read_upload(
        upload,
        max_bytes=PORTRAIT_MAX_BYTES,
        subject="Portrait",
        how_to_shrink="Export it smaller or as JPEG.",
    )
    kind = sniff(data)
    if kind not in ("jpeg", "png"):
        raise MediaError(
            f"This file is not a JPEG or PNG image ({what_it_is(kind)}). "
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
        kept = _jpeg_as_is(image, data, orientation) if isinstance(image, JpegImageFile) else None
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
            f"Portrait is {size} ({beside(pixels / 1e6, limit, decimals=0)} megapixels): "
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
    allowed = f"1:{PORTRAIT_MAX_RATIO} (tall) and {PORTRAIT_MAX_RATIO}:1 (wide)"
    if 2 * height > 5 * width:
        ratio = beside(height / width, PORTRAIT_MAX_RATIO)
        problems.append(
            f"Portrait is {size}, 1:{ratio} (too tall): the shape must be between {allowed}. "
            "Crop it closer to a square."
        )
    elif 2 * width > 5 * height:
        ratio = beside(width / height, PORTRAIT_MAX_RATIO)
        problems.append(
            f"Portrait is {size}, {ratio}:1 (too wide): the shape must be between {allowed}. "
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
    kept = _JpegSegments(data)
    pos, end = 2, len(data)
    while pos < end:
        at = _next_marker(data, pos)
        if at is None:
            return None
        marker = data[at]
        if marker == _EOI:
            return kept.finish()
        length = int.from_bytes(data[at + 1 : at + 3])
        if length < 2 or at + 1 + length > end:
            return None
        after = kept.add(marker, at + 1 + length, length)
        if after is None:
            return None
        pos = after
    return None  # no end marker


def _next_marker(data: bytes, pos: int) -> int | None:
    """Where the marker byte of the segment at `pos` is; None on stray bytes or a cut file."""
    if data[pos] != 0xFF:
        return None  # stray bytes between segments
    while pos < len(data) and data[pos] == 0xFF:
        pos += 1  # fill bytes before a marker
    return None if pos == len(data) else pos


class _JpegSegments:
    """The segments _stripped_jpeg keeps, added one by one; `add` returns None to give up."""

    def __init__(self, data: bytes) -> None:
        self.data, self.view = data, memoryview(data)
        self.out: list[bytes | memoryview] = [b"\xff\xd8"]
        self.seen: set[int] = set()  # frame, JFIF and Adobe segments: one of each at most
        self.scans = 0

    def finish(self) -> bytes | None:
        if not self.scans:
            return None
        return b"".join([*self.out, b"\xff\xd9"])

    def add(self, marker: int, pos: int, length: int) -> int | None:
        """Keep (or drop) the segment that ends at `pos`; the position after it, or None."""
        body = self.view[pos - length + 2 : pos]
        if marker in _FRAMES:
            if self.seen & _FRAMES or self.scans or length < 8 or body[0] != 8:  # one 8-bit frame
                return None
            self.seen.add(marker)
            self.out += (bytes((0xFF, marker)), self.view[pos - length : pos])
        elif marker in _TABLES:
            self.out += (bytes((0xFF, marker)), self.view[pos - length : pos])
        elif marker == _SOS:
            return self._scan(pos, length)
        elif marker == _APP0:
            if body[:5] == b"JFIF\0" and len(body) >= 14:  # what libjpeg takes for JFIF
                if not self._once(_APP0):
                    return None
                self.out += (b"\xff\xe0\x00\x10", body[:12], b"\0\0")  # no thumbnail
            # other APP0 segments (JFXX thumbnails) are dropped
        elif marker == _APP14:
            if body[:5] == b"Adobe" and len(body) >= 12:  # what libjpeg takes for Adobe
                if not self._once(_APP14):
                    return None
                self.out += (b"\xff\xee\x00\x0e", body[:12])
        elif marker not in _METADATA:
            return None  # arithmetic coding, lossless, hierarchical, DNL, reserved...
        return pos

    def _once(self, marker: int) -> bool:
        if marker in self.seen:
            return False
        self.seen.add(marker)
        return True

    def _scan(self, pos: int, length: int) -> int | None:
        if not self.seen & _FRAMES:
            return None
        scan_end = _scan_end(self.data, pos)
        if scan_end is None:
            return None  # the data runs to the end of the file: it was cut short
        self.out += (b"\xff\xda", self.view[pos - length : scan_end])
        self.scans += 1
        return scan_end


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
