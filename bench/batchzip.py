"""Benchmark the web tier's memory while a batch's "download all" streams 200 videos as one ZIP.

Run from the repository root:
    .venv/bin/python bench/batchzip.py [--runs N] [--videos 200] [--max-mb 5] [--s3]

What is measured: the growth of the gunicorn worker's resident memory while it answers
GET /batches/<id>/videos.zip (jobs/views/batches.py, through the whole middleware stack) for a
batch of 200 succeeded jobs whose results are real files of 2 to 5 MB in the studio's storage
(local files; with --s3 an S3 bucket: moto's server on loopback, a process of its own, so its
memory is not counted), read over HTTP by a client that takes the stream as it comes.

How: a setup child migrates a throw-away SQLite database in a temporary DATA_DIR, makes a user
and a session (the cookie a browser would send), a batch of `--videos` jobs marked succeeded,
each with its own result file of pseudo-random bytes (sizes spread evenly over 2-5 MB, made in
a few seconds, nothing committed), and a small batch of 2 for the warm-up. Each run starts the
web tier exactly as `run_studio --web-only` does (its `web_command`: gunicorn, 2 gthread workers
of 4 threads) in its own process group, downloads the small batch's ZIP a few times so both
workers have imported and run everything once, then resets each worker's peak-RSS mark
(`/proc/<pid>/clear_refs` 5), reads VmRSS, downloads the big ZIP to a temporary file in 1 MiB
reads, and takes VmHWM: the growth is the larger of the two workers' peak minus baseline (the
client's memory is not counted). The file is then opened with zipfile: every video must be
there, stored, at its size. The parent never imports Django. Figures are medians over runs.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable
TARGET_MB = 100
HOST = "127.0.0.1"
READ = 1 << 20
MB = 1 << 20
BUCKET = "bench-batchzip"
KEYS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def proc_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise SystemExit(f"no {field} in /proc/{pid}/status")


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


# --- the Django child ---------------------------------------------------------------------


def make(videos: int, max_mb: int) -> dict[str, Any]:
    """The database, the session, the two batches and their result files."""
    from django.contrib.auth import get_user_model
    from django.core.files.base import ContentFile
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    from jobs.management.commands.run_studio import web_command
    from jobs.media.audio import validate_audio
    from jobs.media.portraits import validate_portrait
    from jobs.models import AvatarJob, Batch, Team
    from jobs.services.assets import asset_store
    from jobs.services.jobs import job_create
    from tests.helpers import make_audio_file, make_portrait_bytes

    call_command("migrate", verbosity=0, interactive=False)
    call_command("createcachetable", verbosity=0)
    work = Path(tempfile.mkdtemp(prefix="inputs-", dir=os.environ["DATA_DIR"]))
    (work / "face.jpg").write_bytes(make_portrait_bytes())
    voice = make_audio_file(work / "voice.mp3", 3.0)
    user = get_user_model().objects.create_user("bench")
    team = Team.objects.get(memberships__user=user, personal=True)
    portrait = asset_store(team=team, user=user, valid=validate_portrait(work / "face.jpg"))
    audio = asset_store(team=team, user=user, valid=validate_audio(voice))
    rng = random.Random(16)
    block = rng.randbytes((max_mb + 1) * MB)

    def batch_of(count: int, name: str, low: int, high: int) -> tuple[str, int]:
        batch = Batch.objects.create(team=team, created_by=user, name=name)
        total = 0
        for row in range(1, count + 1):
            job = job_create(team=team, user=user, portrait=portrait, audio=audio, mode="draft")
            size = low + (high - low) * (row - 1) // max(count - 1, 1)
            start = rng.randrange(len(block) - size)
            # A head of its own, so no two files are alike; the rest from the random block.
            body = row.to_bytes(8, "big") + block[start : start + size - 8]
            job.video.save(f"{job.code}.mp4", ContentFile(body), save=False)
            AvatarJob.objects.filter(pk=job.pk).update(
                video=job.video.name,
                video_size=size,
                status=AvatarJob.Status.SUCCEEDED,
                finished_at=timezone.now(),
                batch=batch,
                batch_row=row,
                name=f"Video {row}",
            )
            total += size
        return str(batch.code), total

    big, total = batch_of(videos, "Bench batch", min(2, max_mb) * MB, max_mb * MB)
    small, _ = batch_of(2, "Warm-up batch", 64 * 1024, 128 * 1024)
    client = Client()
    client.force_login(user)
    return {
        "big": big,
        "small": small,
        "bytes": total,
        "cookie": f"sessionid={client.cookies['sessionid'].value}",
        "command": web_command(HOST, 0),
    }


# --- the parent: the web tier, the download, the figures ----------------------------------


def download(port: int, path: str, cookie: str, out: Path | None) -> tuple[int, float]:
    """GET `path`, reading the stream in 1 MiB pieces (into `out`, if given): bytes, seconds."""
    started = time.monotonic()
    conn = http.client.HTTPConnection(HOST, port, timeout=120)
    conn.request("GET", path, headers={"Cookie": cookie})
    response = conn.getresponse()
    if response.status != 200:
        raise SystemExit(f"GET {path}: HTTP {response.status} {response.read()[:300]!r}")
    size = 0
    sink = out.open("wb") if out else None
    try:
        while piece := response.read(READ):
            size += len(piece)
            if sink:
                sink.write(piece)
    finally:
        if sink:
            sink.close()
        conn.close()
    return size, time.monotonic() - started


def start_web(
    command: list[str], env: dict[str, str], log: Path
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    argv = list(command)
    argv[argv.index("--bind") + 1] = f"{HOST}:{port}"
    with log.open("ab") as errors:
        server = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,  # the access log
            stderr=errors,
            start_new_session=True,  # its own group: stopped below by its pid
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return server, port
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                stop_web(server)
                raise SystemExit("gunicorn did not come up") from None
            time.sleep(0.2)


def stop_web(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def one_run(setup: dict[str, Any], env: dict[str, str], scratch: Path) -> dict[str, float]:
    server, port = start_web(setup["command"], env, scratch / "gunicorn.log")
    try:
        for _ in range(6):  # spread over both workers: each imports and runs the view once
            download(port, f"/batches/{setup['small']}/videos.zip", setup["cookie"], None)
        workers = children(server.pid)
        if not workers:
            raise SystemExit("gunicorn has no workers")
        baseline, cpu = {}, {}
        for pid in workers:
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
            baseline[pid] = proc_kb(pid, "VmRSS")
            cpu[pid] = cpu_ticks(pid)
        out = scratch / "videos.zip"
        size, seconds = download(port, f"/batches/{setup['big']}/videos.zip", setup["cookie"], out)
        growth = {pid: proc_kb(pid, "VmHWM") - baseline[pid] for pid in workers}
        cpu = {pid: cpu_ticks(pid) - cpu[pid] for pid in workers}
    finally:
        stop_web(server)
    # The worker that answered: the one that spent the CPU (CRC32 over every byte).
    busiest = max(cpu, key=lambda pid: cpu[pid])
    with zipfile.ZipFile(out) as archive:
        infos = archive.infolist()
    out.unlink()
    stored = {info.compress_type for info in infos}
    if len(infos) != setup["videos"] or sum(i.file_size for i in infos) != setup["bytes"]:
        raise SystemExit(
            f"the ZIP holds {len(infos)} files of {sum(i.file_size for i in infos)} bytes: "
            f"expected {setup['videos']} of {setup['bytes']}"
        )
    if stored != {zipfile.ZIP_STORED}:
        raise SystemExit(f"the ZIP's members are not stored: {stored}")
    return {
        "growth_mb": growth[busiest] / 1024,
        "other_growth_mb": max((g for p, g in growth.items() if p != busiest), default=0) / 1024,
        "cpu_s": cpu[busiest] / os.sysconf("SC_CLK_TCK"),
        "baseline_mb": baseline[busiest] / 1024,
        "peak_mb": (baseline[busiest] + growth[busiest]) / 1024,
        "bytes": size,
        "seconds": seconds,
    }


def bucket(stack: contextlib.ExitStack) -> dict[str, str]:
    """moto's S3 server on a free port, with the bench's bucket; the settings that use it."""
    port = free_port()
    moto = subprocess.Popen(
        [PY, "-m", "moto.server", "-H", HOST, "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    stack.callback(stop_web, moto)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("moto's S3 server did not come up") from None
            time.sleep(0.1)
    url = f"http://{HOST}:{port}"
    import boto3

    boto3.client(
        "s3", endpoint_url=url, region_name="us-east-1",
        aws_access_key_id=KEYS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=KEYS["AWS_SECRET_ACCESS_KEY"],
    ).create_bucket(Bucket=BUCKET)  # fmt: skip
    return {
        **KEYS,
        "STORAGE_URL": f"s3://{BUCKET}/media",
        "AWS_S3_ENDPOINT_URL": url,
        "AWS_S3_REGION_NAME": "us-east-1",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--max-mb", type=int, default=5, help="the largest result (from 2 MB)")
    parser.add_argument("--s3", action="store_true", help="results in S3 (moto) instead of files")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import django

        django.setup()
        print(json.dumps(make(args.videos, args.max_mb)))
        return

    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-batchzip-")))
        env = {**os.environ, "DATA_DIR": str(scratch / "data"), "LOG_LEVEL": "ERROR"}
        env.update(DJANGO_SETTINGS_MODULE="avatarsite.settings", ALLOWED_HOSTS=HOST)
        for name in ("DATABASE_URL", "REDIS_URL", "MEDIA_ROOT", "STORAGE_URL"):
            env.pop(name, None)
        if args.s3:
            env.update(bucket(stack))
        made = subprocess.run(
            [PY, __file__, "--child", "--videos", str(args.videos), "--max-mb", str(args.max_mb)],
            capture_output=True,
            cwd=ROOT,
            env=env,
            text=True,
        )
        if made.returncode:
            raise SystemExit(f"the setup child failed:\n{made.stderr[-3000:]}")
        setup = json.loads(made.stdout.strip().splitlines()[-1]) | {"videos": args.videos}
        runs = [one_run(setup, env, scratch) for _ in range(args.runs)]

    med = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    each = ", ".join(f"{run['growth_mb']:.1f}" for run in runs)
    rate = med["bytes"] / MB / med["seconds"]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    ok = "met" if med["growth_mb"] < TARGET_MB else "MISSED"
    where = "an S3 bucket (moto)" if args.s3 else "local files"
    print(
        f"runs: {args.runs}, a fresh gunicorn each (run_studio's web command), results in "
        f"{where}; load {load}"
    )
    print(
        f"{args.videos} videos of 2-{args.max_mb} MB, {setup['bytes'] / MB:.1f} MiB of video; "
        f"the ZIP {med['bytes'] / MB:.1f} MiB, every member stored at its size"
    )
    print(
        f"the answering worker: RSS baseline {med['baseline_mb']:.1f} MB, peak "
        f"{med['peak_mb']:.1f} MB, CPU {med['cpu_s']:.2f} s; the other worker grew "
        f"{med['other_growth_mb']:.1f} MB; growth target under {TARGET_MB} MB: {ok}"
    )
    print(
        f"batchzip{' s3' if args.s3 else ''}: {args.videos} videos, {med['bytes'] / MB:.1f} MiB "
        f"in {med['seconds']:.2f} s "
        f"({rate:.0f} MiB/s), web RSS growth {med['growth_mb']:.1f} MB median (runs: {each})"
    )
    if med["growth_mb"] >= TARGET_MB:
        sys.exit(1)


if __name__ == "__main__":
    main()
