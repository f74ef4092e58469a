"""Benchmark the studio past one machine: one web host and two worker hosts on loopback.

Run from the repository root:  .venv/bin/python bench/multihost.py [--drafts 40] [--kling 40]

Needs PostgreSQL (127.0.0.1:5432, database `test`, trust) and Redis (127.0.0.1:6379); says so
and exits 0 without them. Everything else is started here: a fresh PostgreSQL database, Redis
database 11 (its queue keys cleared first), an S3 API (moto's server) with a fresh bucket, the
Kling simulator, `run_studio --web-only` and two `run_studio --worker-only` "hosts", each with
its own DATA_DIR and no MEDIA_ROOT in common (files go to the bucket).

N drafts and N Kling (simulator, std) jobs are made in one burst. When half have succeeded,
worker host 1 is killed (SIGKILL, its whole process group) and restarted 3 s later. Figures, the
last line printed: jobs succeeded, duplicates (Kling creates refused as an already-used
external_task_id, and result objects in the bucket beyond one video and one poster per
succeeded job), drain time (burst committed to every job terminal), and the video bytes that
went through the web tier when every result is fetched through its API link (302s to the
bucket) against the bytes the bucket served.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from itertools import zip_longest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable
PG = "postgres://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/11"
BUCKET = "bench-multihost"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reachable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def tiny_video(image: bytes, audio: bytes) -> bytes:
    """The tests' real 1 s MP4 (made once): the simulator's stand-in render, after setup."""
    from tests.helpers import tiny_video_factory

    return tiny_video_factory(image, audio)


def main() -> None:  # noqa: C901  (one measured procedure, read top to bottom)
    parser = argparse.ArgumentParser()
    parser.add_argument("--drafts", type=int, default=40)
    parser.add_argument("--kling", type=int, default=40)
    parser.add_argument("--keep", action="store_true", help="keep the hosts' logs and folders")
    args = parser.parse_args()
    if not (reachable(5432) and reachable(6379)):
        print("multihost: skipped, needs PostgreSQL on 127.0.0.1:5432 and Redis on :6379")
        return

    import logging
    import shutil

    import psycopg
    import redis
    from moto.server import ThreadedMotoServer

    from jobs.kling.simulator import KlingSimulator, SimulatorConfig

    tmp = Path(tempfile.mkdtemp(prefix="bench-multihost-"))
    dbname = f"bench_multihost_{os.getpid()}"
    with psycopg.connect(f"{PG}/test", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    r = redis.Redis.from_url(REDIS)
    for key in r.scan_iter("django_q:*"):
        r.delete(key)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access log
    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    s3.start()
    s3_url = f"http://127.0.0.1:{s3.get_host_and_port()[1]}"
    sim = KlingSimulator(
        SimulatorConfig(
            max_concurrency=5,
            submitted_seconds=0.3,
            processing_seconds=1.5,
            video_factory=tiny_video,
        )
    ).start()
    web_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KLING_", "Q_CLUSTER"))}
    env.update(
        DJANGO_SETTINGS_MODULE="avatarsite.settings",
        DATABASE_URL=f"{PG}/{dbname}",
        REDIS_URL=REDIS,
        STORAGE_URL=f"s3://{BUCKET}/media",
        AWS_S3_ENDPOINT_URL=s3_url,
        AWS_S3_REGION_NAME="us-east-1",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench-secret",
        SECRET_KEY="bench-multihost-" + os.urandom(16).hex(),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        KLING_BASE_URL=sim.base_url,
        KLING_API_KEY=sim.config.api_key,
        KLING_MAX_CONCURRENCY="5",
        KLING_POLL_SECONDS="1",
        Q_WORKERS="2",
        PYTHONUNBUFFERED="1",
        DATA_DIR=str(tmp / "web"),
    )
    os.environ.clear()
    os.environ.update(env)
    procs: dict[str, subprocess.Popen[bytes] | None] = {}
    try:
        import boto3
        import django
        import requests

        boto3.client(
            "s3", endpoint_url=s3_url, region_name="us-east-1",
            aws_access_key_id="bench", aws_secret_access_key="bench-secret",
        ).create_bucket(Bucket=BUCKET)  # fmt: skip
        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.files.storage import default_storage
        from django.core.management import call_command
        from django.db import connection

        from jobs.links import video_url
        from jobs.media.audio import validate_audio
        from jobs.media.portraits import validate_portrait
        from jobs.models import AvatarJob, Team
        from jobs.services.api_tokens import api_token_create
        from jobs.services.assets import asset_store
        from jobs.services.jobs import job_create
        from tests.helpers import make_audio_file, make_portrait_bytes

        call_command("migrate", verbosity=0)
        call_command("createcachetable", verbosity=0)
        (tmp / "face.jpg").write_bytes(make_portrait_bytes())
        voice = make_audio_file(tmp / "voice.mp3", 3.0)
        user = get_user_model().objects.create_user("bench")
        team = Team.objects.get(memberships__user=user)
        portrait = asset_store(team=team, user=user, valid=validate_portrait(tmp / "face.jpg"))
        audio = asset_store(team=team, user=user, valid=validate_audio(voice))
        token, _ = api_token_create(user=user, team=team)
        connection.close()

        manage = [PY, str(ROOT / "manage.py"), "run_studio"]
        procs["web"] = start([*manage, "--web-only", "--port", str(web_port)], env, tmp / "web.log")

        def worker(n: int) -> subprocess.Popen[bytes]:
            host_env = {**env, "DATA_DIR": str(tmp / f"worker{n}")}
            return start([*manage, "--worker-only"], host_env, tmp / f"worker{n}.log")

        procs["worker1"], procs["worker2"] = worker(1), worker(2)
        time.sleep(4)  # the clusters start
        burst = time.monotonic()
        total = args.drafts + args.kling
        # Interleaved, drafts and Kling jobs in one burst.
        both = zip_longest(["draft"] * args.drafts, ["std"] * args.kling)
        for mode in [m for pair in both for m in pair if m]:
            job_create(team=team, user=user, portrait=portrait, audio=audio, mode=mode)
        connection.close()
        created = time.monotonic()
        killed = restarted = False
        killed_at = 0.0
        deadline = created + 900
        while time.monotonic() < deadline:
            done = AvatarJob.objects.filter(status__in=AvatarJob.TERMINAL).count()
            succeeded = AvatarJob.objects.filter(status=AvatarJob.Status.SUCCEEDED).count()
            if not killed and succeeded >= total // 2:
                stop(procs["worker1"], signal.SIGKILL)  # a host lost: no clean shutdown
                killed_at, killed = time.monotonic(), True
                print(f"multihost: killed worker host 1 at {succeeded} succeeded", flush=True)
            if killed and not restarted and time.monotonic() - killed_at > 3:
                procs["worker1"], restarted = worker(1), True
            if done >= total:
                break
            time.sleep(0.5)
        drained = time.monotonic()
        jobs = list(AvatarJob.objects.order_by("pk"))
        succeeded_jobs = [j for j in jobs if j.status == AvatarJob.Status.SUCCEEDED]
        by_status: dict[str, int] = {}
        for j in jobs:
            by_status[f"{j.mode}:{j.status}"] = by_status.get(f"{j.mode}:{j.status}", 0) + 1

        _, names = default_storage.listdir(f"results/{team.code}")
        extra_objects = len(names) - 2 * len(succeeded_jobs)
        refused_dupes = sim.rejected_by_reason.get("duplicate", 0)
        creates_twice = sum(1 for n in sim.creates_by_external_id.values() if n > 1)

        web_bytes = bucket_bytes = 0
        session = requests.Session()
        base = f"http://127.0.0.1:{web_port}"
        for j in succeeded_jobs:
            hop = session.get(video_url(j, token=token, base_url=base), allow_redirects=False)
            assert hop.status_code == 302, (hop.status_code, hop.text[:200])
            web_bytes += len(hop.content)
            body = session.get(hop.headers["Location"]).content
            assert body[4:8] == b"ftyp" and len(body) == j.video_size
            bucket_bytes += len(body)
        print(f"multihost: jobs by mode and status {by_status}")
        print(
            f"multihost: {len(succeeded_jobs)}/{total} succeeded "
            f"({args.drafts} draft + {args.kling} simulator, worker host 1 killed at half and "
            f"restarted); duplicates: {refused_dupes} Kling creates refused as duplicate "
            f"({creates_twice} ids sent twice), {extra_objects} extra result objects; "
            f"drain {drained - created:.1f} s after the burst ({created - burst:.1f} s to "
            f"commit it); video bytes through the web tier {web_bytes} "
            f"vs {bucket_bytes} from the bucket"
        )
    finally:
        for proc in procs.values():
            stop(proc)
        sim.stop()
        s3.stop()
        from django.db import connections

        connections.close_all()
        with psycopg.connect(f"{PG}/test", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        if args.keep:
            print(f"multihost: logs in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
