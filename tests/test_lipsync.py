"""Lip-synced drafts: on a real photograph (skimage's astronaut, public domain) and the studio's
offline voice, the mouth in the rendered frames opens with the voice and rests in its pauses;
outside the mouth a lip-synced draft is the breathing draft; a portrait without a usable face
still makes a draft, with a note that says why."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jobs.engines import draft as draft_engine
from jobs.engines.render import FPS, render_draft
from jobs.ffmpeg import decoded_audio_seconds, probe, run_ffmpeg
from jobs.lipsync import face as lipsync_face
from jobs.lipsync.face import NO_FACE, NO_MODELS, find_face
from jobs.lipsync.mouth import CHIN, LEFT_CORNER, LOWER_INNER, RIGHT_CORNER, UPPER_INNER
from jobs.lipsync.voice import mouth_openings
from jobs.media.audio import validate_audio
from jobs.media.portraits import validate_portrait
from jobs.models import AvatarJob
from jobs.services.assets import asset_store
from jobs.tts.espeak import espeak_wav
from jobs.voices import VOICES
from tests.helpers import login, make_audio_file, new_job

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (a dev dependency)")

needs_models = pytest.mark.skipif(
    not lipsync_face.models_present(),
    reason="the face models are not in var/models: `make setup` fetches them (needs PyPI)",
)

SENTENCES = ("Hello there, this is a draft.", "It moves its lips.", "Kling makes the real one.")
PAUSE = 0.6  # seconds of silence after each sentence


# --- inputs --------------------------------------------------------------------------------


def astronaut_portrait(size: tuple[int, int] = (640, 800)) -> Image.Image:
    """The astronaut's head and shoulders, upright, as a 4:5 portrait (face ~190 px wide)."""
    photo = Image.fromarray(skimage_data.astronaut())
    return photo.crop((80, 20, 400, 420)).resize(size, Image.Resampling.BICUBIC)


def voice_over(path: Path) -> tuple[Path, list[tuple[float, float]]]:
    """The offline voice reading three sentences, each followed by a pause; (WAV, pauses)."""
    parts, pauses, at, rate = [], [], 0.0, 22050
    for text in SENTENCES:
        data, _ = espeak_wav(text, voice=VOICES[0])
        with wave.open(io.BytesIO(data)) as wav:
            rate = wav.getframerate()
            pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        at += len(pcm) / rate
        parts += [pcm, np.zeros(round(PAUSE * rate), dtype="<i2")]
        pauses.append((at, at + PAUSE))
        at += PAUSE
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.concatenate(parts).tobytes())
    return path, pauses


def decode_region(video: Path, box: tuple[int, int, int, int]) -> np.ndarray:
    """Every frame's pixels inside `box` (x0, y0, x1, y1) as (frames, h, w, 3) uint8."""
    x0, y0, x1, y1 = box
    raw = run_ffmpeg(
        ["-v", "error", "-i", str(video), "-vf", f"crop={x1 - x0}:{y1 - y0}:{x0}:{y0}",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        timeout=60,
    )  # fmt: skip
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, y1 - y0, x1 - x0, 3)


def decode_frames(video: Path, indices: list[int]) -> list[np.ndarray]:
    select = "+".join(f"eq(n\\,{i})" for i in indices)
    raw = run_ffmpeg(
        ["-v", "error", "-i", str(video), "-vf", f"select={select}", "-fps_mode", "passthrough",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        timeout=60,
    )  # fmt: skip
    with Image.open(video.parent / "poster.jpg") as poster:
        w, h = poster.size
    return list(np.frombuffer(raw, dtype=np.uint8).reshape(-1, h, w, 3))


def loudness_db(audio: Path, frames: int) -> np.ndarray:
    """The plain loudness envelope of the voice-over (no band-pass), dBFS per video frame."""
    pcm = run_ffmpeg(
        ["-v", "error", "-i", str(audio), "-ac", "1", "-ar", "16000", "-f", "s16le", "-"],
        timeout=30,
    )
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768
    per = 16000 // FPS
    samples = np.pad(samples, (0, max(0, frames * per - len(samples))))[: frames * per]
    rms = np.sqrt(np.mean(samples.reshape(frames, per) ** 2, axis=1))
    return np.maximum(20 * np.log10(np.maximum(rms, 1e-9)), -60)


@pytest.fixture(scope="module")
def talking(tmp_path_factory):
    """One lip-synced and one breathing draft of the same astronaut and voice-over."""
    folder = tmp_path_factory.mktemp("lips")
    portrait = folder / "astronaut.jpg"
    astronaut_portrait().save(portrait, quality=92)
    audio, pauses = voice_over(folder / "voice.wav")
    lips = render_draft(portrait=portrait, audio=audio, workdir=folder / "lips")
    still = render_draft(portrait=portrait, audio=audio, workdir=folder / "still", lip_sync=False)
    return {"portrait": portrait, "audio": audio, "pauses": pauses, "lips": lips, "still": still}


def mouth_box(image: np.ndarray) -> tuple[tuple[int, int, int, int], float]:
    """Where the mouth can be in a frame (with room for the breathing and the jaw drop)."""
    mesh = find_face(image).face.landmarks
    right, left = mesh[RIGHT_CORNER], mesh[LEFT_CORNER]
    width = float(left[0] - right[0])
    top = float(mesh[UPPER_INNER][:, 1].min()) - 0.1 * width
    bottom = float(mesh[LOWER_INNER][:, 1].max()) + 0.45 * width
    x0, y0 = int(right[0] + 0.1 * width) // 2 * 2, int(top) // 2 * 2  # yuv420p crops: even
    x1, y1 = int(left[0] - 0.1 * width) // 2 * 2, int(bottom) // 2 * 2
    box = (x0, y0, x1, y1)
    return box, float(mesh[CHIN][1])


def dark_area(region: np.ndarray) -> np.ndarray:
    """Per frame, the pixels dark enough to be the inside of an open mouth."""
    luma = region.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return (luma < 60).sum(axis=(1, 2))


# --- the lips follow the voice -------------------------------------------------------------


@needs_models
def test_mouth_opens_with_the_voice_and_rests_in_its_pauses(talking):
    lips = talking["lips"]
    assert lips.note == ""
    with Image.open(lips.poster) as poster:
        box, _ = mouth_box(np.asarray(poster.convert("RGB")))
    dark = dark_area(decode_region(lips.video, box)).astype(np.float64)
    opening = dark - dark.min()
    loud = loudness_db(talking["audio"], len(dark))

    r = np.corrcoef(opening, loud)[0, 1]
    assert r >= 0.7, f"mouth opening and loudness correlate with r={r:.3f}"
    assert opening.max() > 100, "the mouth hardly opens"

    closed = opening <= 0.05 * opening.max()
    inside = [
        n
        for start, end in talking["pauses"]
        for n in range(len(dark))
        if start <= n / FPS and (n + 1) / FPS <= end
    ]
    share = closed[inside].mean()
    assert share >= 0.9, f"lips closed in {share:.0%} of the frames inside pauses"


@needs_models
def test_lip_synced_draft_lasts_as_long_as_the_voice_over(talking):
    seconds = decoded_audio_seconds(talking["audio"])
    found = probe(talking["lips"].video)
    assert found.video.codec == "h264" and found.audio.codec == "aac"
    assert abs(found.duration - seconds) <= 0.1
    assert abs(talking["lips"].duration - seconds) <= 0.1
    assert (talking["lips"].width, talking["lips"].height) == (640, 800)


@needs_models
def test_outside_the_mouth_the_frames_are_the_breathing_draft(talking):
    lips, still = talking["lips"], talking["still"]
    indices = [0, 17, 41, 66, 93]
    with Image.open(lips.poster) as poster:
        (x0, y0, x1, y1), chin = mouth_box(np.asarray(poster.convert("RGB")))
    width = x1 - x0
    # The re-rendered patch reaches past the mouth box: a wide margin covers it and the sway.
    keep = np.ones((lips.height, lips.width), dtype=bool)
    keep[
        max(0, int(y0 - width)) : int(chin + 1.6 * width),
        max(0, int(x0 - 1.4 * width)) : int(x1 + 1.4 * width),
    ] = False
    pairs = zip(
        decode_frames(lips.video, indices), decode_frames(still.video, indices), strict=True
    )
    for a, b in pairs:
        difference = np.abs(a.astype(np.int16) - b.astype(np.int16))[keep].mean()
        # Only H.264's own noise (1-2 measured); the breathing moves them by 3 and more.
        assert difference < 2.5, f"frames differ by {difference:.2f} outside the mouth"
    # And the lip-synced draft breathes: its first and a mid-breath frame differ.
    first, middle = decode_frames(lips.video, [0, 40])
    assert np.abs(first.astype(np.int16) - middle.astype(np.int16))[keep].mean() > 3


def test_silence_keeps_the_mouth_closed_and_speech_opens_it():
    rate = 16000
    tone = 0.3 * np.sin(np.arange(rate) * 2 * np.pi * 600 / rate).astype(np.float32)
    samples = np.concatenate([np.zeros(rate, np.float32), tone, np.zeros(rate, np.float32)])
    opening = mouth_openings(samples, FPS, 3 * FPS)
    assert (opening[: FPS - 1] == 0).all() and (opening[2 * FPS + 1 :] == 0).all()
    assert opening[FPS + 2 : 2 * FPS - 2].min() > 0.8
    assert (mouth_openings(np.zeros(rate, np.float32), FPS, FPS) == 0).all()


# --- portraits without a usable face -------------------------------------------------------


def render_with(tmp_path: Path, image: Image.Image, **kwargs):
    portrait = tmp_path / "portrait.jpg"
    image.convert("RGB").save(portrait, quality=90)
    audio = make_audio_file(tmp_path / "voice.wav", 2.5)
    return render_draft(portrait=portrait, audio=audio, workdir=tmp_path / "out", **kwargs)


@needs_models
def test_landscape_without_a_face_breathes_and_says_why(tmp_path):
    scene = Image.fromarray(skimage_data.coffee())  # a cup of coffee, 600x400
    result = render_with(tmp_path, scene)
    assert result.note == NO_FACE
    assert result.video.is_file() and abs(result.duration - 2.5) <= 0.1


@needs_models
def test_of_two_faces_the_largest_speaks(tmp_path):
    big, small = astronaut_portrait((400, 500)), astronaut_portrait((300, 375))
    both = Image.new("RGB", (700, 500), (200, 200, 205))
    both.paste(small, (0, 125))
    both.paste(big, (300, 0))

    found = find_face(np.asarray(both))

    assert found.reason == "" and found.face.faces_found == 2
    assert found.face.box[0] > 300, "the smaller face was chosen"
    assert render_with(tmp_path, both).note == ""


@needs_models
def test_tiny_face_in_a_portrait_breathes_and_says_why(tmp_path):
    tiny = Image.new("RGB", (300, 400), (190, 195, 200))
    tiny.paste(astronaut_portrait((64, 80)), (118, 160))  # a face about 20 px wide
    result = render_with(tmp_path, tiny)
    assert result.note.endswith("this draft has no lip movement.")
    # Whether the detector sees a 20 px face at all or finds it too small, the lips stay still.
    assert result.note == NO_FACE or result.note.startswith("The face is too small")


def test_missing_face_models_breathe_with_a_note(tmp_path, settings):
    settings.FACE_MODELS_DIR = tmp_path / "no-models"
    result = render_with(tmp_path, astronaut_portrait((480, 600)))
    assert result.note == NO_MODELS
    assert result.video.is_file()


def test_face_models_that_cannot_run_breathe_with_a_note(tmp_path, settings):
    broken = tmp_path / "broken-models"
    broken.mkdir()
    for name in (lipsync_face.DETECTOR_FILE, lipsync_face.LANDMARKS_FILE):
        (broken / name).write_bytes(b"not a model" * 100)
    settings.FACE_MODELS_DIR = broken
    result = render_with(tmp_path, astronaut_portrait((480, 600)))
    assert result.note == lipsync_face.NO_ANALYSIS
    assert result.video.is_file()


@needs_models
@pytest.mark.django_db
def test_draft_job_without_a_face_succeeds_and_every_page_says_why(tmp_path, client, team, owner):
    Image.fromarray(skimage_data.coffee()).save(tmp_path / "coffee.jpg", quality=90)
    portrait = asset_store(team=team, user=owner, valid=validate_portrait(tmp_path / "coffee.jpg"))
    sound = make_audio_file(tmp_path / "voice.mp3", 2.5)
    audio = asset_store(team=team, user=owner, valid=validate_audio(sound))
    job = new_job(team, owner, portrait, audio, prompt="coffee")

    draft_engine.advance(job)

    job.refresh_from_db()
    assert job.status == AvatarJob.Status.SUCCEEDED
    assert job.draft_note == NO_FACE
    login(client, owner)
    assert NO_FACE in client.get(job.get_absolute_url()).content.decode()
    assert NO_FACE in client.get("/").content.decode()
