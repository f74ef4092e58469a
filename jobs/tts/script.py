"""A script's rules, checked before any call: normalized, split for Kling, timed, judged.

A refusal found after paying for text-to-speech is the complaint Kling's users make most, so a
script is checked before anything is sent, and split into parts Kling accepts (at most 1000
characters, cut at sentence boundaries). Also the shape of a pasted Kling audio id.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from jobs.media.limits import AUDIO_MIN_SECONDS
from jobs.voices import get_voice

KLING_TTS_MAX_CHARS = 1000
SPEED_MIN, SPEED_MAX = 0.8, 2.0
# Characters of script per second of speech at speed 1.0, to refuse a script that cannot fit
# before any call. Measured on eSpeak NG at ESPEAK_WPM (English ~15.5, Mandarin ~4.6); Kling's
# voices are in the same range. Mixed text counts each character at its own script's rate.
CHARS_PER_SECOND = {"en": 15.0, "zh": 4.5}
# Kling's ids are long numbers; gateways use UUIDs or similar. Letters, digits, - and _ only.
AUDIO_ID_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{5,99}")


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


CAPTION_MAX_CHARS = 84  # two lines of 42, the usual limit for a caption on screen


def captions_vtt(text: str, *, duration: float | None) -> str:
    """WebVTT captions for a voice-over read from `text`: one cue a sentence (a long one cut
    at commas, then words), spread over `duration` by length, since the synthesizers give no
    timings. Approximate, but it keeps pace with the voice well enough to follow."""
    script = normalize_script(text)
    cues: list[str] = []
    for sentence in _SENTENCE.finditer(script):
        current = ""  # a long sentence's clauses or words, packed back up to the limit
        for piece in _pieces(sentence.group(), CAPTION_MAX_CHARS, 1):
            if current.strip() and len((current + piece).strip()) > CAPTION_MAX_CHARS:
                cues.append(current.strip())
                current = ""
            current += piece
        if current.strip():
            cues.append(current.strip())
    lines = ["WEBVTT", ""]
    if not cues or not duration or duration <= 0:
        return "\n".join(lines)
    total = sum(len(cue) for cue in cues)
    start = 0.0
    for cue in cues:
        end = start + duration * len(cue) / total
        # A cue's text may not hold "-->" or a blank line (either would end it early).
        words = " ".join(cue.replace("-->", "→").split())
        lines += [f"{_vtt_time(start)} --> {_vtt_time(end)}", words, ""]
        start = end
    return "\n".join(lines)


def _vtt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    return f"{hours:02d}:{minutes:02d}:{millis / 1000:06.3f}"
