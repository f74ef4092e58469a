"""Benchmark the draft renderer against its targets: breathing drafts at least 10x real time;
lip-synced drafts at least 8x real time for 60 s of audio, under 400 MB at their peak.

Run from the repository root:  .venv/bin/python bench/draft.py [--runs N]

What is measured: `render_draft` end to end (audio length check, portrait preparation, both
ffmpeg runs, the final probe) on a photo-like 1024x1280 JPEG portrait with 10 s and with 60 s
of a 44.1 kHz stereo 128 kbit/s MP3 voice-over, each in a fresh work directory. One warm-up
render first (imports, page cache), then N timed runs per length. Figures are wall-clock
medians; "x real time" is audio seconds over render seconds. The load average and the CPU
seconds a render takes (this process and its ffmpeg children) are printed too: the machine may
be shared, and a busy neighbour shows up in wall time but hardly in CPU time (on an idle
2-core machine the wall time falls between half the CPU time and all of it).

Lip-synced drafts: skimage's astronaut (a public-domain photograph; scikit-image is a dev
dependency) at the same 1024x1280 with 10 s, 60 s and 300 s of the same voice-over, each render
in a fresh child process, so its peak memory is its own: the larger of the Python process's
peak RSS and ffmpeg's (they run side by side, so their sum is printed too). Medians of N runs
for 10 s and 60 s; 300 s runs once. Skipped with a message when the face models are absent.

The last line printed is the summary, e.g.
    draft: 10 s audio 14.2x real time (0.70 s), 60 s audio 16.8x (3.57 s), median of 5;
    lip-synced: 10 s 8.1x, 60 s 9.7x, 300 s 9.9x, peak 266 MB
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image, ImageChops, ImageDraw, ImageFilter  # noqa: E402

from jobs.engines.render import render_draft  # noqa: E402
from jobs.ffmpeg import run_ffmpeg  # noqa: E402

TARGET_MULTIPLE = 10.0
LENGTHS = (10, 60)  # seconds of audio
LIP_TARGET_MULTIPLE = 8.0  # for 60 s
LIP_TARGET_MB = 400
LIP_LENGTHS = (10, 60, 300)
PORTRAIT_SIZE = (1024, 1280)


def make_portrait(path: Path) -> Path:
    """A photo-like portrait: soft background, a face, textured hair, sensor grain.

    Grain and texture matter: a flat synthetic image would flatter the H.264 encoder.
    """
    w, h = PORTRAIT_SIZE
    image = Image.linear_gradient("L").resize(PORTRAIT_SIZE)
    image = Image.merge(
        "RGB", (image, image.point(lambda v: 90 + v // 3), Image.new("L", PORTRAIT_SIZE, 140))
    )
    draw = ImageDraw.Draw(image)
    draw.ellipse((w * 0.15, h * 0.62, w * 0.85, h * 1.2), fill=(40, 60, 110))  # shoulders
    draw.ellipse((w * 0.28, h * 0.12, w * 0.72, h * 0.45), fill=(60, 40, 30))  # hair
    draw.ellipse((w * 0.32, h * 0.2, w * 0.68, h * 0.62), fill=(225, 185, 160))  # face
    for x in (0.42, 0.58):
        draw.ellipse((w * (x - 0.03), h * 0.36, w * (x + 0.03), h * 0.40), fill=(40, 30, 30))
    draw.arc((w * 0.43, h * 0.45, w * 0.57, h * 0.54), 20, 160, fill=(150, 60, 60), width=6)
    image = image.filter(ImageFilter.GaussianBlur(2))
    texture = Image.effect_noise((w // 4, h // 4), 60).resize(PORTRAIT_SIZE, Image.BICUBIC)
    image = Image.blend(image, ImageChops.overlay(image, texture.convert("RGB")), 0.35)
    grain = Image.effect_noise(PORTRAIT_SIZE, 12).convert("RGB")
    image = Image.blend(image, ImageChops.overlay(image, grain), 0.3)
    image.save(path, "JPEG", quality=90)
    return path


def make_voice_over(path: Path, seconds: int) -> Path:
    """Speech-like sound: a tone and noise, chopped into syllables, as a 128 kbit/s MP3."""
    graph = (
        f"sine=frequency=180:duration={seconds}[tone];"
        f"anoisesrc=duration={seconds}:amplitude=0.2:color=pink[noise];"
        "[tone][noise]amix=inputs=2,tremolo=f=4:d=0.9,aformat=channel_layouts=stereo"
    )
    run_ffmpeg(
        ["-v", "error", "-filter_complex", graph, "-ar", "44100", "-b:a", "128k", str(path)],
        timeout=60,
    )
    return path


def cpu_seconds() -> float:
    """CPU time used so far by this process and the ffmpeg processes it has waited for."""
    own, children = (
        resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_render(portrait: Path, audio: Path, scratch: Path) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one render into a fresh work directory."""
    workdir = scratch / "work"
    cpu, started = cpu_seconds(), time.perf_counter()
    # The breathing draft as it is without a face (this portrait's drawn face is found).
    render_draft(portrait=portrait, audio=audio, workdir=workdir, lip_sync=False)
    elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    shutil.rmtree(workdir)
    return elapsed, cpu


def make_face_portrait(path: Path) -> Path | None:
    """The astronaut's head and shoulders at PORTRAIT_SIZE, or None without scikit-image."""
    try:
        from skimage.data import astronaut
    except ImportError:
        return None
    photo = Image.fromarray(astronaut()).crop((80, 20, 400, 420))
    photo.resize(PORTRAIT_SIZE, Image.Resampling.BICUBIC).save(path, "JPEG", quality=90)
    return path


def watch_children_peak(stop: threading.Event, peak: list[float]) -> None:
    """The largest peak RSS (VmHWM) of this process's children, read from /proc every 20 ms.

    getrusage(RUSAGE_CHILDREN) would count the Python image a child had before it became
    ffmpeg, which is as big as this process."""
    me = os.getpid()
    while not stop.wait(0.02):
        for task in Path(f"/proc/{me}/task").iterdir():
            with contextlib.suppress(OSError):
                for pid in (task / "children").read_text().split():
                    status = Path(f"/proc/{pid}/status").read_text()
                    if "ffmpeg" not in Path(f"/proc/{pid}/cmdline").read_text():
                        continue
                    for line in status.splitlines():
                        if line.startswith("VmHWM:"):
                            peak[0] = max(peak[0], int(line.split()[1]) / 1024)


def lip_child(portrait: Path, audio: Path, workdir: Path) -> None:
    """One lip-synced render in this (fresh) process; prints its figures as JSON."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "avatarsite.settings")
    django.setup()
    stop, peak = threading.Event(), [0.0]
    watcher = threading.Thread(target=watch_children_peak, args=(stop, peak), daemon=True)
    watcher.start()
    started, cpu = time.perf_counter(), cpu_seconds()
    result = render_draft(portrait=portrait, audio=audio, workdir=workdir)
    elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    stop.set()
    watcher.join()
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    ffmpeg = peak[0]
    figures = {"seconds": elapsed, "cpu": cpu, "python_mb": own, "ffmpeg_mb": ffmpeg}
    print(json.dumps({**figures, "note": result.note}))


def time_lip_render(portrait: Path, audio: Path, scratch: Path) -> dict[str, float]:
    workdir = scratch / "lip-work"
    out = subprocess.run(
        [sys.executable, __file__, "--lip-child", str(portrait), str(audio), str(workdir)],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    shutil.rmtree(workdir, ignore_errors=True)
    figures = json.loads(out.strip().splitlines()[-1])
    if figures["note"]:
        raise SystemExit(f"the lip-synced benchmark rendered no lips: {figures['note']}")
    return figures


def lip_synced(scratch: Path, voices: dict[int, Path], runs: int) -> str:
    """Lip-synced figures, printed per length; returns the summary's part."""
    from jobs.lipsync.face import models_present

    portrait = make_face_portrait(scratch / "astronaut.jpg")
    if portrait is None or not models_present():
        print("lip-synced drafts skipped: scikit-image or the face models (make setup) missing")
        return "lip-synced: skipped"
    multiples, peaks = {}, []
    for seconds in LIP_LENGTHS:
        audio = voices.get(seconds) or make_voice_over(scratch / f"voice-{seconds}.mp3", seconds)
        results = [
            time_lip_render(portrait, audio, scratch) for _ in range(runs if seconds < 300 else 1)
        ]
        median = statistics.median(r["seconds"] for r in results)
        multiples[seconds] = seconds / median
        cpu = statistics.median(r["cpu"] for r in results)
        python_mb = max(r["python_mb"] for r in results)
        ffmpeg_mb = max(r["ffmpeg_mb"] for r in results)
        peaks.append(python_mb + ffmpeg_mb)
        times = ", ".join(f"{r['seconds']:.2f}" for r in results)
        print(
            f"lip-synced {seconds:>3} s audio: runs {times} s; median {median:.2f} s = "
            f"{multiples[seconds]:.1f}x real time; CPU {cpu:.2f} s; "
            f"peak RSS Python {python_mb:.0f} MB + "
            f"ffmpeg {ffmpeg_mb:.0f} MB = {python_mb + ffmpeg_mb:.0f} MB"
        )
    met = multiples[60] >= LIP_TARGET_MULTIPLE and max(peaks) < LIP_TARGET_MB
    print(
        "lip-synced target met"
        if met
        else f"LIP-SYNCED TARGET MISSED: {LIP_TARGET_MULTIPLE:.0f}x for 60 s, < {LIP_TARGET_MB} MB"
    )
    return (
        "lip-synced: "
        + ", ".join(f"{s} s {m:.1f}x" for s, m in multiples.items())
        + f", peak {max(peaks):.0f} MB"
    )


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--lip-child":
        lip_child(*(Path(a) for a in sys.argv[2:]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per audio length (>= 3)")
    parser.add_argument("--lip-runs", type=int, default=3, help="lip-synced runs (10 s, 60 s)")
    args = parser.parse_args()
    runs, lip_runs = max(3, args.runs), max(1, args.lip_runs)

    with tempfile.TemporaryDirectory(prefix="bench-draft-") as tmp:
        scratch = Path(tmp)
        portrait = make_portrait(scratch / "portrait.jpg")
        voices = {s: make_voice_over(scratch / f"voice-{s}.mp3", s) for s in LENGTHS}
        time_render(portrait, voices[LENGTHS[0]], scratch)  # warm-up
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        medians = {}
        for seconds, audio in voices.items():
            results = [time_render(portrait, audio, scratch) for _ in range(runs)]
            times, cpus = [r[0] for r in results], [r[1] for r in results]
            medians[seconds] = statistics.median(times)
            print(
                f"{seconds:>3} s audio: runs {', '.join(f'{t:.2f}' for t in times)} s; "
                f"median {medians[seconds]:.2f} s = {seconds / medians[seconds]:.1f}x real time; "
                f"CPU {statistics.median(cpus):.2f} s a render"
            )
        lips = lip_synced(scratch, voices, lip_runs)
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    short, long = LENGTHS
    worst = min(s / medians[s] for s in LENGTHS)
    print("target met" if worst >= TARGET_MULTIPLE else f"TARGET MISSED: {TARGET_MULTIPLE:.0f}x")
    print(
        f"draft: {short} s audio {short / medians[short]:.1f}x real time ({medians[short]:.2f} s), "
        f"{long} s audio {long / medians[long]:.1f}x ({medians[long]:.2f} s), median of {runs}; "
        f"{lips}"
    )


if __name__ == "__main__":
    main()
