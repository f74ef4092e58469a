"""The draft renderer: real MP4s from real inputs, checked by probing and decoding what came out."""

from __future__ import annotations

import io
import math
import struct
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from jobs.engines.render import (
    BREATH_FRAMES,
    FPS,
    DraftResult,
    RenderError,
    output_size,
    render_draft,
)
from jobs.ffmpeg import decoded_audio_seconds, ffmpeg_exe, probe, run_ffmpeg

RED = (220, 30, 30)


# --- inputs --------------------------------------------------------------------------------


def make_portrait(
    path: Path,
    size: tuple[int, int],
    *,
    orientation: int | None = None,
    transparent_corner: bool = False,
) -> Path:
    """A gradient with a face, and stripes and a red band that make motion and turns visible.

    With `orientation`, the pixels are stored turned so that EXIF `orientation` shows them
    upright at `size`, the way a phone saves a photo taken on its side. With
    `transparent_corner` (PNG only), the top-left fifth is fully transparent.
    """
    w, h = size
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    image = Image.merge(
        "RGB", (image.getchannel(0), Image.new("L", size, 120), image.getchannel(0))
    )
    draw = ImageDraw.Draw(image)
    for x in range(0, w, max(4, w // 40)):  # vertical stripes: a sideways sway shows at once
        draw.line([(x, 0), (x, h)], fill=(0, 0, 0), width=max(1, w // 160))
    draw.rectangle((0, 0, w, h // 10), fill=RED)  # the top, to tell upright from turned
    draw.ellipse((w * 0.3, h * 0.2, w * 0.7, h * 0.75), fill=(235, 200, 175))
    draw.ellipse((w * 0.4, h * 0.38, w * 0.46, h * 0.44), fill=(30, 30, 30))
    draw.ellipse((w * 0.54, h * 0.38, w * 0.6, h * 0.44), fill=(30, 30, 30))
    draw.arc((w * 0.42, h * 0.5, w * 0.58, h * 0.62), 20, 160, fill=(140, 30, 30), width=4)
    fmt = "PNG" if path.suffix == ".png" else "JPEG"
    if transparent_corner:
        alpha = Image.new("L", size, 255)
        ImageDraw.Draw(alpha).rectangle((0, 0, w // 5, h // 5), fill=0)
        image.putalpha(alpha)
    if orientation is None:
        image.save(path, fmt)
        return path
    stored = image.transpose(Image.Transpose.ROTATE_90)  # EXIF 6 turns it back clockwise
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, fmt, exif=exif)
    return path


def make_audio(path: Path, seconds: float) -> Path:
    run_ffmpeg(
        ["-v", "error", "-f", "lavfi", "-i", f"sine=frequency=300:duration={seconds}", str(path)],
        timeout=30,
    )
    return path


# --- reading what came out -----------------------------------------------------------------


def top_level_boxes(path: Path) -> list[str]:
    """The MP4's top-level box types in file order (ISO BMFF: 32-bit size, 4-char type)."""
    boxes, data, pos = [], path.read_bytes(), 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:  # a 64-bit size follows the type
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
        elif size == 0:  # the box runs to the end of the file
            size = len(data) - pos
        assert size >= 8, f"malformed box at {pos}"
        boxes.append(kind.decode("latin-1"))
        pos += size
    assert pos == len(data), "boxes do not add up to the file"
    return boxes


def stream_report(path: Path) -> str:
    """ffmpeg's own description of the streams (it exits 1: no output file was asked for)."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, check=False
    )
    return proc.stderr.decode(errors="replace")


def decode_frame(video: Path, *, last: bool = False, at: int | None = None) -> Image.Image:
    """One decoded frame as RGB: the first, the `at`-th, or the last."""
    if last:  # decode the final half second and keep the last picture
        args = ["-sseof", "-0.5", "-i", str(video)]
    elif at is not None:
        args = ["-i", str(video), "-vf", f"select=eq(n\\,{at})", "-frames:v", "1"]
    else:
        args = ["-i", str(video), "-frames:v", "1"]
    png = run_ffmpeg(["-v", "error", *args, "-f", "image2pipe", "-c:v", "png", "-"], timeout=30)
    frames = png.split(b"\x89PNG\r\n\x1a\n")
    return Image.open(io.BytesIO(b"\x89PNG\r\n\x1a\n" + frames[-1])).convert("RGB")


def count_frames(video: Path) -> int:
    args = ["-v", "error", "-i", str(video), "-map", "0:v", "-f", "framemd5", "-"]
    md5s = run_ffmpeg(args, timeout=60)
    return sum(1 for line in md5s.decode().splitlines() if line and not line.startswith("#"))


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel, 0 to 255."""
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def assert_browser_ready(
    result: DraftResult, workdir: Path, shown: tuple[int, int], audio: Path
) -> None:
    """Everything the issue asks of a draft, checked on the files themselves."""
    assert result.video.parent == workdir and result.poster.parent == workdir
    found = probe(result.video)
    assert found is not None and found.container.startswith("mov,mp4")
    assert found.video.codec == "h264" and found.audio.codec == "aac"
    assert "yuv420p(" in stream_report(result.video)
    boxes = top_level_boxes(result.video)
    assert boxes[0] == "ftyp" and result.video.read_bytes()[8:12] in (b"isom", b"mp41", b"mp42")
    assert boxes.index("moov") < boxes.index("mdat"), f"not faststart: {boxes}"

    w, h = found.video.width, found.video.height
    assert (result.width, result.height) == (w, h)
    assert w % 2 == 0 and h % 2 == 0
    assert max(w, h) <= 1280 and w <= shown[0] and h <= shown[1]
    assert abs(w / h - shown[0] / shown[1]) < 0.01

    seconds = decoded_audio_seconds(audio)
    assert abs(found.duration - seconds) <= 0.1
    assert abs(result.duration - seconds) <= 0.1
    # The picture itself lasts as long as the sound, not just the container.
    assert abs(count_frames(result.video) / FPS - seconds) <= 0.1

    with Image.open(result.poster) as poster:
        assert poster.format == "JPEG" and poster.size == (w, h)
        poster_rgb = poster.convert("RGB")
    first, last = decode_frame(result.video), decode_frame(result.video, last=True)
    # Stripes make even a few pixels of zoom or sway count: ~30-50 measured, ~0 when frozen.
    assert mean_difference(first, last) > 8, "the picture does not move"
    # Poster (JPEG) and first frame (H.264) differ only by compression: ~2-3 measured.
    assert mean_difference(poster_rgb, first) < 6, "the poster is not the first frame"


# --- tests ---------------------------------------------------------------------------------


def test_portrait_jpeg_and_mp3_make_a_browser_ready_mp4(tmp_path):
    portrait = make_portrait(tmp_path / "p.jpg", (600, 800))
    audio = make_audio(tmp_path / "a.mp3", 3.4)
    workdir = tmp_path / "work"
    workdir.mkdir()

    result = render_draft(portrait=portrait, audio=audio, workdir=workdir)

    assert_browser_ready(result, workdir, (600, 800), audio)
    assert (result.width, result.height) == (600, 800)  # small enough: not resized
    assert sorted(p.name for p in workdir.iterdir()) == ["draft.mp4", "poster.jpg"]


def test_landscape_png_and_wav_with_transparency_flattened_on_white(tmp_path):
    portrait = make_portrait(tmp_path / "p.png", (1000, 562), transparent_corner=True)
    audio = make_audio(tmp_path / "a.wav", 3.4)

    result = render_draft(portrait=portrait, audio=audio, workdir=tmp_path / "work")

    assert_browser_ready(result, tmp_path / "work", (1000, 562), audio)
    assert result.width > result.height
    with Image.open(result.poster) as poster:
        corner = poster.convert("RGB").crop((0, 0, result.width // 10, result.height // 10))
    assert min(ImageStat.Stat(corner).mean) > 235, "transparency is not white"


def test_tiny_square_and_m4a_are_not_enlarged(tmp_path):
    portrait = make_portrait(tmp_path / "p.jpg", (300, 300))
    audio = make_audio(tmp_path / "a.m4a", 3.4)

    result = render_draft(portrait=portrait, audio=audio, workdir=tmp_path / "work")

    assert_browser_ready(result, tmp_path / "work", (300, 300), audio)
    assert (result.width, result.height) == (300, 300)


def test_large_photo_is_shrunk_to_at_most_720p_worth_of_pixels(tmp_path):
    portrait = make_portrait(tmp_path / "p.jpg", (4000, 3000))
    audio = make_audio(tmp_path / "a.mp3", 3.4)

    result = render_draft(portrait=portrait, audio=audio, workdir=tmp_path / "work")

    assert_browser_ready(result, tmp_path / "work", (4000, 3000), audio)
    assert result.width * result.height <= 1280 * 720
    assert result.width >= 1100  # shrunk to the cap, not far below it


def test_voice_over_longer_than_a_breath_loops_without_a_seam_and_ends_on_time(tmp_path):
    portrait = make_portrait(tmp_path / "p.jpg", (480, 600))
    audio = make_audio(tmp_path / "a.wav", 9.3)  # two whole breaths and part of a third

    result = render_draft(portrait=portrait, audio=audio, workdir=tmp_path / "work")

    assert_browser_ready(result, tmp_path / "work", (480, 600), audio)
    # The frame that starts the second breath is the very same picture as frame 0.
    start, again = decode_frame(result.video), decode_frame(result.video, at=BREATH_FRAMES)
    assert mean_difference(start, again) < 0.5
    # Mid-breath the picture is zoomed in: it moves throughout, not only at the ends.
    middle = decode_frame(result.video, at=BREATH_FRAMES // 2)
    assert mean_difference(start, middle) > 8


def test_truncated_mp3_sets_the_length_by_what_plays_not_by_its_header(tmp_path):
    whole = make_audio(tmp_path / "whole.mp3", 6)
    audio = tmp_path / "a.mp3"
    audio.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert probe(audio).duration > 5.5  # the header still promises 6 s
    portrait = make_portrait(tmp_path / "p.jpg", (480, 600))

    result = render_draft(portrait=portrait, audio=audio, workdir=tmp_path / "work")

    assert result.duration < 3.5
    assert_browser_ready(result, tmp_path / "work", (480, 600), audio)


def test_phone_photo_taken_sideways_is_turned_upright(tmp_path):
    portrait = make_portrait(tmp_path / "p.jpg", (480, 640), orientation=6)
    with Image.open(portrait) as stored:
        assert stored.size == (640, 480)  # the pixels lie on their side
    audio = make_audio(tmp_path / "a.mp3", 2.5)

    result = render_draft(portrait=portrait, audio=audio, workdir=tmp_path / "work")

    assert (result.width, result.height) == (480, 640)
    with Image.open(result.poster) as poster:
        top = poster.convert("RGB").crop((0, 0, result.width, result.height // 20))
        red, green, blue = ImageStat.Stat(top).mean
    assert red > 150 and green < 90 and blue < 90, "the red band is not on top"


def test_damaged_audio_fails_in_plain_words_and_leaves_nothing_behind(tmp_path, media_root):
    portrait = make_portrait(tmp_path / "p.jpg", (480, 600))
    audio = tmp_path / "a.mp3"
    audio.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 40)
    workdir = tmp_path / "work"
    before = set(tmp_path.rglob("*"))

    with pytest.raises(RenderError) as exc:
        render_draft(portrait=portrait, audio=audio, workdir=workdir)

    message = str(exc.value)
    assert message.startswith("The voice-over could not be played")
    assert not any(word in message.lower() for word in ("ffmpeg", "stream", "invalid data", "@"))
    assert exc.value.detail  # ffmpeg's words are kept for the log
    assert set(tmp_path.rglob("*")) - before <= {workdir}
    assert list(workdir.iterdir()) == []
    assert list(media_root.iterdir()) == []


def test_damaged_portrait_fails_in_plain_words(tmp_path):
    portrait = tmp_path / "p.jpg"
    portrait.write_bytes(make_portrait(tmp_path / "whole.jpg", (480, 600)).read_bytes()[:2000])
    audio = make_audio(tmp_path / "a.mp3", 2.5)

    with pytest.raises(RenderError) as exc:
        render_draft(portrait=portrait, audio=audio, workdir=tmp_path / "work")

    assert str(exc.value).startswith("The portrait could not be read")
    assert list((tmp_path / "work").iterdir()) == []


def test_running_out_of_time_is_reported_as_such(tmp_path):
    portrait = make_portrait(tmp_path / "p.jpg", (480, 600))
    audio = make_audio(tmp_path / "a.mp3", 2.5)

    with pytest.raises(RenderError) as exc:
        render_draft(portrait=portrait, audio=audio, workdir=tmp_path / "work", timeout=0.001)

    assert "took too long" in str(exc.value)
    assert list((tmp_path / "work").iterdir()) == []


@pytest.mark.parametrize(
    ("shown", "expected"),
    [
        ((300, 300), (300, 300)),  # never enlarged
        ((301, 451), (300, 450)),  # odd sides round down to even
        ((720, 1280), (720, 1280)),  # 9:16 fits exactly
        ((1920, 1080), (1280, 720)),
        ((1024, 1280), (858, 1072)),  # 4:5: the pixel cap, not the long side, binds
        ((5000, 2000), (1280, 512)),  # 2.5:1: the long side binds
    ],
)
def test_output_size(shown, expected):
    w, h = output_size(*shown)
    assert (w, h) == expected
    assert w * h <= 1280 * 720 and math.isclose(w / h, shown[0] / shown[1], rel_tol=0.01)
