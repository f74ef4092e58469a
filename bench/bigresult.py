"""Benchmark a worker's memory while a 200 MB Kling result streams into storage.

Run from the repository root:  .venv/bin/python bench/bigresult.py [--runs N] [--mb 200]

What is measured: the growth of a worker process's resident memory while the Kling engine's
download step (`jobs.engines.kling_download.download`, what the worker runs for a job in
DOWNLOADING) fetches a result URL and saves it into the studio's storage: the HTTP download to
the job's temp folder, the probe and poster (ffmpeg, a child process: not counted) and the
copy into storage through Django's storage API. Twice: into an S3 bucket (STORAGE_URL, moto's
server) and, for comparison, into local files (no STORAGE_URL).

How: moto's S3 server (`python -m moto.server`) and a loopback HTTP server that plays Kling's
CDN run as separate processes, so their memory is not counted. The CDN serves, with a
Content-Length, a real 1 s MP4 (moov first, so it probes and gives a poster) followed by a
`free` box of pseudo-random bytes up to the size asked for, generated in 1 MiB chunks on the
fly. A setup child per storage migrates a throw-away SQLite database in a temporary DATA_DIR
and makes one job per run in DOWNLOADING with that URL as its Kling result. Every measured run
is a fresh Python subprocess that sets up Django, imports the engine and touches the storage
(a running worker has), resets the kernel's peak-RSS mark (`/proc/self/clear_refs` 5), runs
the step, and reports VmHWM after minus VmRSS before (and ru_maxrss before/after). The stored
object is then read back from the bucket (or disk) by the parent and checked against the size
and sha256 of what was served. The parent never imports Django. Figures are medians.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable
TARGET_MB = 50
BUCKET = "bench-bigresult"
PREFIX = "media"
KEYS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret"}
CHUNK = 1 << 20
FIGURES = ("seconds", "baseline_mb", "peak_mb", "growth_mb", "maxrss_before_mb", "maxrss_after_mb")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(port: int, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {seconds:g} s")


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise SystemExit(f"no {field} in /proc/self/status")


# --- the body Kling's CDN serves --------------------------------------------------------------


def body_chunks(head: bytes, total: int) -> Iterator[bytes]:
    """`head` (a small MP4), then a top-level `free` box filling the body up to `total` bytes."""
    pad = total - len(head) - 8
    if pad < 0:
        raise SystemExit("the body is smaller than its MP4 head")
    yield head + (pad + 8).to_bytes(4, "big") + b"free"
    block = random.Random(14).randbytes(CHUNK)
    index = 0
    while pad > 0:
        piece = (index.to_bytes(8, "big") + block[8:])[:pad]
        yield piece
        pad -= len(piece)
        index += 1


def body_digest(head: bytes, total: int) -> str:
    digest = hashlib.sha256()
    for chunk in body_chunks(head, total):
        digest.update(chunk)
    return digest.hexdigest()


def serve(head_path: Path, total: int) -> None:
    """The CDN child: GET /result.mp4 answers the body; prints its port."""
    head = head_path.read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/result.mp4":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(total))
            self.end_headers()
            try:
                for chunk in body_chunks(head, total):
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


def make_head(path: Path) -> None:
    """A real 2 s MP4, moov first (so probing and the poster never read past it)."""
    import imageio_ffmpeg

    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi",
         "-i", "testsrc=size=160x120:rate=10:duration=2", "-c:v", "libx264",
         "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path)],
        check=True,
    )  # fmt: skip


# --- the Django children ---------------------------------------------------------------------


def make(workdir: Path, url: str, runs: int) -> None:
    """A database with one DOWNLOADING job per run whose Kling result is `url`."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from jobs.media.audio import validate_audio
    from jobs.media.portraits import validate_portrait
    from jobs.models import AvatarJob, Team
    from jobs.services.assets import asset_store
    from jobs.services.jobs import job_create
    from tests.helpers import make_audio_file, make_portrait_bytes

    call_command("migrate", verbosity=0, interactive=False)
    call_command("createcachetable", verbosity=0)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "face.jpg").write_bytes(make_portrait_bytes())
    voice = make_audio_file(workdir / "voice.mp3", 3.0)
    user = get_user_model().objects.create_user("bench")
    team = Team.objects.get(memberships__user=user, personal=True)
    portrait = asset_store(team=team, user=user, valid=validate_portrait(workdir / "face.jpg"))
    audio = asset_store(team=team, user=user, valid=validate_audio(voice))
    ids = []
    for n in range(runs):
        job = job_create(team=team, user=user, portrait=portrait, audio=audio, mode="std")
        AvatarJob.objects.filter(pk=job.pk).update(
            status=AvatarJob.Status.DOWNLOADING,
            task_id=f"bench-task-{n}",
            source_url=url,
            attempts=0,
            next_attempt_at=None,
        )
        ids.append(job.pk)
    print(json.dumps(ids))


def measure(job_id: int) -> dict[str, Any]:
    """Inside a fresh child: warm up as a running worker is, reset the peak, run the step."""
    from django.core.files.storage import default_storage

    from jobs.engines.kling_download import download
    from jobs.models import AvatarJob

    default_storage.exists("warm-up")  # the storage backend (and its S3 client) exists
    job = AvatarJob.objects.get(pk=job_id)
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = status_kb("VmRSS")
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    download(job)
    seconds = time.monotonic() - started
    peak = status_kb("VmHWM")
    maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    job.refresh_from_db()
    if job.status != AvatarJob.Status.SUCCEEDED:
        raise SystemExit(f"the job ended {job.status}: {job.error_message or 'no message'}")
    location = default_storage.path(job.video.name) if not os.environ.get("STORAGE_URL") else ""
    return {
        "seconds": seconds,
        "baseline_mb": before / 1024,
        "peak_mb": peak / 1024,
        "growth_mb": (peak - before) / 1024,
        "maxrss_before_mb": maxrss_before / 1024,
        "maxrss_after_mb": maxrss_after / 1024,
        "name": job.video.name,
        "path": location,
        "video_size": job.video_size,
    }


def child(args: list[str], env: dict[str, str]) -> Any:
    out = subprocess.run(
        [PY, __file__, "--child", *args], capture_output=True, cwd=ROOT, env=env, text=True
    )
    if out.returncode:
        raise SystemExit(f"child {args[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def stored_digest(result: dict[str, Any], s3_url: str) -> tuple[int, str]:
    """Size and sha256 of the stored video, read back in chunks."""
    digest, size = hashlib.sha256(), 0
    if result["path"]:
        with open(result["path"], "rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return size, digest.hexdigest()
    import boto3

    s3 = boto3.client(
        "s3", endpoint_url=s3_url, region_name="us-east-1",
        aws_access_key_id=KEYS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=KEYS["AWS_SECRET_ACCESS_KEY"],
    )  # fmt: skip
    body = s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/{result['name']}")["Body"]
    for chunk in body.iter_chunks(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def main() -> None:  # noqa: C901  (one measured procedure, read top to bottom)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mb", type=int, default=200, help="the result's size in MiB")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child[0] == "serve":
            serve(Path(args.child[1]), int(args.child[2]))
            return
        import django

        django.setup()
        if args.child[0] == "make":
            make(Path(args.child[1]), args.child[2], int(args.child[3]))
        else:
            print(json.dumps(measure(int(args.child[1]))))
        return

    total = args.mb * 2**20
    procs: list[subprocess.Popen[str]] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-bigresult-"))
    try:
        s3_port = free_port()
        s3_url = f"http://127.0.0.1:{s3_port}"
        procs.append(
            subprocess.Popen(
                [PY, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_for(s3_port)
        import boto3

        boto3.client(
            "s3", endpoint_url=s3_url, region_name="us-east-1",
            aws_access_key_id=KEYS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=KEYS["AWS_SECRET_ACCESS_KEY"],
        ).create_bucket(Bucket=BUCKET)  # fmt: skip

        base = {k: v for k, v in os.environ.items() if not k.startswith(("KLING_", "AWS_"))}
        for name in ("STORAGE_URL", "DATABASE_URL", "REDIS_URL", "MEDIA_ROOT"):
            base.pop(name, None)
        # A Kling key so Kling jobs can be made; no Kling API is called (attempt 1 downloads
        # the URL the job holds), so the base URL points nowhere.
        base.update(
            DJANGO_SETTINGS_MODULE="avatarsite.settings",
            LOG_LEVEL="ERROR",
            KLING_BASE_URL="http://127.0.0.1:9/",
            KLING_API_KEY="bench-unused",
        )
        envs = {
            "s3": {
                **base,
                **KEYS,
                "STORAGE_URL": f"s3://{BUCKET}/{PREFIX}",
                "AWS_S3_ENDPOINT_URL": s3_url,
                "AWS_S3_REGION_NAME": "us-east-1",
                "DATA_DIR": str(tmp / "s3"),
            },
            "local": {**base, "DATA_DIR": str(tmp / "local")},
        }
        head = tmp / "head.mp4"
        make_head(head)
        cdn = subprocess.Popen(
            [PY, __file__, "--child", "serve", str(head), str(total)],
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(cdn)
        assert cdn.stdout is not None
        url = f"http://127.0.0.1:{cdn.stdout.readline().strip()}/result.mp4"
        jobs = {
            mode: child(["make", str(tmp / mode), url, str(args.runs)], env)
            for mode, env in envs.items()
        }
        head_bytes = (tmp / "head.mp4").read_bytes()
        expected = body_digest(head_bytes, total)

        results: dict[str, list[dict[str, Any]]] = {}
        for mode, env in envs.items():
            results[mode] = []
            for job_id in jobs[mode]:
                result = child(["measure", str(job_id)], env)
                size, digest = stored_digest(result, s3_url)
                if size != total or digest != expected or result["video_size"] != total:
                    raise SystemExit(
                        f"{mode}: stored {size} bytes sha256 {digest[:16]}…, served {total} "
                        f"bytes sha256 {expected[:16]}…"
                    )
                results[mode].append(result)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"runs: {args.runs} fresh processes per storage, medians; load average {load}")
    print(f"body: {total} bytes ({args.mb} MiB), sha256 {expected[:16]}…, matched in every run")
    medians: dict[str, float] = {}
    for mode, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in FIGURES}
        medians[mode] = med["growth_mb"]
        each = ", ".join(f"{r['growth_mb']:.1f}" for r in runs)
        ok = "met" if med["growth_mb"] < TARGET_MB else "MISSED"
        print(
            f"{mode}: {total} bytes in {med['seconds']:.2f} s ({total / 2**20 / med['seconds']:.0f}"
            f" MiB/s); RSS baseline {med['baseline_mb']:.1f} MB, peak {med['peak_mb']:.1f} MB, "
            f"growth {med['growth_mb']:.1f} MB (runs: {each}); ru_maxrss "
            f"{med['maxrss_before_mb']:.1f} → {med['maxrss_after_mb']:.1f} MB; "
            f"target under {TARGET_MB} MB: {ok}"
        )
    print(
        f"bigresult: {args.mb} MiB result, RSS growth S3 {medians['s3']:.1f} MB, "
        f"local {medians['local']:.1f} MB"
    )
    if medians["s3"] >= TARGET_MB:
        sys.exit(1)


if __name__ == "__main__":
    main()
