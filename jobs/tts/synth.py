"""Synthesis: a checked script made into one validated MP3, by Kling's voices or eSpeak NG.

Each part (see jobs/tts/script.py) is synthesized and downloaded at once (Kling deletes its
audio after 30 days, and its URLs may expire sooner), then the parts are joined with ffmpeg
into one MP3 that is validated like any upload, so the avatar limits (2-300 s, 5 MB) hold for
it too. Kling's `audio_id` is kept only for a one-part script: a joined file has no single id.
Without a Kling key (and for drafts) eSpeak NG reads the script (jobs/tts/espeak.py).
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from jobs import kling
from jobs.ffmpeg import FFmpegError, decoded_audio_seconds, run_ffmpeg
from jobs.kling.client import ErrorKind, KlingAudio, KlingClient, KlingError
from jobs.media.audio import ValidAudio, validate_audio
from jobs.media.limits import AUDIO_MAX_BYTES, AUDIO_MIN_SECONDS, MediaError
from jobs.tts.espeak import EspeakUnavailable, espeak_wav
from jobs.tts.script import check_script, normalize_script, split_script
from jobs.voices import Voice, get_voice

log = logging.getLogger(__name__)
ENGINE_KLING, ENGINE_ESPEAK = "kling", "espeak"

PART_MAX_BYTES = 50 * 1024 * 1024  # one downloaded part: a WAV of 1000 characters is ~6 MB
DOWNLOAD_TIMEOUT = 60  # seconds per part
FFMPEG_TIMEOUT = 120
# The joined file: 44.1 kHz mono MP3 (MPEG-1, which every decoder plays), at the highest of
# these bitrates that fits the 5 MB limit. 96 kbps fits 300 s with room to spare.
MP3_RATE = 44100
MP3_KBPS = (96, 64, 48, 32)
SIZE_MARGIN = 0.95  # of AUDIO_MAX_BYTES: an estimate from the bitrate, before encoding

SAMPLE_DIR = "voice-samples"
SAMPLE_TEXT = {"en": "Hello, this is {name}.", "zh": "你好，我是{name}。"}


@dataclass(frozen=True)
class Synthesized:
    """A voice-over made from a script, validated and ready for asset_store()."""

    valid: ValidAudio
    kling_audio_id: str  # "" when the script took several parts, or offline
    made_at: datetime | None  # when Kling made kling_audio_id; None without an id
    engine: str  # ENGINE_KLING or ENGINE_ESPEAK
    part_seconds: tuple[float, ...] = ()  # decoded length of each synthesized part


def synthesize(
    text: str, *, voice_id: str, speed: float = 1.0, offline: bool | None = None
) -> Synthesized:
    """Make a validated MP3 voice-over from a script.

    offline=None uses Kling when it is configured and eSpeak NG otherwise; True forces eSpeak
    (draft jobs: free, no network); False requires Kling. Raises ValidationError with a message
    for the user on anything that went wrong, Kling's refusals included.
    """
    check_script(text, voice_id=voice_id, speed=speed)
    script = normalize_script(text)
    voice = get_voice(voice_id)
    assert voice is not None  # checked above
    speed = round(float(speed), 1)
    if offline is None:
        offline = not kling.is_configured()
    if offline:
        return _synthesize_espeak(script, voice, speed)
    if not kling.is_configured():
        raise ValidationError(
            "Kling's voices need a Kling key, and none is configured on this server: use the "
            "offline voice, or ask the operator to set the Kling key.",
            code="kling_not_configured",
        )
    return _synthesize_kling(script, voice, speed)


def _synthesize_kling(script: str, voice: Voice, speed: float) -> Synthesized:
    client = KlingClient.from_settings()
    parts = split_script(script)
    made_at = timezone.now()  # before the first call: errs on the old side
    ids: list[str] = []
    with tempfile.TemporaryDirectory(prefix="avatarsite-tts-") as tmp:
        paths: list[Path] = []
        for index, part in enumerate(parts):
            audio = _kling_tts(client, text=part, voice=voice, speed=speed)
            path = Path(tmp) / f"part-{index}"
            _kling_download(client, audio, path)  # at once: Kling's URL may not last
            paths.append(path)
            ids.append(audio.id)
        seconds = tuple(_part_seconds(path) for path in paths)
        joined = Path(tmp) / "voice-over.mp3"
        _join_or_refuse(paths, joined, sum(seconds), engine=ENGINE_KLING)
        valid = _validated(joined, script)
    log.info("Kling voice-over: %d part(s), %.1f s, voice %s", len(parts), valid.duration, voice.id)
    one = len(ids) == 1 and bool(ids[0])
    return Synthesized(
        valid=valid,
        kling_audio_id=ids[0] if one else "",
        made_at=made_at if one else None,
        engine=ENGINE_KLING,
        part_seconds=seconds,
    )


def _synthesize_espeak(script: str, voice: Voice, speed: float) -> Synthesized:
    wav, seconds = _espeak_or_refuse(script, voice, speed)
    with tempfile.TemporaryDirectory(prefix="avatarsite-tts-") as tmp:
        source = Path(tmp) / "espeak.wav"
        source.write_bytes(wav)
        joined = Path(tmp) / "voice-over.mp3"
        _join_or_refuse([source], joined, seconds, engine=ENGINE_ESPEAK)
        valid = _validated(joined, script)
    return Synthesized(
        valid=valid,
        kling_audio_id="",
        made_at=None,
        engine=ENGINE_ESPEAK,
        part_seconds=(seconds,),
    )


def _espeak_or_refuse(text: str, voice: Voice, speed: float) -> tuple[bytes, float]:
    try:
        return espeak_wav(text, voice=voice, speed=speed)
    except EspeakUnavailable as exc:
        log.error("eSpeak NG failed: %s", exc)
        raise ValidationError(
            "The offline voice is not available on this server: ask the operator to install "
            "the espeakng-loader package.",
            code="offline_unavailable",
        ) from exc


def _kling_tts(client: KlingClient, *, text: str, voice: Voice, speed: float) -> KlingAudio:
    try:
        audio = client.tts(
            text=text, voice_id=voice.id, voice_language=voice.language, voice_speed=speed
        )
    except KlingError as exc:
        raise _kling_refusal(exc) from exc
    if not audio.url:
        raise ValidationError("Kling did not return audio; try again.", code="kling_no_audio")
    return audio


def _kling_download(client: KlingClient, audio: KlingAudio, dest: Path) -> None:
    try:
        with dest.open("wb") as fh:
            client.download(audio.url, fh, max_bytes=PART_MAX_BYTES, timeout=DOWNLOAD_TIMEOUT)
    except KlingError as exc:
        log.warning("Kling TTS audio %s could not be downloaded: %s", audio.id, exc)
        raise ValidationError(
            "Kling made the voice-over but it could not be downloaded; try again.",
            code="kling_download",
        ) from exc


# The client's own wording when a TTS reply carries no audio (jobs/kling/client.py: tts()).
_NO_AUDIO = "returned no audio"


def _kling_refusal(exc: KlingError) -> ValidationError:
    """Kling's answer in words for the person waiting on it (TTS is a synchronous action)."""
    log.info("Kling TTS refused: %s", exc)
    if exc.code is None and _NO_AUDIO in exc.message:
        if exc.kind == ErrorKind.RETRYABLE:
            return ValidationError("Kling did not return audio; try again.", code="kling_no_audio")
        return ValidationError(
            f"Kling did not return audio ({exc.message}). Change the script, then try again.",
            code="kling_no_audio",
        )
    if exc.kind == ErrorKind.RETRYABLE:
        return ValidationError(
            "Kling's voice service is busy, try again in a minute.", code="kling_busy"
        )
    if exc.kind == ErrorKind.OPERATOR:
        return ValidationError(
            f"Kling refused this server's account ({exc.message}): the operator must fix the "
            "Kling account (key, balance or resource pack) before voices can be made.",
            code="kling_operator",
        )
    return ValidationError(
        f"Kling refused this voice-over: {exc.message}. Check the script and the voice, then "
        "try again.",
        code="kling_refused",
    )


def _part_seconds(path: Path) -> float:
    try:
        return decoded_audio_seconds(path, timeout=FFMPEG_TIMEOUT)
    except FFmpegError as exc:
        log.warning("Kling TTS audio is not decodable: %s", exc)
        raise ValidationError(
            "Kling's audio could not be read; try again.", code="kling_bad_audio"
        ) from exc


def join_audio(sources: list[Path], dest: Path, *, seconds: float) -> Path:
    """Concatenate `sources` (any format ffmpeg reads) into one mono MP3 at `dest`.

    The bitrate is the highest of MP3_KBPS whose size for `seconds` of audio fits the 5 MB
    limit; if the file still comes out too large, the next lower one is tried.
    """
    fitting = [
        kbps for kbps in MP3_KBPS if seconds * kbps * 125 <= AUDIO_MAX_BYTES * SIZE_MARGIN
    ] or [MP3_KBPS[-1]]
    inputs: list[str] = []
    chains: list[str] = []
    for index, source in enumerate(sources):
        inputs += ["-i", f"file:{source.resolve()}"]
        chains.append(
            f"[{index}:a:0]aresample={MP3_RATE},"
            f"aformat=sample_rates={MP3_RATE}:channel_layouts=mono[a{index}]"
        )
    labels = "".join(f"[a{index}]" for index in range(len(sources)))
    graph = ";".join([*chains, f"{labels}concat=n={len(sources)}:v=0:a=1[out]"])
    for kbps in fitting:
        run_ffmpeg(
            ["-v", "error", "-y", *inputs, "-filter_complex", graph, "-map", "[out]"]
            + ["-c:a", "libmp3lame", "-b:a", f"{kbps}k", "-ar", str(MP3_RATE), "-ac", "1"]
            + [f"file:{dest.resolve()}"],
            timeout=FFMPEG_TIMEOUT,
        )
        if dest.stat().st_size <= AUDIO_MAX_BYTES:
            break
    return dest


def _join_or_refuse(sources: list[Path], dest: Path, seconds: float, *, engine: str) -> None:
    try:
        join_audio(sources, dest, seconds=seconds)
    except FFmpegError as exc:
        log.error("joining %d %s part(s) failed: %s", len(sources), engine, exc)
        raise ValidationError(
            "The voice-over could not be put together; try again.", code="join_failed"
        ) from exc


def _validated(path: Path, script: str) -> ValidAudio:
    """validate_audio, with its length messages said in terms of the script."""
    try:
        return validate_audio(path, name="voice-over.mp3")
    except MediaError as exc:
        if exc.code not in ("too_long", "too_short"):
            raise
        try:
            seconds = decoded_audio_seconds(path, timeout=FFMPEG_TIMEOUT)
        except FFmpegError:
            raise exc from None
        if exc.code == "too_short":
            raise ValidationError(
                f"The script is too short: its voice-over lasts {seconds:.1f} s and must last at "
                f"least {AUDIO_MIN_SECONDS} seconds. Write a little more.",
                code="too_short",
            ) from None
        limit = settings.KLING_MAX_AUDIO_SECONDS
        cut = max(1, math.ceil(len(script) * (1 - limit / seconds)))
        raise ValidationError(
            f"The voice-over came out at {seconds:.0f} s: the limit is {limit} s. Cut about "
            f"{cut:,} characters of the script (or raise the speed).",
            code="too_long",
        ) from None


# --- voice samples ------------------------------------------------------------------------------


def voice_sample(voice_id: str, *, offline: bool | None = None) -> str:
    """The storage name of a short sample of a voice ("Hello, this is Anchor."), made once.

    Samples are cached in default_storage under voice-samples/<engine>/<voice_id>.mp3: a
    listen button costs one TTS call per voice and engine, ever. Serve the file with
    `default_storage.open(name)` (audio/mpeg). Raises ValidationError like synthesize().
    """
    voice = get_voice(voice_id)
    if voice is None:
        raise ValidationError(
            f"“{voice_id[:64]}” is not one of Kling's voices.", code="unknown_voice"
        )
    use_kling = kling.is_configured() if offline is None else not offline
    engine = ENGINE_KLING if use_kling else ENGINE_ESPEAK
    name = f"{SAMPLE_DIR}/{engine}/{voice.id}.mp3"
    if default_storage.exists(name):
        return name
    text = SAMPLE_TEXT[voice.language].format(name=voice.name)
    with tempfile.TemporaryDirectory(prefix="avatarsite-sample-") as tmp:
        source = Path(tmp) / "source"
        if use_kling:
            client = KlingClient.from_settings()
            audio = _kling_tts(client, text=text, voice=voice, speed=1.0)
            _kling_download(client, audio, source)
            seconds = _part_seconds(source)
        else:
            wav, seconds = _espeak_or_refuse(text, voice, 1.0)
            source.write_bytes(wav)
        mp3 = Path(tmp) / "sample.mp3"
        _join_or_refuse([source], mp3, seconds, engine=engine)
        if default_storage.exists(name):  # another request made it meanwhile: keep theirs
            return name
        return default_storage.save(name, ContentFile(mp3.read_bytes()))
