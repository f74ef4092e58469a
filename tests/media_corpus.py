"""Generated media for tests: valid files in every accepted format, and a corpus of hostile or
broken ones, each paired with the words its refusal must contain.

Nothing is checked in: Pillow and the bundled ffmpeg make each file in well under a second,
so the corpus cannot rot and any test module can import the builders. Build files through a
`Corpus` (one per test session) so the audio that several cases share is encoded once.
"""

from __future__ import annotations

import io
import random
import struct
import wave
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from PIL import Image, ImageCms, ImageDraw
from PIL.PngImagePlugin import PngInfo

from jobs.ffmpeg import run_ffmpeg
from jobs.media.limits import AUDIO_MAX_BYTES, PORTRAIT_MAX_BYTES

# ------------------------------------------------------------------------------- images


def face(size: tuple[int, int] = (480, 600), mode: str = "RGB") -> Image.Image:
    """A simple face drawing: enough structure that JPEG has real work to do."""
    image = Image.new("RGB", size, (200, 170, 150))
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.ellipse((w * 0.25, h * 0.15, w * 0.75, h * 0.7), fill=(235, 200, 175))
    draw.ellipse((w * 0.38, h * 0.35, w * 0.45, h * 0.4), fill=(40, 40, 40))
    draw.ellipse((w * 0.55, h * 0.35, w * 0.62, h * 0.4), fill=(40, 40, 40))
    draw.arc((w * 0.4, h * 0.45, w * 0.6, h * 0.58), 20, 160, fill=(120, 40, 40), width=4)
    for y in range(0, h, 7):  # stripes, so a truncated file is missing real image data
        draw.line((0, y, w, y + 3), fill=(180 + y % 50, 150, 140), width=1)
    return image if mode == "RGB" else image.convert(mode)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def jpeg(size: tuple[int, int] = (480, 600), **options: object) -> bytes:
    return encode(face(size), "JPEG", quality=90, **options)


def png(size: tuple[int, int] = (480, 600), mode: str = "RGB", **options: object) -> bytes:
    return encode(face(size, mode), "PNG", **options)


def noisy_photo(size: tuple[int, int], *, sigma: float = 60) -> Image.Image:
    """Gradients plus sensor-like noise per channel: compresses about as badly as a real photo."""
    w, h = size
    across = Image.linear_gradient("L").resize((w, h))
    down = Image.linear_gradient("L").transpose(Image.Transpose.ROTATE_90).resize((w, h))
    base = Image.merge("RGB", (across, down, Image.radial_gradient("L").resize((w, h))))
    noise = Image.merge("RGB", [Image.effect_noise((w, h), sigma) for _ in range(3)])
    return Image.blend(base, noise, 0.5)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A real, valid 1-bit PNG of `width`×`height` black pixels: ~100 KB that decode to GBs."""
    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(1)
    block = row * 256
    parts = [packer.compress(block) for _ in range(height // 256)]
    parts += [packer.compress(row * (height % 256)), packer.flush()]
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header claims another size (a cheap bomb)."""
    data = bytearray(jpeg((320, 320)))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def exif_rotated(fmt: str = "JPEG") -> bytes:
    """Stored 400×300 with EXIF orientation 6: upright it is 300×400 with red at top left."""
    upright = Image.new("RGB", (300, 400), (30, 60, 200))
    ImageDraw.Draw(upright).rectangle((0, 0, 80, 80), fill=(230, 20, 20))
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    exif[0x010F] = "SecretCameraMaker"
    exif[0x013B] = "Artist Name In Exif"
    return encode(stored, fmt, exif=exif.tobytes())


def jpeg_with_metadata() -> bytes:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "SecretCameraMaker"
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF>SecretXmpNote</rdf:RDF></x:xmpmeta>'
    return encode(
        face(),
        "JPEG",
        quality=90,
        exif=exif.tobytes(),
        icc_profile=srgb,
        xmp=xmp,
        comment=b"SecretComment",
    )


def srgb_profile(description: str = "sRGB") -> bytes:
    """LittleCMS's sRGB profile; under another description it counts as a foreign profile."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert len(description) == 4
    return profile.replace("sRGB".encode("utf-16-be"), description.encode("utf-16-be"))


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def jpeg_with_extras(*, progressive: bool = False) -> bytes:
    """An upright sRGB JPEG (restart markers in its scans) with everything that is not image
    data wherever it may legally be: a JFIF thumbnail, JFXX, EXIF, an sRGB profile, Photoshop
    and APP15 segments, comments before and after the frame and between scans, fill bytes
    before markers (a restart marker inside a scan too), and HTML after the end. Every extra
    says "Secret"; none of it changes a pixel."""
    data = jpeg(progressive=progressive, restart_marker_rows=2)
    jfif = data.index(b"\xff\xe0")
    assert data[jfif + 4 : jfif + 9] == b"JFIF\0"
    exif = Image.Exif()
    exif[0x010F] = "SecretCameraMaker"
    head = b"".join(
        [
            _segment(0xE0, b"JFIF\0\x01\x02\x00\x00\x01\x00\x01\x02\x02" + b"SecretThumb!"),
            _segment(0xE0, b"JFXX\0\x13" + b"SecretJfxx"),
            _segment(0xE1, b"Exif\0\0" + exif.tobytes()),
            _segment(0xE2, b"ICC_PROFILE\0\x01\x01" + srgb_profile()),
            _segment(0xED, b"Photoshop 3.0\0SecretIptc"),
            _segment(0xFE, b"SecretComment"),
        ]
    )
    data = data[:jfif] + head + data[jfif + 18 :]
    sof = data.index(b"\xff\xc2" if progressive else b"\xff\xc0")
    sof_end = sof + 2 + int.from_bytes(data[sof + 2 : sof + 4])
    after_frame = _segment(0xEF, b"SecretApp15") + b"\xff\xff" + _segment(0xFE, b"SecretAfter")
    data = data[:sof_end] + after_frame + data[sof_end:]
    last_scan = data.rindex(b"\xff\xda")
    data = data[:last_scan] + _segment(0xFE, b"SecretBetweenScans") + b"\xff" + data[last_scan:]
    restart = data.index(b"\xff\xd0", data.index(b"\xff\xda"))
    data = data[:restart] + b"\xff" + data[restart:]  # a fill byte inside the scan
    assert data.endswith(b"\xff\xd9")
    return data[:-2] + b"\xff\xff\xff\xd9" + HTML + b"SecretTail"


def png_with_metadata() -> bytes:
    info = PngInfo()
    info.add_text("Comment", "SecretPngText")
    info.add_itxt("Description", "SecretPngItxt", zip=True)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return encode(face(), "PNG", pnginfo=info, icc_profile=srgb)


def png_16bit_gray() -> bytes:
    """A left-to-right 16-bit ramp (0..65535): scaled properly it averages mid-grey."""
    ramp = Image.linear_gradient("L").rotate(90).resize((400, 400)).convert("I")
    return encode(ramp.point(lambda v: v * 257).convert("I;16"), "PNG")


def png_palette_transparent() -> bytes:
    image = face((400, 400)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return encode(image, "PNG", transparency=0)


def png_la() -> bytes:
    grey = face((400, 400), "L")
    return encode(Image.merge("LA", (grey, Image.linear_gradient("L").resize((400, 400)))), "PNG")


def truncated(data: bytes, fraction: float = 0.5) -> bytes:
    return data[: int(len(data) * fraction)]


def corrupt_png() -> bytes:
    data = bytearray(png())
    start = data.index(b"IDAT") + 10
    data[start : start + 64] = random.Random(5).randbytes(64)  # garbage inside the zlib stream
    return bytes(data)


def padded(data: bytes, total: int) -> bytes:
    """`data` followed by zeros up to `total` bytes: the size is all that matters."""
    return data + b"\0" * (total - len(data))


HTML = b"<!DOCTYPE html><html><head><title>x</title></head><body><script>alert(1)</script>"
SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400">'
    b"<script>alert(1)</script><rect width='400' height='400'/></svg>"
)
TEXT = b"Hello, this is the script for the voice-over.\nIt is text, not sound.\n"


def random_bytes(size: int = 64_000, seed: int = 3) -> bytes:
    data = random.Random(seed).randbytes(size)
    return b"\x00" + data[1:]  # never an accidental JPEG/MP3 sync byte at the start


# -------------------------------------------------------------------------------- audio

# codec name -> ffmpeg output options (and the suffix to write it under, if not .<name>)
AUDIO_CODECS: dict[str, tuple[str, str]] = {
    "mp3": ("-c:a libmp3lame -b:a 64k", ".mp3"),
    "wav": ("-c:a pcm_s16le", ".wav"),
    "m4a": ("-c:a aac -b:a 64k", ".m4a"),  # index (moov) at the end, as ffmpeg writes it
    "m4a-faststart": ("-c:a aac -b:a 64k -movflags +faststart", ".m4a"),
    "aac": ("-c:a aac -b:a 64k -f adts", ".aac"),
    "ogg": ("-c:a libvorbis", ".ogg"),
    "flac": ("-c:a flac", ".flac"),
    "adpcm-wav": ("-c:a adpcm_ms", ".wav"),
    "mp3-in-wav": ("-c:a libmp3lame", ".wav"),
    "mp2": ("-c:a mp2 -f mp2", ".mp3"),
    "alac-m4a": ("-c:a alac", ".m4a"),
    "low-mp3": ("-ac 1 -ar 8000 -c:a libmp3lame -b:a 8k", ".mp3"),  # 5 minutes in 300 KB
}


def _ffmpeg(*parts: str | Path) -> None:
    """Run ffmpeg; str parts are split on spaces, Path parts are passed whole."""
    args = [a for part in parts for a in (part.split() if isinstance(part, str) else [str(part)])]
    run_ffmpeg(["-v", "error", "-y", *args], timeout=60)


def make_audio(path: Path, *, seconds: float = 3.0, codec: str = "mp3", freq: int = 440) -> Path:
    """Write `seconds` of a sine tone encoded as `codec` (a key of AUDIO_CODECS) to `path`."""
    tone = f"sine=frequency={freq}:duration={seconds}:sample_rate=44100"
    _ffmpeg(f"-f lavfi -i {tone}", AUDIO_CODECS[codec][0], path)
    return path


# MP3s as encoders write them, for checking that counting frames agrees with ffmpeg: MPEG-1,
# MPEG-2 and MPEG-2.5 rates, mono and stereo, CBR/VBR/ABR, with and without the Xing/Info
# frame, ID3v2 and ID3v1 tags.
MP3_VARIANTS: dict[str, str] = {
    "cbr-128k": "-c:a libmp3lame -b:a 128k",
    "cbr-no-info-frame": "-c:a libmp3lame -b:a 128k -write_xing 0",
    "no-tags-at-all": "-c:a libmp3lame -b:a 96k -write_xing 0 -id3v2_version 0",
    "vbr": "-c:a libmp3lame -q:a 4",
    "abr": "-c:a libmp3lame -abr 1 -b:a 96k",
    "mono-vbr": "-ac 1 -c:a libmp3lame -q:a 6",
    "48khz-320k": "-ar 48000 -c:a libmp3lame -b:a 320k",
    "32khz": "-ar 32000 -c:a libmp3lame -b:a 64k",
    "mpeg2-22khz-mono": "-ac 1 -ar 22050 -c:a libmp3lame -b:a 32k",
    "mpeg2-16khz-no-info-frame": "-ac 1 -ar 16000 -c:a libmp3lame -b:a 24k -write_xing 0",
    "mpeg2.5-8khz": "-ac 1 -ar 8000 -c:a libmp3lame -b:a 8k",
    "mpeg2.5-11khz": "-ac 1 -ar 11025 -c:a libmp3lame -b:a 16k",
    "id3v1-tag": "-c:a libmp3lame -b:a 64k -write_id3v1 1 -metadata title=Hello",
    "bitexact": "-c:a libmp3lame -b:a 64k -fflags +bitexact -flags:a +bitexact",
}


def make_mp3(path: Path, options: str, *, seconds: float = 3.3) -> Path:
    """Encode `seconds` of a tone to MP3 at `path` with ffmpeg output `options`."""
    tone = f"sine=frequency=330:duration={seconds}:sample_rate=44100"
    _ffmpeg(f"-f lavfi -i {tone}", options, "-f mp3", path)
    return path


def cut_mp3_between_frames(data: bytes, fraction: float = 0.5) -> bytes:
    """A 64 kbit/s 44.1 kHz MP3 cut off at the first frame header past `fraction` of its bytes:
    every frame left is whole, so only the count of them shows the sound is missing."""
    cut = int(len(data) * fraction)
    while data[cut : cut + 3] not in (b"\xff\xfb\x50", b"\xff\xfb\x52"):
        cut += 1
    return data[:cut]


def make_video(path: Path, *, with_audio: bool, seconds: float = 2.0) -> Path:
    """A tiny H.264 MP4 (optionally with an AAC track): a video where a voice-over belongs."""
    video = f"-f lavfi -i color=c=red:s=64x64:d={seconds}"
    audio = f"-f lavfi -i sine=duration={seconds} -c:a aac" if with_audio else ""
    _ffmpeg(video, audio, "-c:v libx264 -preset ultrafast -f mp4", path)
    return path


def make_mp3_with_cover(path: Path, *, seconds: float = 3.0) -> Path:
    """An MP3 with an ID3v2 tag holding a title and album art (a 'video' stream to ffmpeg)."""
    cover = path.with_suffix(".cover.png")
    cover.write_bytes(png((64, 64)))
    _ffmpeg(
        f"-f lavfi -i sine=duration={seconds} -i", cover,
        "-map 0:a -map 1:v -c:a libmp3lame -c:v png -disposition:v attached_pic",
        "-id3v2_version 3 -metadata title=Voice -f mp3", path,
    )  # fmt: skip
    cover.unlink()
    return path


def empty_wav() -> bytes:
    """A well-formed 16-bit mono WAV header with no samples after it."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(44100)
    return buffer.getvalue()


def garble_m4a(data: bytes) -> bytes:
    """Keep an M4A's boxes and sample tables, replace the AAC payload with noise."""
    out = bytearray(data)
    start, end = out.index(b"mdat") + 4 + 64, out.index(b"moov") - 8
    out[start:end] = random.Random(1).randbytes(end - start)
    return bytes(out)


class Corpus:
    """Builds corpus files into `workdir`, encoding each distinct piece of audio only once."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self._audio: dict[tuple[str, float], bytes] = {}
        self._files: dict[str, bytes] = {}

    def audio(self, codec: str = "mp3", seconds: float = 3.0) -> bytes:
        key = (codec, seconds)
        if key not in self._audio:
            path = self.workdir / f"tone-{codec}-{seconds}{AUDIO_CODECS[codec][1]}"
            self._audio[key] = make_audio(path, seconds=seconds, codec=codec).read_bytes()
        return self._audio[key]

    def made(self, name: str, build: Callable[[Path], Path]) -> bytes:
        """Bytes of a file `build` writes at workdir/name (built once)."""
        if name not in self._files:
            self._files[name] = build(self.workdir / name).read_bytes()
        return self._files[name]

    def bytes_of(self, case: Case) -> bytes:
        return case.build(self)


# ------------------------------------------------------------------------- the corpus


@dataclass(frozen=True)
class Case:
    """One file to validate: an upload `name`, how to build its bytes, what must happen."""

    id: str
    kind: Literal["portrait", "audio"]
    name: str
    build: Callable[[Corpus], bytes]
    message: str = ""  # hostile cases: a fragment of the single message they are refused with
    max_seconds: int | None = None
    expect: dict[str, object] = field(default_factory=dict)  # valid cases: attributes to check


def _portrait(id: str, name: str, build: Callable[[Corpus], bytes], message: str) -> Case:
    return Case(id, "portrait", name, build, message)


def _audio(
    id: str,
    name: str,
    build: Callable[[Corpus], bytes],
    message: str,
    max_seconds: int | None = None,
) -> Case:
    return Case(id, "audio", name, build, message, max_seconds=max_seconds)


_OVER_PORTRAIT = PORTRAIT_MAX_BYTES + 1
_OVER_AUDIO = AUDIO_MAX_BYTES + 1
_NOT_IMAGE = "This file is not a JPEG or PNG image"
_NOT_AUDIO = "This file is not audio"

# One row per case: id, upload name, how to build the bytes, the words the refusal must hold.
# fmt: off
HOSTILE: list[Case] = [
    # --- portraits: not an image at all
    _portrait("html-as-jpg", "face.jpg", lambda c: HTML,
              f"{_NOT_IMAGE} (it looks like HTML). Upload a .jpg or .png photo."),
    _portrait("svg-as-png", "face.png", lambda c: SVG, f"{_NOT_IMAGE} (it looks like an SVG"),
    _portrait("text-as-png", "notes.png", lambda c: TEXT, f"{_NOT_IMAGE} (it looks like plain"),
    _portrait("random-as-jpg", "noise.jpg", lambda c: random_bytes(),
              f"{_NOT_IMAGE} (its contents match no known format)"),
    _portrait("mp3-as-jpg", "song.jpg", lambda c: c.audio("mp3"), f"{_NOT_IMAGE} (it is MP3"),
    # --- portraits: other image formats under a JPEG/PNG name
    _portrait("gif-as-jpg", "face.jpg", lambda c: encode(face(), "GIF"),
              f"{_NOT_IMAGE} (it is a GIF image)"),
    _portrait("webp-as-jpg", "face.jpg", lambda c: encode(face(), "WEBP"),
              f"{_NOT_IMAGE} (it is a WebP image)"),
    _portrait("bmp-as-jpg", "face.jpg", lambda c: encode(face(), "BMP"),
              f"{_NOT_IMAGE} (it is a BMP image)"),
    _portrait("tiff-as-png", "face.png", lambda c: encode(face(), "TIFF"),
              f"{_NOT_IMAGE} (it is a TIFF image)"),
    # --- portraits: names
    _portrait("gif-extension", "face.gif", lambda c: encode(face(), "GIF"),
              "Portraits must be .jpg or .png files, and “face.gif” is a .gif file."),
    _portrait("traversal-no-extension", "../../../etc/passwd", lambda c: jpeg(),
              "“passwd” has no file extension. Upload the portrait as a .jpg or .png photo."),
    # --- portraits: size in bytes
    _portrait("empty-jpg", "face.jpg", lambda c: b"",
              "Portrait file is empty (0 bytes). Upload it again."),
    _portrait("10mb-plus-1-byte", "face.jpg", lambda c: padded(jpeg(), _OVER_PORTRAIT),
              f"Portrait is {_OVER_PORTRAIT:,} bytes: the limit is 10 MB. "
              "Export it smaller or as JPEG."),
    _portrait("12mb", "face.png", lambda c: padded(png(), 12 * 1024 * 1024),
              "Portrait is 12.0 MB: the limit is 10 MB."),
    # --- portraits: pixels (bombs are refused from the header)
    _portrait("bomb-png-30000x30000", "bomb.png", lambda c: png_bomb(),
              "Portrait is 30000×30000 px (900 megapixels): the limit is 40 megapixels."),
    _portrait("bomb-jpeg-header-60000x60000", "bomb.jpg", lambda c: jpeg_claiming(60000, 60000),
              "Portrait is 60000×60000 px (3,600 megapixels)"),
    _portrait("just-over-40-megapixels", "big.jpg", lambda c: jpeg_claiming(6400, 6400),
              "Portrait is 6400×6400 px (41 megapixels)"),
    _portrait("299px", "small.jpg", lambda c: jpeg((299, 299)),
              "Portrait is 299×299 px: both sides must be at least 300 px."),
    _portrait("1-to-3-tall", "tall.jpg", lambda c: jpeg((300, 900)),
              "Portrait is 300×900 px, 1:3.0 (too tall)"),
    _portrait("3-to-1-wide", "wide.png", lambda c: png((900, 300)),
              "Portrait is 900×300 px, 3.0:1 (too wide)"),
    _portrait("just-over-1-to-2.5", "tall.png", lambda c: png((300, 751)),
              "Portrait is 300×751 px, 1:2.503 (too tall)"),
    # --- portraits: broken data
    _portrait("truncated-jpeg", "face.jpg", lambda c: truncated(jpeg()),
              "Portrait file is incomplete: the JPEG data stops early"),
    _portrait("truncated-png", "face.png", lambda c: truncated(png()),
              "Portrait file is incomplete: the PNG data stops early"),
    _portrait("corrupt-png", "face.png", lambda c: corrupt_png(),
              "Portrait file is damaged: its PNG data cannot be decoded."),
    # --- voice-overs: not audio
    _audio("random-as-mp3", "voice.mp3", lambda c: random_bytes(),
           f"{_NOT_AUDIO} (its contents match no known format). Upload the voice-over"),
    _audio("text-as-wav", "voice.wav", lambda c: TEXT, f"{_NOT_AUDIO} (it looks like plain"),
    _audio("html-as-mp3", "voice.mp3", lambda c: HTML, f"{_NOT_AUDIO} (it looks like HTML)"),
    _audio("jpeg-as-mp3", "voice.mp3", lambda c: jpeg(), f"{_NOT_AUDIO} (it is a JPEG image)"),
    _audio("mp3-sync-then-garbage", "voice.mp3",
           lambda c: b"\xff\xfb\x90\x64" + random_bytes(50_000),
           "Voice-over file is damaged: it starts like an MP3 file but cannot be opened."),
    # --- voice-overs: formats Kling does not take
    _audio("ogg-extension", "voice.ogg", lambda c: c.audio("ogg"),
           "Voice-overs must be .mp3, .wav, .m4a or .aac files, and “voice.ogg” is a .ogg"),
    _audio("flac-extension", "voice.flac", lambda c: c.audio("flac"),
           "and “voice.flac” is a .flac file."),
    _audio("ogg-as-mp3", "voice.mp3", lambda c: c.audio("ogg"),
           "This file is Ogg audio, which Kling does not accept."),
    _audio("flac-as-wav", "voice.wav", lambda c: c.audio("flac"),
           "This file is FLAC audio, which Kling does not accept."),
    _audio("adpcm-wav", "voice.wav", lambda c: c.audio("adpcm-wav"),
           "This WAV file holds adpcm_ms audio, which Kling may not play."),
    _audio("mp3-inside-wav", "voice.wav", lambda c: c.audio("mp3-in-wav"),
           "This WAV file holds mp3 audio"),
    _audio("mp2-as-mp3", "voice.mp3", lambda c: c.audio("mp2"), "This MP3 file holds mp2 audio"),
    # --- voice-overs: the name disagrees with the contents
    _audio("mp3-named-wav", "voice.wav", lambda c: c.audio("mp3"),
           "This file is really an MP3 but its name ends in .wav. "
           "Rename it to .mp3, or export it as WAV."),
    _audio("wav-named-mp3", "voice.mp3", lambda c: c.audio("wav"),
           "This file is really a WAV but its name ends in .mp3."),
    _audio("m4a-named-aac", "voice.aac", lambda c: c.audio("m4a"),
           "This file is really an M4A but its name ends in .aac."),
    _audio("aac-named-m4a", "voice.m4a", lambda c: c.audio("aac"),
           "This file is really an AAC (ADTS) but its name ends in .m4a."),
    _audio("traversal-ini", "..\\..\\windows\\win.ini", lambda c: c.audio("mp3"),
           "“win.ini” is a .ini file"),
    _audio("no-extension", "voice", lambda c: c.audio("mp3"),
           "“voice” has no file extension. Upload the voice-over as an .mp3, .wav, .m4a or .aac"),
    # --- voice-overs: size
    _audio("empty-mp3", "voice.mp3", lambda c: b"", "Voice-over file is empty (0 bytes)."),
    _audio("5mb-plus-1-byte", "voice.mp3", lambda c: padded(c.audio("mp3"), _OVER_AUDIO),
           f"Voice-over is {_OVER_AUDIO:,} bytes: the limit is 5 MB."),
    # --- voice-overs: no sound, broken, cut off
    _audio("m4a-video-only", "voice.m4a",
           lambda c: c.made("video-only.mp4", lambda p: make_video(p, with_audio=False)),
           "This file has no sound track (it only contains video)."),
    _audio("mp4-with-video", "voice.mp4",
           lambda c: c.made("video-audio.mp4", lambda p: make_video(p, with_audio=True)),
           "This file contains video as well as sound."),
    _audio("empty-wav", "voice.wav", lambda c: empty_wav(),
           "Voice-over contains no sound (0 seconds of audio)."),
    _audio("garbled-aac-payload", "voice.m4a", lambda c: garble_m4a(c.audio("m4a")),
           "Voice-over file is damaged: its sound cannot be decoded."),
    _audio("truncated-mp3", "voice.mp3", lambda c: truncated(c.audio("mp3", 3)),
           "Voice-over is cut off: the file says it lasts 3.0 s but only 1.5 s"),
    _audio("truncated-wav", "voice.wav", lambda c: truncated(c.audio("wav", 4)),
           "Voice-over is cut off: the file says it lasts 4.0 s but only 2.0 s"),
    _audio("truncated-m4a-faststart", "voice.m4a",
           lambda c: truncated(c.audio("m4a-faststart", 5)),
           "Voice-over is cut off: the file says it lasts 5.0 s"),
    _audio("truncated-m4a-index-at-end", "voice.m4a", lambda c: truncated(c.audio("m4a")),
           "Voice-over file is damaged: it starts like an M4A file but cannot be opened."),
    # --- voice-overs: duration
    _audio("1.9-seconds", "voice.mp3", lambda c: c.audio("mp3", 1.9),
           "Voice-over is 1.9 s long: it must last at least 2 seconds."),
    _audio("6-seconds-limit-5", "voice.wav", lambda c: c.audio("wav", 6),
           "Voice-over is 6.0 s long: the limit is 5 seconds.", max_seconds=5),
    _audio("301-seconds-limit-300", "voice.mp3", lambda c: c.audio("low-mp3", 301),
           "Voice-over is 301.0 s long: the limit is 300 seconds.", max_seconds=300),
]
# fmt: on


def _valid_portrait(id: str, name: str, build: Callable[[Corpus], bytes], **expect: object) -> Case:
    return Case(id, "portrait", name, build, expect=expect)


def _valid_audio(
    id: str,
    name: str,
    build: Callable[[Corpus], bytes],
    max_seconds: int | None = None,
    **expect: object,
) -> Case:
    return Case(id, "audio", name, build, max_seconds=max_seconds, expect=expect)


# Valid files and what the validated result must say about them (format defaults to jpeg).
# fmt: off
VALID: list[Case] = [
    _valid_portrait("jpeg", "face.jpg", lambda c: jpeg(), width=480, height=600),
    _valid_portrait("jpeg-uppercase-extension", "FACE.JPEG", lambda c: jpeg()),
    _valid_portrait("png", "face.png", lambda c: png(), format="png"),
    _valid_portrait("png-rgba-keeps-alpha", "face.png", lambda c: png(mode="RGBA"),
                    format="png", mode="RGBA"),
    _valid_portrait("png-named-jpg", "face.jpg", lambda c: png(), format="png", ext="png"),
    _valid_portrait("jpeg-named-png", "face.png", lambda c: jpeg(), ext="jpg"),
    _valid_portrait("exactly-300x300", "sq.jpg", lambda c: jpeg((300, 300)),
                    width=300, height=300),
    _valid_portrait("exactly-1-to-2.5", "tall.jpg", lambda c: jpeg((300, 750)),
                    width=300, height=750),
    _valid_portrait("exactly-2.5-to-1", "wide.png", lambda c: png((750, 300)),
                    format="png", width=750, height=300),
    _valid_portrait("cmyk-jpeg", "print.jpg", lambda c: encode(face(mode="CMYK"), "JPEG")),
    _valid_portrait("greyscale-jpeg", "bw.jpg", lambda c: encode(face(mode="L"), "JPEG")),
    _valid_portrait("png-16-bit-grey", "deep.png", lambda c: png_16bit_gray(), format="png"),
    _valid_portrait("png-palette-transparent", "pal.png", lambda c: png_palette_transparent(),
                    format="png", mode="RGBA"),
    _valid_portrait("png-grey-alpha", "la.png", lambda c: png_la(), format="png", mode="RGBA"),
    _valid_portrait("png-1-bit", "line.png", lambda c: png(mode="1"), format="png"),
    _valid_portrait("jpeg-with-metadata", "meta.jpg", lambda c: jpeg_with_metadata()),
    _valid_portrait("png-with-metadata", "meta.png", lambda c: png_with_metadata(),
                    format="png"),
    _valid_portrait("jpeg-with-broken-colour-profile", "icc.jpg",
                    lambda c: jpeg(icc_profile=b"not a colour profile at all")),
    _valid_audio("mp3", "voice.mp3", lambda c: c.audio("mp3"), format="mp3", duration=3.0),
    _valid_audio("wav", "voice.wav", lambda c: c.audio("wav"), format="wav", duration=3.0),
    _valid_audio("m4a", "voice.m4a", lambda c: c.audio("m4a"), format="m4a", duration=3.0),
    _valid_audio("m4a-faststart", "voice.m4a", lambda c: c.audio("m4a-faststart"),
                 format="m4a", duration=3.0),
    _valid_audio("aac-adts", "voice.aac", lambda c: c.audio("aac"), format="aac", duration=3.0),
    _valid_audio("mp4-audio-only", "voice.mp4", lambda c: c.audio("m4a"), format="m4a",
                 duration=3.0),
    _valid_audio("alac-m4a", "voice.m4a", lambda c: c.audio("alac-m4a"), format="m4a",
                 duration=3.0),
    _valid_audio("mp3-with-id3-cover-art", "voice.MP3",
                 lambda c: c.made("cover.mp3", make_mp3_with_cover), format="mp3", duration=3.0),
    _valid_audio("exactly-2-seconds", "short.mp3", lambda c: c.audio("mp3", 2), duration=2.0),
    _valid_audio("wav-exactly-at-limit", "five.wav", lambda c: c.audio("wav", 5),
                 max_seconds=5, duration=5.0),
    _valid_audio("mp3-exactly-at-limit", "five.mp3", lambda c: c.audio("mp3", 5),
                 max_seconds=5, duration=5.0),
    _valid_audio("traversal-name", "../../etc/passwd.mp3", lambda c: c.audio("mp3"),
                 shown="passwd.mp3"),
]
# fmt: on
