"""Voice-overs from text: Kling's text-to-speech, or eSpeak NG offline.

Most users have a script, not a recording. A script is checked before anything is sent (a
refusal found after paying for TTS is the complaint Kling's users make most), split into parts
Kling accepts (at most 1000 characters, cut at sentence boundaries), synthesized part by part,
each part downloaded at once (Kling deletes its audio after 30 days, and its URLs may expire
sooner), and joined with ffmpeg into one MP3 that is then validated like any upload, so the
avatar limits (2-300 s, 5 MB) hold for it too.

Kling's `audio_id` is kept only for a one-part script: a joined file has no single id. An id is
used while it is comfortably younger than Kling's 30-day limit (AUDIO_ID_MAX_AGE); after that
the stored copy goes as `sound_file`, so an old voice-over never breaks a job.

Without a Kling key (and for draft jobs) the script is read by eSpeak NG, whose library and
voice data the `espeakng-loader` wheel ships: no network, no key, and it sounds robotic. The
library is called in-process through ctypes (its synchronous synth-to-memory API); it keeps
global state, so calls are serialized by a lock and it is initialized once per process.
"""

from __future__ import annotations

import ctypes
import io
import logging
import math
import os
import re
import tempfile
import threading
import unicodedata
import wave
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from jobs import kling, services
from jobs.ffmpeg import FFmpegError, decoded_audio_seconds, run_ffmpeg
from jobs.kling.client import ErrorKind, KlingAudio, KlingClient, KlingError
from jobs.media import AUDIO_MAX_BYTES, AUDIO_MIN_SECONDS, MediaError, ValidAudio, validate_audio
from jobs.models import Asset, Team
from jobs.voices import Voice, get_voice

log = logging.getLogger(__name__)

KLING_TTS_MAX_CHARS = 1000
SPEED_MIN, SPEED_MAX = 0.8, 2.0
# Characters of script per second of speech at speed 1.0, to refuse a script that cannot fit
# before any call. Measured on eSpeak NG at ESPEAK_WPM (English ~15.5, Mandarin ~4.6); Kling's
# voices are in the same range. Mixed text counts each character at its own script's rate.
CHARS_PER_SECOND = {"en": 15.0, "zh": 4.5}
ENGINE_KLING, ENGINE_ESPEAK = "kling", "espeak"

AUDIO_ID_MAX_AGE = timedelta(days=25)  # Kling refuses ids older than 30 days; keep a margin
# Kling's ids are long numbers; gateways use UUIDs or similar. Letters, digits, - and _ only.
AUDIO_ID_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{5,99}")

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


# --- the script ---------------------------------------------------------------------------------


def normalize_script(text: str) -> str:
    """The script as it is counted and sent: NFC, \\n line breaks, no control characters."""
    text = unicodedata.normalize("NFC", str(text or "")).replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    return text.strip()


# Each pattern matches consecutive pieces that cover the whole text (separators included), so
# packing pieces back together reproduces it exactly.
_SENTENCE = re.compile(r".+?(?:[.!?…]+[\"'”’)\]]*(?=\s|\Z)|[。！？]+[”’」』）]*|\n+|\Z)", re.DOTALL)
# Latin commas only before a space (so "1,000" stays whole); CJK ones anywhere.
_CLAUSE = re.compile(r".+?(?:[,;:]+(?=\s|\Z)|[，、；：—]+|\Z)", re.DOTALL)
_WORD = re.compile(r"\s+|\S+\s*")
_LEVELS = (_SENTENCE, _CLAUSE, _WORD)


def split_script(text: str, *, limit: int = KLING_TTS_MAX_CHARS) -> list[str]:
    """Cut a script into parts of at most `limit` characters, as few as sentence ends allow.

    Parts end at sentence ends (. ! ? … and 。！？, or a line break). A sentence longer than
    `limit` is cut after a comma or the like, then between words; only a single "word" longer
    than `limit` (a pasted URL, or CJK text without punctuation) is cut where it must be.
    """
    script = normalize_script(text)
    if not script:
        return []
    parts: list[str] = []
    current = ""
    for piece in _pieces(script, limit, 0):
        if current.strip() and len((current + piece).strip()) > limit:
            parts.append(current.strip())
            current = piece
        else:
            current += piece
    if current.strip():
        parts.append(current.strip())
    return parts


def _pieces(text: str, limit: int, level: int) -> list[str]:
    if len(text.strip()) <= limit:
        return [text]
    if level == len(_LEVELS):
        return [text[i : i + limit] for i in range(0, len(text), limit)]
    pieces: list[str] = []
    for match in _LEVELS[level].finditer(text):
        piece = match.group()
        if len(piece.strip()) > limit:
            pieces.extend(_pieces(piece, limit, level + 1))
        elif piece:
            pieces.append(piece)
    return pieces


_CJK = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")


def estimate_seconds(text: str, speed: float = 1.0) -> float:
    """Roughly how long the script takes to say: CJK characters at the zh rate, others en."""
    cjk = len(_CJK.findall(text))
    other = len(text) - cjk
    return (cjk / CHARS_PER_SECOND["zh"] + other / CHARS_PER_SECOND["en"]) / speed


def _speed_ok(speed: Any) -> bool:
    try:
        value = float(speed)
    except (TypeError, ValueError):
        return False
    return (
        math.isfinite(value)
        and SPEED_MIN - 1e-9 <= value <= SPEED_MAX + 1e-9
        and abs(value * 10 - round(value * 10)) < 1e-6
    )


def check_script(text: str, *, voice_id: str, speed: float) -> None:
    """Refuse, before any call, a script that cannot make a voice-over Kling would accept.

    Raises one ValidationError listing every problem. Codes: `empty_script`, `no_voice`,
    `unknown_voice`, `bad_speed`, `too_long` (estimated past KLING_MAX_AUDIO_SECONDS, with how
    much to cut) and `too_short` (clearly under Kling's 2 s minimum).
    """
    problems: list[ValidationError] = []
    script = normalize_script(text)
    if not script:
        problems.append(
            ValidationError(
                "The script is empty: write what the avatar should say.", code="empty_script"
            )
        )
    if not voice_id:
        problems.append(ValidationError("Choose a voice to read the script.", code="no_voice"))
    elif get_voice(voice_id) is None:
        problems.append(
            ValidationError(
                f"“{str(voice_id)[:64]}” is not one of Kling's voices: choose one from the list.",
                code="unknown_voice",
            )
        )
    speed_ok = _speed_ok(speed)
    if not speed_ok:
        problems.append(
            ValidationError(
                f"Speed {speed} is not allowed: choose from {SPEED_MIN} to {SPEED_MAX} "
                "in steps of 0.1 (1.0 is normal).",
                code="bad_speed",
            )
        )
    if script and speed_ok:
        speed = round(float(speed), 1)
        seconds = estimate_seconds(script, speed)
        limit = settings.KLING_MAX_AUDIO_SECONDS
        if seconds > limit:
            cut = math.ceil(len(script) * (1 - limit / seconds))
            problems.append(
                ValidationError(
                    f"The script is {len(script):,} characters, about {seconds:.0f} s of speech "
                    f"at speed {speed:.1f}: the limit is {limit} s. Cut about {cut:,} characters "
                    "(or raise the speed).",
                    code="too_long",
                )
            )
        elif seconds < AUDIO_MIN_SECONDS / 2:
            problems.append(
                ValidationError(
                    f"The script is too short: a voice-over must last at least "
                    f"{AUDIO_MIN_SECONDS} seconds. Write a sentence or two.",
                    code="too_short",
                )
            )
    if problems:
        raise ValidationError(problems)


# --- synthesis ----------------------------------------------------------------------------------


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


# --- the library ------------------------------------------------------------------------------


def voiceover_name(text: str) -> str:
    """ "Voice-over: <first words>…", for the library."""
    script = " ".join(normalize_script(text).split())
    words = script.split(" ")
    if len(words) > 1:
        head, cut = " ".join(words[:6]), len(words) > 6
    else:  # CJK has no spaces between words
        head, cut = script[:20], len(script) > 20
    if len(head) > 60:
        head, cut = head[:60].rstrip(), True
    return f"Voice-over: {head}{'…' if cut else ''}"


def voiceover_store(
    *,
    team: Team,
    user: AbstractBaseUser | None,
    text: str,
    voice_id: str,
    speed: float,
    made: Synthesized,
) -> Asset:
    """Store a synthesized voice-over as an audio asset with its script, voice and Kling id.

    The same bytes are stored once per team (asset_store): making the same script again
    returns that asset, with the newer Kling id if this one has one.
    """
    valid = replace(made.valid, name=voiceover_name(text))
    with transaction.atomic():
        asset = services.asset_store(team=team, user=user, valid=valid)
        asset.name = valid.name
        asset.script = normalize_script(text)
        asset.voice_id = voice_id
        asset.voice_speed = round(float(speed), 1)
        asset.voice_engine = made.engine
        fields = ["name", "script", "voice_id", "voice_speed", "voice_engine"]
        if made.kling_audio_id:
            asset.kling_audio_id = made.kling_audio_id
            asset.kling_audio_made_at = made.made_at
            fields += ["kling_audio_id", "kling_audio_made_at"]
        asset.save(update_fields=fields)
    return asset


def voiceover_create(
    *,
    team: Team,
    user: AbstractBaseUser | None,
    text: str,
    voice_id: str,
    speed: float = 1.0,
    offline: bool | None = None,
) -> Asset:
    """Synthesize a script and keep it in the team's library (see synthesize() for `offline`).

    The same script, voice and speed made the same way before is in the library already: that
    one is returned, and nothing is synthesized (or charged by Kling) again. Synthesis gives
    slightly different bytes each time, so the checksum alone would keep both. The synthesis
    (network, ffmpeg) happens outside any transaction; only the storing is atomic.
    """
    check_script(text, voice_id=voice_id, speed=speed)
    if offline is None:
        offline = not kling.is_configured()
    same = (
        Asset.objects.for_team(team)
        .voiceovers()
        .filter(
            script=normalize_script(text),
            voice_id=voice_id,
            voice_speed=round(float(speed), 1),
            voice_engine=ENGINE_ESPEAK if offline else ENGINE_KLING,
        )
    )
    if (made_before := same.first()) is not None:
        return made_before
    made = synthesize(text, voice_id=voice_id, speed=speed, offline=offline)
    return voiceover_store(
        team=team, user=user, text=text, voice_id=voice_id, speed=speed, made=made
    )


def audio_for_kling(asset: Asset, *, now: datetime | None = None) -> dict[str, Any]:
    """The audio half of a Kling create: {"audio_id": id} or {"sound_file": bytes}.

    The id is used only while it is younger than AUDIO_ID_MAX_AGE; an older one, or one of
    unknown age, is replaced by our stored copy, which Kling accepts whatever its age.
    """
    now = now or timezone.now()
    made_at = asset.kling_audio_made_at
    if asset.kling_audio_id and made_at is not None and now - made_at < AUDIO_ID_MAX_AGE:
        return {"audio_id": asset.kling_audio_id}
    with asset.file.open("rb") as fh:
        return {"sound_file": fh.read()}


def check_audio_id(value: str) -> str:
    """A pasted Kling audio id, stripped; ValidationError unless it has the shape of one.

    Only the shape can be checked: its age is unknown until Kling accepts or refuses it.
    """
    candidate = str(value or "").strip()
    if not candidate:
        raise ValidationError("Paste the audio id Kling gave you.", code="empty_audio_id")
    if "/" in candidate or candidate.lower().startswith(("http:", "https:")):
        raise ValidationError(
            "That is a link, not an audio id: paste the id Kling's text-to-speech returned "
            "(letters, digits, - and _ only).",
            code="bad_audio_id",
        )
    if not AUDIO_ID_SHAPE.fullmatch(candidate):
        shown = candidate if len(candidate) <= 40 else candidate[:40] + "…"
        raise ValidationError(
            f"“{shown}” is not a Kling audio id: an id is 6 to 100 letters, digits, hyphens or "
            "underscores, such as 860123456789012345.",
            code="bad_audio_id",
        )
    return candidate


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


# --- eSpeak NG ----------------------------------------------------------------------------------

ESPEAK_WPM = 165  # words per minute at speed 1.0 (eSpeak's default, 175, sounds hurried)
_AUDIO_OUTPUT_SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT: synthesize into our callback, then return
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_EE_OK = 0
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class EspeakUnavailable(RuntimeError):
    """eSpeak NG could not be loaded, or failed to speak."""


def espeak_voice(voice: Voice) -> str:
    """The eSpeak NG voice that stands in for a Kling voice: language, accent and gender."""
    # cmn is Mandarin; eSpeak's plain "en" is British English, for Kling's uk_ voices.
    accent = "en" if voice.id.startswith("uk_") else "en-us"
    base = "cmn" if voice.language == "zh" else accent
    return f"{base}+{'f3' if voice.gender == 'female' else 'm3'}"


class _Espeak:
    """libespeak-ng loaded through ctypes, initialized for synchronous synthesis to memory."""

    def __init__(self) -> None:
        try:
            import espeakng_loader

            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            data_path = espeakng_loader.get_data_path()
        except (ImportError, OSError, RuntimeError) as exc:
            raise EspeakUnavailable(f"cannot load eSpeak NG: {exc}") from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0)
        if rate <= 0:
            raise EspeakUnavailable(f"eSpeak NG did not initialize with data at {data_path}")
        self.lib = lib
        self.sample_rate = rate
        self.pid = os.getpid()
        self._chunks: list[bytes] = []
        # Kept on the instance: ctypes must not free the callback while the library holds it.
        self._callback = _SYNTH_CALLBACK(self._collect)
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav: Any, count: int, events: Any) -> int:
        if count > 0 and wav:
            self._chunks.append(ctypes.string_at(wav, count * 2))
        return 0  # 0: go on

    def speak(self, text: str, *, voice: str, wpm: int) -> bytes:
        """16-bit mono PCM at self.sample_rate."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise EspeakUnavailable(f"eSpeak NG has no voice {voice!r}")
        self.lib.espeak_SetParameter(_PARAM_RATE, wpm, 0)
        self._chunks = []
        data = text.encode("utf-8")
        # No SSML and no [[phoneme]] flags: the script is read as plain text.
        status = self.lib.espeak_Synth(
            data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        if status != _EE_OK:
            raise EspeakUnavailable(f"eSpeak NG could not speak (status {status})")
        self.lib.espeak_Synchronize()
        pcm, self._chunks = b"".join(self._chunks), []
        return pcm


_espeak_lock = threading.Lock()
_espeak: _Espeak | None = None


def espeak_wav(text: str, *, voice: Voice, speed: float = 1.0) -> tuple[bytes, float]:
    """A WAV of eSpeak NG reading `text` in the stand-in for `voice`; (bytes, seconds).

    Serialized: the library has one global voice and callback. Initialized again in a forked
    child (a worker process), which must not share the parent's state.
    """
    global _espeak
    wpm = round(ESPEAK_WPM * speed)
    with _espeak_lock:
        if _espeak is None or _espeak.pid != os.getpid():
            _espeak = _Espeak()
        pcm = _espeak.speak(text, voice=espeak_voice(voice), wpm=wpm)
        rate = _espeak.sample_rate
    if not pcm:
        raise EspeakUnavailable("eSpeak NG produced no sound")
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return out.getvalue(), len(pcm) / (2 * rate)
