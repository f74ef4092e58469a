"""The draft renderer: a portrait and a voice-over made into a real MP4, free and offline.

No network, no key: the portrait "breathes" (a slow zoom with a slight sway) for exactly as
long as the voice-over lasts and, when a face is found (jobs/lipsync), its mouth opens and
closes with the voice: a rough lip-synced preview, so a team can check framing, sound and
timing before paying for a Kling render. Without a usable face (none, too small, turned away,
or no face models on the server) the draft only breathes and `DraftResult.note` says why.

The lip-synced draft changes every frame, so it cannot loop one breath: Python sends every
frame of the portrait-sized canvas to one ffmpeg run on stdin, with only the mouth's patch
re-rendered (jobs/lipsync/mouth.py) into one reused buffer, and ffmpeg applies the very same
breathing filters as below, then encodes picture and sound into the final MP4 in that run.

Why the pipeline looks the way it does (measured on 2 cores, no GPU; see `bench/draft.py`):

- Encoding H.264 is nearly all of the cost, and it grows with every frame. The motion is
  periodic (one breath), so we encode ONE breath and repeat it by stream copy: the video costs
  the same for 5 s or 300 s of audio; only the AAC encode grows with the length.
- The portrait is decoded, turned upright (EXIF), converted to sRGB and shrunk once, by Pillow
  (a JPEG is decoded straight at a reduced size), and handed to ffmpeg as one raw frame on
  stdin. ffmpeg converts it to YUV once and loops that frame; per frame it only scales and
  crops, which is cheap next to `zoompan` (or `perspective`, 3x slower again).
- The voice-over is encoded to AAC in the same ffmpeg run as the breath, on its own thread, so
  the two overlap; its length is found by decoding it while Pillow works on the portrait.
- The length comes from decoding (headers of a truncated mp3 lie), and the final mux cuts to it
  with `-t`, which is exact where `-shortest` is not. The breath has no B-frames, so that cut
  lands on a whole frame (with B-frames a stream-copy cut keeps frames past the end).

Two ffmpeg runs in all:

    1. raw RGB frame + voice-over -> draft-breath.mp4 (one breath), poster.jpg, draft-voice.m4a
    2. draft-breath.mp4 looped + draft-voice.m4a, stream copy, cut, +faststart -> draft.mp4
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageCms, ImageOps, UnidentifiedImageError

from jobs.ffmpeg import FFmpegError, decoded_audio_seconds, probe, run_ffmpeg, run_ffmpeg_fed
from jobs.lipsync import face as lipsync_face
from jobs.lipsync.mouth import MouthRig, build_rig, render_mouth
from jobs.lipsync.voice import mouth_openings, speech_band_samples

log = logging.getLogger(__name__)

# Output size. Nearly all of the cost is per pixel (scaling and H.264), so the cap is an area:
# 1280x720 worth of pixels, what Kling's standard mode delivers, with the long side at most
# 1280 px. A 9:16 portrait gets 720x1280, a 4:5 one 858x1072. The full 1280 px long side for a
# 4:5 portrait (1.3 MP) made the one-off breath encode ~45% slower, which put 10 s of audio
# too close to the 10x real-time target on a busy 2-core machine.
MAX_LONG_SIDE = 1280
MAX_PIXELS = 1280 * 720
# 20 fps: the motion is slow (under a pixel a frame), and 20 divides a 60 Hz screen's refresh
# evenly, so it looks as smooth as 25 or 30 fps would, at 20% or 33% fewer frames to encode.
FPS = 20
# One breath: 4 s is a calm resting rate (15 breaths a minute); 80 frames to encode, once.
BREATH_SECONDS = 4
BREATH_FRAMES = FPS * BREATH_SECONDS
# Motion, as fractions of the frame: the zoom swings between ZOOM_REST and ZOOM_REST +
# ZOOM_DEPTH and the frame drifts sideways by up to SWAY; ZOOM_REST leaves room for the sway.
SWAY = 0.006
ZOOM_REST = 1 + 2 * SWAY + 0.004
ZOOM_DEPTH = 0.03
ZOOM_MAX = ZOOM_REST + ZOOM_DEPTH
# The zoom is centred a little above the middle, where a portrait's face usually is, so the
# face stays put and the shoulders do the breathing.
ZOOM_CENTRE_Y = 0.4
# ultrafast, plus the two tools that pay for themselves on a slow zoom: sub-pixel motion search
# (subme=1, -40% bits at no measurable cost) and CABAC (-15%). No B-frames (ultrafast has
# none): see the module docstring. CRF 25 without B-frames matches CRF 23 with them in SSIM.
X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "25", "-x264-params", "subme=1:cabac=1"]
# The "fast" AAC coder takes half the time of the default "twoloop" (0.35 s against 0.66 s for a
# minute of audio), and at 128 kbit/s a voice sounds the same.
AAC = ["-c:a", "aac", "-aac_coder", "fast", "-b:a", "128k"]
# At most stereo (5.1 would starve at 128 kbit/s, and a voice needs no more) and at most 48 kHz
# (AAC allows 96 kHz, not every browser's decoder does); ffmpeg picks the nearest allowed rate.
AUDIO_FORMAT = (
    "aformat=channel_layouts=mono|stereo"
    ":sample_rates=48000|44100|32000|24000|22050|16000|12000|11025|8000"
)
# Time budget when the caller gives none: the audio's length is not known before it is decoded,
# so that step gets a fixed allowance; the whole call then gets 60 s plus twice the audio.
AUDIO_CHECK_TIMEOUT = 60.0
BASE_TIMEOUT = 60.0
TIMEOUT_PER_AUDIO_SECOND = 2.0
MIN_AUDIO_SECONDS = 0.1

_SRGB = ImageCms.createProfile("sRGB")

_FAILED = (
    "The draft video could not be made from this portrait and voice-over. Try again; if it "
    "keeps failing, tell the operator."
)
# Mouth openings are rendered at this many steps between closed and wide (see `_lip_frames`).
OPENING_LEVELS = 48
_NO_LOUDNESS = "The voice-over's loudness could not be read: this draft has no lip movement."
_TOO_SLOW = (
    "Making the draft video took too long and was stopped. The server may be busy: try again "
    "in a few minutes, or with a shorter voice-over."
)


@dataclass(frozen=True)
class DraftResult:
    video: Path  # MP4 inside workdir
    poster: Path  # JPEG inside workdir: the video's first frame, same size
    duration: float  # seconds, probed from the produced MP4
    width: int
    height: int
    note: str = ""  # why this draft has no lip movement, for the job page; "" when it has


class RenderError(Exception):
    """Rendering failed; str(exc) is a plain-words message a user can read (no ffmpeg jargon);
    exc.detail holds ffmpeg's stderr tail (or the underlying error) for logs."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


def render_draft(
    *,
    portrait: Path,
    audio: Path,
    workdir: Path,
    timeout: float | None = None,
    lip_sync: bool = True,
) -> DraftResult:
    """Render the draft video and its poster into `workdir` and describe them.

    With `lip_sync` the mouth moves with the voice when the portrait has a usable face; without
    one the draft breathes only and the result's `note` says why (never an error). `timeout`
    bounds the whole call (default: 60 s plus twice the audio's length). Writes only inside
    `workdir`, creating it if its parent exists; on failure removes what it wrote. Raises
    RenderError, whose message is fit to show the user.
    """
    started = time.monotonic()
    workdir.mkdir(exist_ok=True)
    check = AUDIO_CHECK_TIMEOUT if timeout is None else timeout
    with ThreadPoolExecutor(max_workers=2) as pool:
        # Decoding the audio (its true length; its loudness) and preparing the portrait overlap.
        length = pool.submit(_audio_seconds, audio, check)
        band = pool.submit(_speech_band, audio, check) if lip_sync else None
        frame = _prepare_portrait(portrait)
        rig, note = _rig(frame) if lip_sync else (None, "")
        seconds = length.result()
        samples = band.result() if band is not None else None
        band = None  # the future would keep the samples alive through the render
    if timeout is None:
        timeout = BASE_TIMEOUT + TIMEOUT_PER_AUDIO_SECOND * seconds
    deadline = started + timeout
    if rig is not None and samples is None:
        rig, note = None, _NO_LOUDNESS

    video, poster = workdir / "draft.mp4", workdir / "poster.jpg"
    breath, voice = workdir / "draft-breath.mp4", workdir / "draft-voice.m4a"
    try:
        if rig is not None and samples is not None:
            frames = math.ceil(seconds * FPS)
            openings = mouth_openings(samples, FPS, frames)
            del samples
            args = _lip_synced(frame, frames, audio, seconds, video, poster)
            _run_fed(args, _lip_frames(frame, rig, openings, deadline), deadline)
        else:
            # A voice-over shorter than a breath needs only part of one.
            frames = min(BREATH_FRAMES, math.ceil(seconds * FPS) + 1)
            graph = _breath_and_voice(frame, frames, audio, breath, poster, voice)
            _run(graph, frame.rgb, deadline)
            _run(_loop_and_mux(breath, voice, seconds, video), None, deadline)
        return _describe(video, poster, deadline, note)
    except BaseException:
        video.unlink(missing_ok=True)
        poster.unlink(missing_ok=True)
        raise
    finally:
        breath.unlink(missing_ok=True)
        voice.unlink(missing_ok=True)


def output_size(width: int, height: int) -> tuple[int, int]:
    """The video's size for a portrait shown at `width`x`height`: the aspect ratio kept, within
    MAX_LONG_SIDE and MAX_PIXELS, never enlarged, both sides even (yuv420p needs it)."""
    scale = min(1, MAX_LONG_SIDE / max(width, height), math.sqrt(MAX_PIXELS / (width * height)))
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


# --- inputs ------------------------------------------------------------------------------------


def _audio_seconds(audio: Path, timeout: float) -> float:
    """How long the voice-over really lasts, decoded to the end."""
    started = time.monotonic()
    try:
        seconds = decoded_audio_seconds(audio, timeout=timeout)
    except FFmpegError as exc:
        if time.monotonic() - started >= timeout:
            raise RenderError(_TOO_SLOW, detail=str(exc)) from exc
        raise RenderError(
            "The voice-over could not be played: the file looks damaged or is not really MP3, "
            "WAV, M4A or AAC. Export it again and upload the new file.",
            detail=str(exc),
        ) from exc
    if seconds < MIN_AUDIO_SECONDS:
        raise RenderError(
            "The voice-over has no sound in it that we can play. Export it again and upload "
            "the new file.",
            detail=f"decoded {seconds:.3f} s of audio",
        )
    return seconds


@dataclass(frozen=True)
class _Frame:
    """The portrait as one raw RGB frame, ZOOM_MAX times the video's size so the zoom never
    enlarges it."""

    rgb: bytes
    canvas: tuple[int, int]
    width: int  # the video's size
    height: int


def _prepare_portrait(path: Path) -> _Frame:
    """Decode, turn upright, convert to sRGB and shrink the portrait, once, with Pillow.

    Pillow rather than ffmpeg because it honours the EXIF orientation and the colour profile of
    phone photos, and decodes a JPEG directly at 1/2, 1/4 or 1/8 size, which makes a 40 MP
    upload cheap.
    """
    try:
        with Image.open(path) as image:
            upright = _upright_size(image)
            width, height = output_size(*upright)
            canvas = (_even_ceil(width * ZOOM_MAX), _even_ceil(height * ZOOM_MAX))
            turned = upright != image.size
            image.draft("RGB", (canvas[1], canvas[0]) if turned else canvas)
            picture = _to_srgb(ImageOps.exif_transpose(image), canvas)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise RenderError(
            "The portrait could not be read: the file looks damaged. Save it again as JPEG or "
            "PNG and upload the new file.",
            detail=f"{type(exc).__name__}: {exc}",
        ) from exc
    return _Frame(rgb=picture.tobytes(), canvas=canvas, width=width, height=height)


def _even_ceil(value: float) -> int:
    return math.ceil(value / 2) * 2


def _upright_size(image: Image.Image) -> tuple[int, int]:
    """The size the portrait is shown at: EXIF orientations 5 to 8 turn it a quarter."""
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    return (image.height, image.width) if orientation in (5, 6, 7, 8) else image.size


def _to_srgb(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Shrink to `size`, map the colour profile to sRGB and flatten transparency onto white."""
    if image.mode.startswith("I"):  # 16-bit greyscale PNG: keep the top 8 bits, do not clip
        image = image.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if image.mode not in ("RGB", "RGBA", "CMYK"):
        transparent = "A" in image.getbands() or "transparency" in image.info
        image = image.convert("RGBA" if transparent else "RGB")
    image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    icc = image.info.get("icc_profile")
    # A broken profile is ignored: the pixels as they are beat no video at all.
    with contextlib.suppress(ImageCms.PyCMSError, OSError, ValueError):
        if icc:
            converted = ImageCms.profileToProfile(
                image,
                ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                _SRGB,
                outputMode="RGBA" if image.mode == "RGBA" else "RGB",
            )
            if converted is not None:  # None only when converting in place, which this is not
                image = converted
    if image.mode == "RGBA":
        white = Image.new("RGB", image.size, (255, 255, 255))
        white.paste(image, mask=image.getchannel("A"))
        image = white
    return image.convert("RGB")


# --- ffmpeg ------------------------------------------------------------------------------------


def _motion(frame: _Frame) -> str:
    """The per-frame zoom and sway, as ffmpeg filters of the frame number `n`.

    Periodic in BREATH_FRAMES (frame BREATH_FRAMES equals frame 0), so the encoded breath loops
    without a seam. The zoom follows (1 - cos)/2, easing in and out of each breath; the sway is
    a quarter-turn out of phase, which reads as a body rather than a machine. Scaled sizes are
    even because yuv420p needs them; crop clamps x and y into the picture.
    """
    w, h = frame.width, frame.height
    phase = f"2*PI*n/{BREATH_FRAMES}"
    zoom = f"({ZOOM_REST}+{ZOOM_DEPTH}*(1-cos({phase}))/2)"
    return (
        f"scale=w='2*trunc({w}*{zoom}/2)':h='2*trunc({h}*{zoom}/2)':eval=frame:flags=bilinear,"
        f"crop={w}:{h}:x='(iw-ow)/2+{SWAY * w:.2f}*sin({phase})':y='(ih-oh)*{ZOOM_CENTRE_Y}'"
    )


def _breath_and_voice(
    frame: _Frame, frames: int, audio: Path, breath: Path, poster: Path, voice: Path
) -> list[str]:
    """Run 1: one breath of video, the poster (its first frame) and the voice-over in AAC."""
    cw, ch = frame.canvas
    graph = (
        # RGB to BT.709 YUV once, tagged so browsers show true colours, then loop that one frame.
        "[0:v]scale=out_color_matrix=bt709:out_range=tv,format=yuv420p,"
        "setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709,"
        f"loop=loop=-1:size=1,setpts=N/{FPS}/TB,{_motion(frame)},split[breath][still];"
        # JPEG means full-range BT.601, so the poster gets its own conversion.
        "[still]trim=end_frame=1,scale=out_color_matrix=bt601:out_range=pc,format=yuvj420p[poster]"
    )
    return [
        "-v", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-video_size", f"{cw}x{ch}",
        "-framerate", str(FPS), "-i", "pipe:0",
        "-i", _local(audio),
        "-filter_complex", graph,
        "-map", "[breath]", "-frames:v", str(frames), *X264, "-threads", "2", _local(breath),
        # -update 1: the name is used as it is, never as a numbered-image pattern (%d).
        "-map", "[poster]", "-frames:v", "1", "-q:v", "3", "-update", "1", _local(poster),
        "-map", "1:a:0", "-af", AUDIO_FORMAT, *AAC, _local(voice),
    ]  # fmt: skip


def _speech_band(audio: Path, timeout: float) -> np.ndarray | None:
    """The voice-over's speech band for the mouth, or None (the length check reports why)."""
    try:
        return speech_band_samples(audio, timeout=timeout)
    except FFmpegError:
        return None


def _rig(frame: _Frame) -> tuple[MouthRig | None, str]:
    """The mouth's rig on the canvas, or why this portrait gets no lip movement."""
    canvas = np.frombuffer(frame.rgb, dtype=np.uint8).reshape(frame.canvas[1], frame.canvas[0], 3)
    try:
        found = lipsync_face.find_face(canvas)
    except Exception:  # a broken model file or runtime costs the lips, never the draft
        log.exception("face detection failed; rendering the draft without lip movement")
        return None, lipsync_face.NO_ANALYSIS
    if found.face is None:
        return None, found.reason
    # The canvas is ZOOM_MAX times the video: judge the face at the size it is shown.
    if found.face.width / ZOOM_MAX < lipsync_face.MIN_FACE_WIDTH:
        return None, lipsync_face.too_small(found.face.width / ZOOM_MAX)
    return build_rig(canvas, found.face.landmarks), ""


def _lip_frames(
    frame: _Frame, rig: MouthRig, openings: np.ndarray, deadline: float
) -> Iterator[memoryview]:
    """Every frame as 4:2:0 YUV, the mouth patch pasted in; one buffer, reused.

    The openings are quantized to OPENING_LEVELS steps (under a pixel of jaw apart), so the
    mouth is rendered and converted once per level used, not once per frame; the conversion to
    YUV is ffmpeg's own, the same as the breathing draft's, so the patch has no seam and the
    frames need no conversion in the encoding run.
    """
    levels = np.rint(np.clip(openings, 0, 1) * OPENING_LEVELS).astype(np.int16)
    used = sorted({int(v) for v in levels})
    x0, y0, x1, y1 = rig.box
    pw, ph = x1 - x0, y1 - y0
    patches = b"".join(render_mouth(rig, level / OPENING_LEVELS).tobytes() for level in used)
    base = _to_yuv(frame.rgb, frame.canvas, 1, deadline)
    converted = _to_yuv(patches, (pw, ph), len(used), deadline)
    cw, ch = frame.canvas
    buffer = np.frombuffer(bytearray(base), dtype=np.uint8)
    planes = _yuv_planes(buffer, cw, ch)
    size = pw * ph * 3 // 2
    by_level = {
        level: _yuv_planes(np.frombuffer(converted, np.uint8, size, i * size), pw, ph)
        for i, level in enumerate(used)
    }
    # Pasted without the patch's outermost 2 px: its edges are unmoved portrait anyway, and
    # the chroma filter there saw the patch's border rather than the picture around it.
    inset = 2
    shown = -1
    for level in levels:
        if level != shown:
            for plane, patch, sub in zip(planes, by_level[int(level)], (1, 2, 2), strict=True):
                i = inset // sub
                plane[y0 // sub + i : y1 // sub - i, x0 // sub + i : x1 // sub - i] = patch[
                    i:-i, i:-i
                ]
            shown = int(level)
        yield buffer.data


def _yuv_planes(data: np.ndarray, width: int, height: int) -> list[np.ndarray]:
    """Views of the Y, U and V planes of one yuv420p picture."""
    luma, chroma = width * height, (width // 2) * (height // 2)
    return [
        data[:luma].reshape(height, width),
        data[luma : luma + chroma].reshape(height // 2, width // 2),
        data[luma + chroma : luma + 2 * chroma].reshape(height // 2, width // 2),
    ]


def _to_yuv(rgb: bytes, size: tuple[int, int], count: int, deadline: float) -> bytes:
    """RGB pictures to BT.709 limited-range yuv420p, by the breathing draft's own filter."""
    args = [
        "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-video_size", f"{size[0]}x{size[1]}",
        "-i", "pipe:0", "-vf", "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p",
        "-frames:v", str(count), "-f", "rawvideo", "-",
    ]  # fmt: skip
    left = deadline - time.monotonic()
    if left <= 0:
        raise RenderError(_TOO_SLOW, detail="time budget spent before the mouth was converted")
    try:
        return run_ffmpeg(args, timeout=left, stdin=rgb)
    except FFmpegError as exc:
        raise RenderError(_FAILED, detail=str(exc)) from exc


def _lip_synced(
    frame: _Frame, frames: int, audio: Path, seconds: float, video: Path, poster: Path
) -> list[str]:
    """One run for a lip-synced draft: every frame from stdin, breathing as the looped breath
    does (the same filters, so outside the mouth the two drafts match), the voice-over in AAC,
    cut to the audio's length, faststart."""
    cw, ch = frame.canvas
    graph = (
        # The frames come in as the breathing draft's are after its conversion (`_to_yuv`).
        "[0:v]setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709,"
        f"setpts=N/{FPS}/TB,{_motion(frame)},split[video][still];"
        "[still]trim=end_frame=1,scale=out_color_matrix=bt601:out_range=pc,format=yuvj420p[poster]"
    )
    return [
        "-v", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "yuv420p", "-video_size", f"{cw}x{ch}",
        "-framerate", str(FPS), "-i", "pipe:0",
        "-i", _local(audio),
        "-filter_complex", graph,
        "-map", "[video]", "-frames:v", str(frames), *X264, "-threads", "2",
        "-map", "1:a:0", "-af", AUDIO_FORMAT, *AAC,
        "-t", f"{seconds:.3f}", "-movflags", "+faststart", _local(video),
        "-map", "[poster]", "-frames:v", "1", "-q:v", "3", "-update", "1", _local(poster),
    ]  # fmt: skip


def _loop_and_mux(breath: Path, voice: Path, seconds: float, video: Path) -> list[str]:
    """Run 2: repeat the breath for as long as the voice-over lasts; copy, never re-encode."""
    return [
        "-v", "error", "-y",
        "-stream_loop", "-1", "-i", _local(breath),
        "-i", _local(voice),
        "-map", "0:v:0", "-map", "1:a:0", "-c", "copy",
        "-t", f"{seconds:.3f}", "-movflags", "+faststart", _local(video),
    ]  # fmt: skip


def _local(path: Path) -> str:
    """Name a file so that ffmpeg never takes it for a protocol (`concat:`, `http:`...)."""
    return f"file:{path.resolve()}"


def _run(args: list[str], stdin: bytes | None, deadline: float) -> None:
    """Run ffmpeg within what is left of the budget; turn its failures into RenderError."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise RenderError(_TOO_SLOW, detail="time budget spent before ffmpeg started")
    try:
        run_ffmpeg(args, timeout=left, stdin=stdin)
    except (FFmpegError, OSError) as exc:
        timed_out = time.monotonic() >= deadline
        raise RenderError(_TOO_SLOW if timed_out else _FAILED, detail=str(exc)) from exc


def _run_fed(args: list[str], chunks: Iterator[memoryview], deadline: float) -> None:
    """Run ffmpeg fed frame by frame within what is left of the budget (see `_run`)."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise RenderError(_TOO_SLOW, detail="time budget spent before ffmpeg started")
    try:
        run_ffmpeg_fed(args, chunks, timeout=left)
    except (FFmpegError, OSError) as exc:
        timed_out = time.monotonic() >= deadline
        raise RenderError(_TOO_SLOW if timed_out else _FAILED, detail=str(exc)) from exc


def _describe(video: Path, poster: Path, deadline: float, note: str = "") -> DraftResult:
    """Probe what we made; refuse anything that is not an MP4 with picture and sound."""
    found = probe(video, timeout=max(1.0, deadline - time.monotonic()))
    if found is None and time.monotonic() >= deadline:  # probe() gives None on a timeout too
        raise RenderError(_TOO_SLOW, detail="probing the finished video timed out")
    if found is None or found.video is None or found.audio is None or not found.duration:
        raise RenderError(_FAILED, detail=f"the finished video does not probe right: {found!r}")
    width, height = found.video.width, found.video.height
    if not (width and height and poster.is_file()):
        raise RenderError(_FAILED, detail=f"no picture size, or no poster: {found!r}")
    return DraftResult(
        video=video, poster=poster, duration=found.duration, width=width, height=height, note=note
    )
