"""What a file is, read from its first bytes, whatever its name or content type says."""

from __future__ import annotations

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


def what_it_is(kind: str) -> str:
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


def id3_end(data: bytes) -> int:
    """Offset just after a leading ID3v2 tag (and any zero padding after it), else 0."""
    if data[:3] != b"ID3" or len(data) < 10:
        return 0
    size = (data[6] & 0x7F) << 21 | (data[7] & 0x7F) << 14 | (data[8] & 0x7F) << 7 | data[9] & 0x7F
    end = 10 + size + (10 if data[5] & 0x10 else 0)
    while end < len(data) and data[end] == 0:
        end += 1
    return end


def sniff(data: bytes) -> str:
    """Name a file's format from its bytes: a key of _KINDS, or "unknown"."""
    head = data[:64]
    return (
        _sniff_image(head)
        or _sniff_container(head)
        or _sniff_audio(data)
        or (_sniff_text(data[:4096]))
    )


def _sniff_image(head: bytes) -> str | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:2] == b"BM" and head[6:10] == b"\0\0\0\0":
        return "bmp"
    if head[:4] in (b"II*\0", b"MM\0*"):
        return "tiff"
    return None


_SIGNATURES = {
    b"OggS": "ogg",
    b"fLaC": "flac",
    b"\x1aE\xdf\xa3": "webm",
    b"#!AM": "amr",
    b"%PDF": "pdf",
    b"PK\x03\x04": "zip",
}
_RIFF = {b"WAVE": "wav", b"WEBP": "webp", b"AVI ": "avi"}


def _sniff_container(head: bytes) -> str | None:
    if head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] in _RIFF:
        return _RIFF[head[8:12]]
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            return "heic"
        return "avif" if brand in (b"avif", b"avis") else "mp4"
    if head[:4] in _SIGNATURES:
        return _SIGNATURES[head[:4]]
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:16] == _ASF_GUID:
        return "wma"
    return None


def _sniff_audio(data: bytes) -> str | None:
    head = data[:64]
    if head[:3] == b"ID3":
        # ID3 tags front MP3 files, and sometimes raw AAC.
        return "aac" if _is_adts(data[id3_end(data) :][:8]) else "mp3"
    if _is_adts(head):
        return "aac"
    if _is_mpeg_audio(head):
        return "mp3"
    return None


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
