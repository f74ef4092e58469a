"""Benchmark upload validation on the biggest legitimate uploads, and on a decompression bomb.

Run from the repository root:  .venv/bin/python bench/validate.py [--runs N]

What is measured: `validate_portrait` on a noisy 12-megapixel JPEG just under 10 MB, then
`validate_audio` on a 128 kbps MP3 just under 5 MB and under 300 s (the "pair", one upload of
each, as a user creating a job sends them), and `validate_portrait` refusing a 30000×30000 PNG.
Inputs are files on disk, as Django's TemporaryUploadedFile leaves large uploads. That JPEG is
upright and untagged, so it is stored as its own compressed data; for comparison the same photo
with an EXIF orientation (as phones write them) is timed too: that one is decoded and re-encoded.

How: every run is a fresh Python subprocess that sets up Django, validates one small portrait
and one short voice-over (warming up, as a running server is), then starts the clock. Time is
wall-clock around the validate calls. Peak memory is that child's
`resource.getrusage(RUSAGE_SELF).ru_maxrss`: the whole Python process, Django included. The
parent stays small and never imports Django, because Linux carries a parent's peak RSS over
into a forked child's ru_maxrss. The ffmpeg processes validation starts are reported apart
(RUSAGE_CHILDREN: the largest of them). Figures are medians over the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "avatarsite.settings")

TARGET_PAIR_SECONDS = 0.3
TARGET_PAIR_MB = 150
TARGET_BOMB_SECONDS = 0.1
AUDIO_SECONDS = 298  # 128 kbps: about 4.6 MB, legitimately under 5 MB and 300 s
JPEG_SIZE = (4000, 3000)  # a 12-megapixel phone photo


def setup_django() -> None:
    import django

    django.setup()


def make_inputs(workdir: Path) -> None:
    """The inputs: a photo-like JPEG just under 10 MB, an MP3 just under 5 MB, a bomb."""
    import io

    from PIL import Image

    from jobs.ffmpeg import run_ffmpeg
    from jobs.media.limits import AUDIO_MAX_BYTES, PORTRAIT_MAX_BYTES
    from tests.media_corpus import jpeg, make_audio, noisy_photo, png_bomb

    photo = noisy_photo(JPEG_SIZE, sigma=60)
    for quality in range(98, 80, -1):  # the best quality that still fits, like a phone photo
        buffer = io.BytesIO()
        photo.save(buffer, "JPEG", quality=quality)
        if len(buffer.getvalue()) <= PORTRAIT_MAX_BYTES:
            break
    (workdir / "photo.jpg").write_bytes(buffer.getvalue())
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° to display: the pixels must be turned and re-encoded
    app1 = b"Exif\0\0" + exif.tobytes()
    segment = b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1
    (workdir / "photo-rotated.jpg").write_bytes(
        buffer.getvalue()[:2] + segment + buffer.getvalue()[2:]
    )

    mp3 = workdir / "voice.mp3"
    voice = f"sine=frequency=220:duration={AUDIO_SECONDS}:sample_rate=44100"
    hiss = f"anoisesrc=d={AUDIO_SECONDS}:a=0.05:r=44100"
    run_ffmpeg(
        ["-v", "error", "-y", "-f", "lavfi", "-i", voice, "-f", "lavfi", "-i", hiss]
        + ["-filter_complex", "amix=inputs=2,aformat=channel_layouts=stereo"]
        + ["-c:a", "libmp3lame", "-b:a", "128k", str(mp3)],
        timeout=120,
    )
    assert mp3.stat().st_size <= AUDIO_MAX_BYTES, mp3.stat().st_size

    (workdir / "bomb.png").write_bytes(png_bomb(30000, 30000))
    (workdir / "warm.jpg").write_bytes(jpeg())
    make_audio(workdir / "warm.mp3", seconds=3)


def measure(mode: str, workdir: Path) -> dict[str, float]:
    """Run inside a fresh child: warm up, validate, time it, report this process's peak."""
    from jobs.ffmpeg import decoded_audio_seconds
    from jobs.media.audio import validate_audio
    from jobs.media.limits import MediaError
    from jobs.media.portraits import validate_portrait

    validate_portrait(workdir / "warm.jpg")
    validate_audio(workdir / "warm.mp3", max_seconds=300)
    timings: dict[str, float] = {}
    if mode == "pair":
        started = time.perf_counter()
        validate_portrait(workdir / "photo.jpg")
        timings["jpeg"] = time.perf_counter() - started
        started = time.perf_counter()
        validate_audio(workdir / "voice.mp3", max_seconds=300)
        timings["mp3"] = time.perf_counter() - started
    elif mode == "bomb":
        started = time.perf_counter()
        try:
            validate_portrait(workdir / "bomb.png")
        except MediaError:
            timings["bomb"] = time.perf_counter() - started
        else:
            raise SystemExit("the bomb was accepted")
    elif mode == "rotated":
        started = time.perf_counter()
        validate_portrait(workdir / "photo-rotated.jpg")
        timings["rotated"] = time.perf_counter() - started
    elif mode == "full-decode":
        started = time.perf_counter()
        decoded_audio_seconds(workdir / "voice.mp3")
        timings["full_decode"] = time.perf_counter() - started
    elif mode != "baseline":
        raise SystemExit(f"unknown mode {mode}")
    timings["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    timings["ffmpeg_peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return timings


def run_child(mode: str, workdir: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(workdir)],
        capture_output=True,
        check=True,
        cwd=ROOT,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1]) if out.strip() else {}


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        setup_django()
        mode, workdir = args.child[0], Path(args.child[1])
        if mode == "make":
            make_inputs(workdir)
        else:
            print(json.dumps(measure(mode, workdir)))
        return

    with tempfile.TemporaryDirectory(prefix="bench-validate-") as tmp:
        workdir = Path(tmp)
        run_child("make", workdir)
        jpeg_mb = (workdir / "photo.jpg").stat().st_size / 2**20
        mp3_mb = (workdir / "voice.mp3").stat().st_size / 2**20
        w, h = JPEG_SIZE
        print(f"inputs: JPEG {w}×{h} {jpeg_mb:.2f} MB, MP3 {AUDIO_SECONDS} s {mp3_mb:.2f} MB")
        baseline = [run_child("baseline", workdir) for _ in range(3)]
        pair = [run_child("pair", workdir) for _ in range(args.runs)]
        bomb = [run_child("bomb", workdir) for _ in range(args.runs)]
        full_decode = [run_child("full-decode", workdir) for _ in range(3)]
        rotated = [run_child("rotated", workdir) for _ in range(3)]

    jpeg_s, mp3_s = median(pair, "jpeg"), median(pair, "mp3")
    pair_s = statistics.median(r["jpeg"] + r["mp3"] for r in pair)
    peak, bomb_s = median(pair, "peak_mb"), median(bomb, "bomb")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"runs: {args.runs} fresh processes each, medians; load average {load}")
    print(f"python process after django.setup() and warm-up: {median(baseline, 'peak_mb'):.0f} MB")
    print(f"largest ffmpeg child during the pair: {median(pair, 'ffmpeg_peak_mb'):.0f} MB")
    print(f"bomb run peak: {median(bomb, 'peak_mb'):.0f} MB")
    print(
        f"for comparison, a full PCM decode of the MP3 (decoded_audio_seconds): "
        f"{median(full_decode, 'full_decode'):.2f} s"
    )
    print(
        f"for comparison, the JPEG with EXIF orientation 6 (decoded and re-encoded): "
        f"{median(rotated, 'rotated'):.2f} s"
    )
    for label, ok in (
        (f"pair under {TARGET_PAIR_SECONDS} s", pair_s < TARGET_PAIR_SECONDS),
        (f"pair peak under {TARGET_PAIR_MB} MB", peak < TARGET_PAIR_MB),
        (f"bomb under {TARGET_BOMB_SECONDS} s", bomb_s < TARGET_BOMB_SECONDS),
    ):
        print(f"target {label}: {'met' if ok else 'MISSED'}")
    print(
        f"validate: pair {pair_s:.2f} s (jpeg {jpeg_s:.2f} s, mp3 {mp3_s:.2f} s), "
        f"peak {peak:.0f} MB; bomb {bomb_s:.4f} s"
    )


if __name__ == "__main__":
    main()
