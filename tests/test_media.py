"""Upload validation: every hostile file refused with its own message, every valid one accepted
and normalised. The corpus is generated (tests/media_corpus.py), once per session."""

from __future__ import annotations

import hashlib
import io
import random
import time
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import File
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile
from PIL import Image, ImageStat

from jobs.media.audio import ValidAudio, _mp3_frame_seconds, _packet_seconds, validate_audio
from jobs.media.limits import AUDIO_MAX_BYTES, PORTRAIT_MAX_BYTES, PROMPT_MAX_CHARS, MediaError
from jobs.media.names import display_name
from jobs.media.portraits import (
    ValidPortrait,
    _encode_portrait,
    _stripped_jpeg,
    _TooDetailed,
    validate_portrait,
)
from jobs.media.prompts import validate_prompt
from tests.media_corpus import (
    HOSTILE,
    HTML,
    MP3_VARIANTS,
    VALID,
    Case,
    Corpus,
    cut_mp3_between_frames,
    encode,
    exif_rotated,
    face,
    jpeg,
    jpeg_with_extras,
    make_mp3,
    make_mp3_with_cover,
    noisy_photo,
    png_16bit_gray,
    png_bomb,
    srgb_profile,
    truncated,
)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return Corpus(tmp_path_factory.mktemp("media-corpus"))


def validate(case: Case, upload: Any) -> ValidPortrait | ValidAudio:
    if case.kind == "portrait":
        return validate_portrait(upload, name=case.name)
    return validate_audio(upload, name=case.name, max_seconds=case.max_seconds)


@pytest.fixture(scope="session")
def refusals(corpus: Corpus) -> dict[str, list[str] | None]:
    """Every hostile case validated once: its messages, or None if it was (wrongly) accepted."""
    results: dict[str, list[str] | None] = {}
    for case in HOSTILE:
        upload = SimpleUploadedFile("upload.bin", corpus.bytes_of(case))
        try:
            validate(case, upload)
        except MediaError as exc:
            results[case.id] = exc.messages
        else:
            results[case.id] = None
    return results


# ------------------------------------------------------------------------ hostile corpus


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in HOSTILE])
def test_hostile_file_is_refused_with_its_own_message(
    case: Case, refusals: dict[str, list[str] | None]
) -> None:
    messages = refusals[case.id]
    assert messages is not None, f"{case.id} was accepted"
    assert len(messages) == 1, messages
    assert case.message in messages[0]
    others = [c.id for c in HOSTILE if c.id != case.id and c.message in messages[0]]
    assert not others, f"{case.id}'s message also matches {others}"


def test_corpus_is_big_and_every_refusal_reads_differently(
    refusals: dict[str, list[str] | None],
) -> None:
    assert len(HOSTILE) >= 30
    assert len({c.id for c in HOSTILE}) == len(HOSTILE)
    messages = [m[0] for m in refusals.values() if m]
    assert len(set(messages)) == len(messages) == len(HOSTILE)


def test_two_sizing_problems_are_reported_together() -> None:
    with pytest.raises(MediaError) as caught:
        validate_portrait(SimpleUploadedFile("x.jpg", jpeg((280, 900))))
    assert caught.value.messages == [
        "Portrait is 280×900 px: both sides must be at least 300 px. Use a larger photo.",
        "Portrait is 280×900 px, 1:3.2 (too tall): the shape must be between 1:2.5 (tall) "
        "and 2.5:1 (wide). Crop it closer to a square.",
    ]


# --------------------------------------------------------------------------- valid files


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in VALID if c.kind == "portrait"])
def test_valid_portrait_is_accepted_and_reencoded_clean(case: Case, corpus: Corpus) -> None:
    original = corpus.bytes_of(case)
    valid = validate_portrait(SimpleUploadedFile("upload.bin", original), name=case.name)

    expected_format = case.expect.get("format", "jpeg")
    assert valid.format == expected_format
    assert valid.ext == case.expect.get("ext", "jpg" if expected_format == "jpeg" else "png")
    assert valid.size == len(valid.content)
    assert valid.sha256 == hashlib.sha256(valid.content).hexdigest()
    assert valid.name == case.name
    stored = Image.open(io.BytesIO(valid.content))
    stored.load()
    assert stored.format == expected_format.upper()
    assert stored.size == (valid.width, valid.height)
    if "width" in case.expect:
        assert (valid.width, valid.height) == (case.expect["width"], case.expect["height"])
    assert stored.mode == case.expect.get("mode", "RGB")
    assert not stored.getexif()
    for key in ("exif", "icc_profile", "xmp", "XML:com.adobe.xmp", "comment", "Comment"):
        assert key not in stored.info
    assert b"Secret" not in valid.content


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in VALID if c.kind == "audio"])
def test_valid_audio_is_accepted_as_uploaded(case: Case, corpus: Corpus) -> None:
    original = corpus.bytes_of(case)
    valid = validate_audio(
        SimpleUploadedFile("upload.bin", original), name=case.name, max_seconds=case.max_seconds
    )

    assert valid.content == original
    assert valid.size == len(original)
    assert valid.sha256 == hashlib.sha256(original).hexdigest()
    if "format" in case.expect:
        assert valid.format == case.expect["format"]
    assert valid.ext == case.expect.get("ext", valid.format)
    if "duration" in case.expect:
        assert valid.duration == pytest.approx(case.expect["duration"], abs=0.1)
    assert valid.name == case.expect.get("shown", case.name)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_rotated_photo_is_stored_upright_without_exif(fmt: str) -> None:
    valid = validate_portrait(SimpleUploadedFile(f"phone.{fmt.lower()}", exif_rotated(fmt)))

    assert (valid.width, valid.height) == (300, 400)  # stored 400×300, shown 300×400
    stored = Image.open(io.BytesIO(valid.content))
    red, green, blue = stored.getpixel((20, 20))
    assert red > 180 and blue < 80  # the red corner is back at the top left
    assert stored.getpixel((250, 350))[2] > 150
    assert not stored.getexif()
    assert b"SecretCameraMaker" not in valid.content


def test_jpeg_with_html_appended_is_stored_without_the_html() -> None:
    polyglot = jpeg() + HTML

    valid = validate_portrait(SimpleUploadedFile("face.jpg", polyglot))

    assert valid.format == "jpeg"
    assert b"<script" not in valid.content and b"<html" not in valid.content
    assert valid.content.endswith(b"\xff\xd9")


def _pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.tobytes()


def _quantization(data: bytes) -> Any:
    with Image.open(io.BytesIO(data)) as image:
        return image.quantization  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("build", "kept_segments"),
    [
        pytest.param(lambda: jpeg(), ["APP0"], id="baseline"),
        pytest.param(lambda: jpeg(progressive=True), ["APP0"], id="progressive"),
        pytest.param(lambda: jpeg(subsampling=0, restart_marker_blocks=7), ["APP0"], id="444-rst"),
        pytest.param(lambda: jpeg(keep_rgb=True), ["APP14"], id="rgb-coded-adobe"),
        pytest.param(lambda: jpeg() + HTML, ["APP0"], id="html-appended"),
        pytest.param(lambda: jpeg_with_extras(), ["APP0"], id="all-extras"),
        pytest.param(lambda: jpeg_with_extras(progressive=True), ["APP0"], id="all-extras-prog"),
    ],
)
def test_upright_srgb_jpeg_keeps_its_compressed_data_without_metadata(
    build: Any, kept_segments: list[str]
) -> None:
    original = build()

    valid = validate_portrait(SimpleUploadedFile("face.jpg", original))

    assert _pixels(valid.content) == _pixels(original)  # not re-encoded: no generation loss
    assert _quantization(valid.content) == _quantization(original)
    stored = Image.open(io.BytesIO(valid.content))
    assert [name for name, _ in stored.applist] == kept_segments  # type: ignore[attr-defined]
    if kept_segments == ["APP0"]:  # JFIF as libjpeg needs it, without a thumbnail
        assert stored.applist[0][1][12:14] == b"\0\0"  # type: ignore[attr-defined]
    assert not stored.getexif() and "comment" not in stored.info
    assert "icc_profile" not in stored.info
    assert b"Secret" not in valid.content and b"<html" not in valid.content
    assert valid.content.startswith(b"\xff\xd8") and valid.content.endswith(b"\xff\xd9")
    assert (valid.width, valid.height) == stored.size == (480, 600)
    assert valid.size == len(valid.content) <= len(original)


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: exif_rotated("JPEG"), id="rotated"),
        pytest.param(lambda: jpeg(icc_profile=srgb_profile("Wide")), id="foreign-profile"),
        pytest.param(lambda: encode(face(mode="L"), "JPEG", quality=90), id="greyscale"),
        pytest.param(lambda: encode(face(mode="CMYK"), "JPEG", quality=90), id="cmyk"),
        pytest.param(lambda: jpeg().replace(b"\xff\xc0", b"\xff\xc1", 1), id="extended-sof1"),
    ],
)
def test_jpeg_that_needs_changing_is_decoded_and_reencoded(build: Any) -> None:
    original = build()

    valid = validate_portrait(SimpleUploadedFile("face.jpg", original))

    assert _quantization(valid.content) != _quantization(original)  # Pillow's own tables
    assert Image.open(io.BytesIO(valid.content)).mode == "RGB"


def _two_frames(data: bytes) -> bytes:
    frame = data.index(b"\xff\xc0")
    return data.replace(b"\xff\xda", data[frame : frame + 19] + b"\xff\xda", 1)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda d: truncated(d, 0.7), id="no-end-marker"),
        pytest.param(lambda d: d[:2] + b"junk" + d[2:], id="bytes-between-segments"),
        pytest.param(lambda d: d.replace(b"\xff\xc0", b"\xff\xc9", 1), id="arithmetic-coded"),
        pytest.param(lambda d: d.replace(b"\xff\xc0\x00\x11\x08", b"\xff\xc0\x00\x11\x0c"),
                     id="12-bit"),
        pytest.param(_two_frames, id="two-frames"),
        pytest.param(lambda d: d[: d.index(b"\xff\xda")] + b"\xff\xd9", id="no-scan"),
    ],
)  # fmt: skip
def test_jpeg_laid_out_unexpectedly_is_not_stripped(damage: Any) -> None:
    assert _stripped_jpeg(jpeg()) is not None
    assert _stripped_jpeg(damage(jpeg())) is None  # so it is decoded and judged in full


def _scan_start(data: bytes) -> int:
    sos = data.index(b"\xff\xda")
    return sos + 2 + int.from_bytes(data[sos + 2 : sos + 4])


def _patched(data: bytes, at: int, value: bytes) -> bytes:
    return data[:at] + value + data[at + len(value) :]


def _random_bytes_in_scan(data: bytes, seed: int) -> bytes:
    rng = random.Random(seed)
    start = rng.randrange(_scan_start(data), len(data) - 200)
    return _patched(data, start, bytes(rng.randrange(255) for _ in range(100)))  # no 0xFF


# Damage a JPEG's structure stays intact through, so it is stripped and decoded at 1/8 scale.
JPEG_DAMAGE = {
    "undefined-huffman-table": lambda d: _patched(d, d.index(b"\xff\xda") + 6, b"\x33"),
    "bad-progression": lambda d: _patched(d, d.index(b"\xff\xda") + 11, b"\x50"),
    "bogus-huffman-counts": lambda d: _patched(d, d.index(b"\xff\xc4") + 5, b"\xff" * 16),
    "undefined-quant-table": lambda d: _patched(d, d.index(b"\xff\xc0") + 12, b"\x03"),
    "scan-data-zeroed": lambda d: d[: _scan_start(d)] + bytes(len(d) - 2 - _scan_start(d)) + d[-2:],
    "scans-cut-end-kept": lambda d: d[: _scan_start(d) + 3000] + d[-2:],
    "random-bytes-1": lambda d: _random_bytes_in_scan(d, 1),
    "random-bytes-2": lambda d: _random_bytes_in_scan(d, 2),
}


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
@pytest.mark.parametrize("damage", sorted(JPEG_DAMAGE))
def test_damaged_jpeg_is_judged_as_a_full_decode_judges_it(progressive: bool, damage: str) -> None:
    """A stripped JPEG is decoded at 1/8 scale: the same entropy-coded data is read, so it must
    pass or fail exactly when decoding the upload in full does, with the same message."""
    data = jpeg(progressive=progressive)
    if progressive:
        data = data.replace(b"\xff\xc2", b"\xff\xc0", 1)  # the patches find the frame as SOF0
    data = JPEG_DAMAGE[damage](data)
    if progressive:
        data = data.replace(b"\xff\xc0", b"\xff\xc2", 1)
    assert _stripped_jpeg(data) is not None
    try:
        Image.open(io.BytesIO(data)).load()
    except OSError:
        full_decode_passes = False
    else:
        full_decode_passes = True

    try:
        validate_portrait(SimpleUploadedFile("face.jpg", data))
    except MediaError as exc:
        assert not full_decode_passes, exc.messages
        assert exc.messages == [
            "Portrait file is damaged: its JPEG data cannot be decoded. "
            "Export it again from your photo app."
        ]
    else:
        assert full_decode_passes


def test_truncated_progressive_jpeg_is_refused_as_incomplete() -> None:
    with pytest.raises(MediaError, match="Portrait file is incomplete: the JPEG data stops"):
        validate_portrait(SimpleUploadedFile("face.jpg", truncated(jpeg(progressive=True), 0.8)))


def test_16_bit_png_is_scaled_down_not_clipped() -> None:
    valid = validate_portrait(SimpleUploadedFile("deep.png", png_16bit_gray()))

    mean = ImageStat.Stat(Image.open(io.BytesIO(valid.content)).convert("L")).mean[0]
    assert 110 < mean < 145  # a 0..65535 ramp is mid-grey on average, not white


def test_bomb_is_refused_from_its_header_in_milliseconds() -> None:
    bomb = png_bomb()
    upload = SimpleUploadedFile("bomb.png", bomb)
    started = time.perf_counter()
    with pytest.raises(MediaError, match="900 megapixels"):
        validate_portrait(upload)
    assert time.perf_counter() - started < 0.5  # decoding it would take seconds and GBs


# ------------------------------------------------------------------- reading the uploads


class CountingFile(File):
    """A real Django File over bytes that records how much was read and may hide its size."""

    def __init__(self, data: bytes, name: str, *, knows_size: bool = True) -> None:
        super().__init__(io.BytesIO(data), name)
        self.bytes_read = 0
        self.knows_size = knows_size

    def read(self, size: int = -1) -> bytes:
        chunk = self.file.read(size)
        self.bytes_read += len(chunk)
        return chunk

    @property
    def size(self) -> int | None:  # type: ignore[override]
        return len(self.file.getvalue()) if self.knows_size else None


def test_oversized_upload_is_refused_without_reading_it() -> None:
    upload = CountingFile(b"\xff\xd8\xff" + b"\0" * (20 * 1024 * 1024), "huge.jpg")

    with pytest.raises(MediaError, match="20.0 MB: the limit is 10 MB"):
        validate_portrait(upload)
    assert upload.bytes_read == 0


@pytest.mark.parametrize(
    ("validator", "limit", "name"),
    [
        pytest.param(validate_portrait, PORTRAIT_MAX_BYTES, "huge.jpg", id="portrait"),
        pytest.param(validate_audio, AUDIO_MAX_BYTES, "huge.mp3", id="audio"),
    ],
)
def test_upload_of_unknown_size_is_read_at_most_one_byte_past_the_limit(
    validator: Any, limit: int, name: str
) -> None:
    upload = CountingFile(b"\0" * (3 * limit), name, knows_size=False)

    with pytest.raises(MediaError, match=f"larger than {limit // (1024 * 1024)} MB"):
        validator(upload)
    assert upload.bytes_read == limit + 1


@pytest.mark.parametrize("variant", sorted(MP3_VARIANTS))
def test_mp3_frames_are_counted_as_ffmpeg_counts_its_packets(variant: str, tmp_path: Path) -> None:
    path = make_mp3(tmp_path / "voice.mp3", MP3_VARIANTS[variant])

    counted = _mp3_frame_seconds(path.read_bytes())

    assert counted is not None
    assert counted == pytest.approx(_packet_seconds(path), abs=2e-6)  # ffmpeg prints µs


def test_mp3_with_cover_art_is_counted_as_ffmpeg_counts_it(corpus: Corpus) -> None:
    data = corpus.made("cover.mp3", make_mp3_with_cover)

    counted = _mp3_frame_seconds(data)

    assert counted == pytest.approx(_packet_seconds(corpus.workdir / "cover.mp3"), abs=2e-6)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda d: d[:-100], id="last-frame-cut"),
        pytest.param(lambda d: d + b"\0" * 300, id="junk-after"),
        pytest.param(lambda d: d[:5000] + b"junk" + d[5000:], id="junk-inside"),
        pytest.param(lambda d: d + b"APETAGEX" + b"\0" * 24, id="ape-tag"),
    ],
)
def test_mp3_that_is_not_a_clean_run_of_frames_is_left_to_ffmpeg(
    change: Any, corpus: Corpus
) -> None:
    assert _mp3_frame_seconds(corpus.audio("mp3")) is not None
    assert _mp3_frame_seconds(change(corpus.audio("mp3"))) is None


def test_mp2_is_not_counted_as_mp3(corpus: Corpus) -> None:
    assert _mp3_frame_seconds(corpus.audio("mp2")) is None


def test_mp3_cut_between_frames_is_refused_as_cut_off(corpus: Corpus, tmp_path: Path) -> None:
    cut = cut_mp3_between_frames(corpus.audio("mp3", 4))
    path = tmp_path / "cut.mp3"
    path.write_bytes(cut)
    assert _mp3_frame_seconds(cut) == pytest.approx(_packet_seconds(path), abs=2e-6)

    with pytest.raises(MediaError, match="the file says it lasts 4.0 s but only 2.0 s"):
        validate_audio(SimpleUploadedFile("cut.mp3", cut))


def test_mp3_with_junk_inside_is_measured_by_ffmpeg(corpus: Corpus) -> None:
    data = corpus.audio("mp3", 4)
    junk = data[:5000] + b"junk" + data[5000:]

    valid = validate_audio(SimpleUploadedFile("voice.mp3", junk))

    assert valid.duration == pytest.approx(4.0, abs=0.1)


def test_audio_checks_leave_no_temporary_files(
    settings: Any, tmp_path: Path, corpus: Corpus
) -> None:
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "uploads")
    (tmp_path / "uploads").mkdir()
    good = corpus.audio("mp3")
    cut_off = good[: len(good) // 2]

    validate_audio(SimpleUploadedFile("good.mp3", good))
    with pytest.raises(MediaError, match="cut off"):
        validate_audio(SimpleUploadedFile("cut.mp3", cut_off))

    assert list((tmp_path / "uploads").iterdir()) == []


def test_audio_is_read_from_a_temporary_upload_and_a_path(
    settings: Any, tmp_path: Path, corpus: Corpus
) -> None:
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    data = corpus.audio("wav")
    upload = TemporaryUploadedFile("voice.wav", "audio/wav", len(data), None)
    upload.write(data)
    upload.flush()
    path = tmp_path / "on-disk.wav"
    path.write_bytes(data)

    from_upload = validate_audio(upload)
    from_path = validate_audio(path)

    assert from_upload.content == from_path.content == data
    assert from_upload.name == "voice.wav" and from_path.name == "on-disk.wav"
    assert upload.read() == data  # left at the start, ready to be read again
    upload.close()


def test_portrait_is_read_from_a_path_and_a_django_file(tmp_path: Path) -> None:
    path = tmp_path / "face.jpg"
    path.write_bytes(jpeg())

    with path.open("rb") as fh:
        from_file = validate_portrait(File(fh, name="face.jpg"))
    from_path = validate_portrait(path)

    assert from_file == from_path


def test_audio_limit_defaults_to_the_setting_read_at_call_time(
    settings: Any, corpus: Corpus
) -> None:
    six_seconds = corpus.audio("wav", 6)

    settings.KLING_MAX_AUDIO_SECONDS = 4
    with pytest.raises(MediaError, match="the limit is 4 seconds"):
        validate_audio(SimpleUploadedFile("voice.wav", six_seconds))
    settings.KLING_MAX_AUDIO_SECONDS = 60
    assert validate_audio(SimpleUploadedFile("voice.wav", six_seconds)).duration == (
        pytest.approx(6.0, abs=0.1)
    )


# ---------------------------------------------------------------------------- encoding


def test_png_too_big_after_reencoding_falls_back_to_jpeg() -> None:
    photo = noisy_photo((400, 400))
    png_size = len(_encode_portrait(photo, "png", max_bytes=10**9)[0])

    content, fmt = _encode_portrait(photo, "png", max_bytes=png_size // 2)

    assert fmt == "jpeg"
    assert len(content) <= png_size // 2
    assert Image.open(io.BytesIO(content)).format == "JPEG"


def test_jpeg_quality_steps_down_until_it_fits() -> None:
    photo = noisy_photo((400, 400))
    at_92 = len(_encode_portrait(photo, "jpeg", max_bytes=10**9)[0])

    content, fmt = _encode_portrait(photo, "jpeg", max_bytes=at_92 - 1)

    assert fmt == "jpeg" and len(content) < at_92


def test_portrait_that_cannot_fit_even_as_jpeg_is_refused() -> None:
    with pytest.raises(_TooDetailed):
        _encode_portrait(noisy_photo((400, 400)), "png", max_bytes=1000)


# ------------------------------------------------------------------- names and prompts


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        pytest.param("../../etc/passwd.mp3", "passwd.mp3", id="dot-dot-slash"),
        pytest.param("..\\..\\windows\\win.ini", "win.ini", id="backslashes"),
        pytest.param("C:\\Users\\me\\Desktop\\face.jpg", "face.jpg", id="windows-full-path"),
        pytest.param("/etc/passwd", "passwd", id="absolute"),
        pytest.param("..", "unnamed", id="only-dots"),
        pytest.param("", "unnamed", id="empty"),
        pytest.param("evil\u202egpj.exe", "evilgpj.exe", id="right-to-left-override"),
        pytest.param("line\nbreak\r\x00.jpg", "linebreak.jpg", id="control-characters"),
        pytest.param("  my   face .jpg ", "my face .jpg", id="whitespace"),
    ],
)
def test_display_name_keeps_only_a_safe_base_name(raw: str, shown: str) -> None:
    assert display_name(raw) == shown


def test_display_name_is_trimmed_to_255_keeping_the_extension() -> None:
    shown = display_name("a" * 400 + ".jpeg")

    assert len(shown) == 255 and shown.endswith("a.jpeg")


def test_prompt_of_2500_characters_is_accepted() -> None:
    assert validate_prompt("x" * PROMPT_MAX_CHARS) == "x" * PROMPT_MAX_CHARS


def test_prompt_of_2501_characters_is_refused() -> None:
    with pytest.raises(MediaError) as caught:
        validate_prompt("x" * (PROMPT_MAX_CHARS + 1))

    assert caught.value.messages == [
        "Prompt is 2,501 characters: the limit is 2,500. Shorten it by 1 character."
    ]


def test_prompt_is_stripped_and_browser_line_breaks_count_once() -> None:
    assert validate_prompt(None) == ""
    assert validate_prompt("  smile, then nod \n") == "smile, then nod"
    textarea = "ab\r\n" * 833 + "x"  # 2500 characters as typed, 3333 as sent
    assert validate_prompt(textarea) == "ab\n" * 833 + "x"


def test_media_error_is_a_validation_error_with_plain_messages() -> None:
    error = MediaError("First.", "Second.", code="bad_dimensions")

    assert isinstance(error, ValidationError)
    assert error.messages == ["First.", "Second."]
    assert [e.code for e in error.error_list] == ["bad_dimensions", "bad_dimensions"]
