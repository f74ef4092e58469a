"""eSpeak NG, the offline voice: its library called in-process through ctypes.

The `espeakng-loader` wheel ships the library and its voice data: no network, no key, and it
sounds robotic. The library's synchronous synth-to-memory API is used; it keeps global state,
so calls are serialized by a lock and it is initialized once per process.
"""

from __future__ import annotations

import ctypes
import io
import os
import threading
import wave
from typing import Any

from jobs.voices import Voice

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
