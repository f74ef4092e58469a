"""Voice-overs: the format from the bytes, the length from decoding, Kling's limits checked."""

from __future__ import annotations

import hashlib
import re
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from jobs.ffmpeg import DECODE_RATE, FFmpegError, Probe, probe, run_ffmpeg
from jobs.media.limits import (
    AUDIO_EXTENSIONS,
    AUDIO_MAX_BYTES,
    AUDIO_MIN_SECONDS,
    FFMPEG_TIMEOUT,
    MediaError,
    Upload,
    beside,
)
from jobs.media.names import display_name, extension
from jobs.media.sniffing import (
    _AUDIO_KINDS,
    _KINDS,
    _OTHER_AUDIO_KINDS,
    id3_end,
    sniff,
    what_it_is,
)
from jobs.media.uploads import read_upload, upload_name

TRUNCATION_TOLERANCE = 0.5  # seconds a file may play short of what its header promises
DECODE_CHECK_SECONDS = 10  # how much audio is fully decoded to prove the stream is sound


@dataclass(frozen=True)
class ValidAudio:
    content: bytes  # the bytes as uploaded
    format: str  # "mp3", "wav", "m4a" or "aac"
    ext: str
    duration: float  # seconds of audio actually in the file, not what the header claims
    sha256: str
    size: int
    name: str


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
    shown = display_name(name if name is not None else upload_name(upload))
    ext = extension(shown)
    if ext not in AUDIO_EXTENSIONS:
        raise _bad_audio_name(shown, ext)
    data = read_upload(
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
    kind = sniff(data)
    if kind in _AUDIO_KINDS:
        return _AUDIO_KINDS[kind]
    if kind in _OTHER_AUDIO_KINDS:
        raise MediaError(
            f"This file is {_KINDS[kind]}, which Kling does not accept. "
            "Export the voice-over as MP3, WAV, M4A or AAC.",
            code="unsupported_audio",
        )
    raise MediaError(
        f"This file is not audio ({what_it_is(kind)}). "
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
            f"Voice-over is {beside(duration, AUDIO_MIN_SECONDS)} s long: it must last at "
            f"least {AUDIO_MIN_SECONDS} seconds.",
            code="too_short",
        )
    if duration > max_seconds:
        raise MediaError(
            f"Voice-over is {beside(duration, max_seconds)} s long: the limit is "
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
    start, end = id3_end(data), len(data)
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
        start = id3_end(data)
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
