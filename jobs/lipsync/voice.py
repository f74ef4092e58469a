"""How far the mouth opens in each video frame, read from the voice-over's loudness.

No phonemes: the loudness of the speech band (300-3000 Hz, where the vowels that open a mouth
carry their energy; breath noise and hum fall outside) per frame, in decibels, lightly smoothed,
with a silence gate so the lips rest closed in pauses. ffmpeg does the band-pass while it
decodes, at 16 kHz mono: 300 s of audio is under 10 MB of samples, read in one go.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jobs.ffmpeg import run_ffmpeg

RATE = 16000
# Loudness below the speech's own loud frames by more than this is a pause: the mouth closes.
GATE_BELOW_PEAK_DB = 30.0
# And anything this quiet is a pause whatever the speech's level (a near-silent recording).
GATE_FLOOR_DBFS = -55.0
# The opening reaches 1 at the loud end of speech (this percentile of the voiced frames).
PEAK_PERCENTILE = 90
# A centred 3-tap smoothing: the lips do not jitter from one 50 ms frame to the next, and a
# pause of 300 ms still closes them within a frame.
SMOOTHING = np.array([0.25, 0.5, 0.25], dtype=np.float32)


def speech_band_samples(audio: Path, *, timeout: float) -> np.ndarray:
    """The voice-over decoded to 16 kHz mono, band-passed to 300-3000 Hz, as int16 (2 bytes a
    sample: 300 s is 9.6 MB; floats are made a block at a time, in `frame_loudness_db`)."""
    pcm = run_ffmpeg(
        [
            "-v",
            "error",
            "-i",
            f"file:{audio.resolve()}",
            "-map",
            "0:a:0",
            "-vn",
            "-af",
            "highpass=f=300,lowpass=f=3000",
            "-ac",
            "1",
            "-ar",
            str(RATE),
            "-f",
            "s16le",
            "-",
        ],  # fmt: skip
        timeout=timeout,
    )
    return np.frombuffer(pcm, dtype="<i2")


# Frames of samples turned into floats at once: a minute of 20 fps video, about 4 MB.
BLOCK_FRAMES = 1200


def frame_loudness_db(samples: np.ndarray, fps: int, frames: int) -> np.ndarray:
    """RMS level in dBFS of each video frame's slice of the samples (`frames` values); int16
    samples are full scale at 32768, floats at 1."""
    per_frame = RATE // fps
    scale = 32768.0 if samples.dtype.kind == "i" else 1.0
    rms = np.zeros(frames, dtype=np.float32)
    for first in range(0, frames, BLOCK_FRAMES):
        count = min(BLOCK_FRAMES, frames - first)
        block = np.zeros(count * per_frame, dtype=np.float32)
        used = samples[first * per_frame : (first + count) * per_frame]
        block[: len(used)] = used
        block /= scale
        rms[first : first + count] = np.sqrt(np.mean(block.reshape(count, per_frame) ** 2, axis=1))
    return (20 * np.log10(np.maximum(rms, 1e-6))).astype(np.float32)


def mouth_openings(samples: np.ndarray, fps: int, frames: int) -> np.ndarray:
    """One opening per frame, 0 (closed) to 1 (wide), float32, from int16 or float samples."""
    db = frame_loudness_db(samples, fps, frames)
    loud = db[db > GATE_FLOOR_DBFS]
    if loud.size == 0:
        return np.zeros(frames, dtype=np.float32)
    peak = float(np.percentile(loud, PEAK_PERCENTILE))
    gate = max(peak - GATE_BELOW_PEAK_DB, GATE_FLOOR_DBFS)
    open_ = np.clip((db - gate) / max(peak - gate, 1.0), 0, 1)
    smoothed = np.convolve(np.pad(open_, 1, mode="edge"), SMOOTHING, mode="valid")
    # The gate has the last word: a silent frame is closed however loud its neighbours are.
    return np.where(db > gate, smoothed, 0).astype(np.float32)
