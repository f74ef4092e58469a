"""Benchmark the Kling flow end to end: slot use, requests per job, latency, worker CPU.

Run from the repository root:  .venv/bin/python bench/kling_flow.py [--jobs 300] [--on-runs 1]

Everything is real and on loopback: the Kling simulator (in this process, `max_concurrency`
slots), our web server (gunicorn, 2 gthread workers, which receives Kling's callbacks) and our
worker (`manage.py qcluster`, django-q2 on the ORM broker), all on a fresh SQLite database in a
temporary DATA_DIR. Each run is a child process of this script (fresh settings, database and
simulator); the parent prints the runs and the summary.

A run creates N std jobs for 3 users in one burst (round-robin, like a team) and waits until
every job is terminal. Figures:

1. slot use while a job is still `queued`: every 0.1 s the simulator's `current_concurrency`
   (Kling's own count: a task holds a slot from create until Kling reports it finished) and our
   database's `in_flight()` count are sampled; slot use = mean / slots. Kling's count is the
   headline (it is what the account pays for); the database's is printed beside it. Sampling
   starts once the burst is committed (3-6 s for 300 jobs), so the first ramp-up is left out.
2. Kling requests per job: everything the simulator received (create, query, list, tts,
   costs and the result downloads under `/_sim/files/`, counted as "files") / N, snapshot taken
   as soon as the last job is terminal, before the per-job queries of figure 3.
3. succeed -> succeeded: the task's `updated_at` as Kling reports it afterwards (when it became
   `succeed`, wall-clock ms) against the job's `finished_at`; p50/p95. Split in two at
   `downloading_at`: notice (callback or poll, queue, query) and save (download, probe, poster).
4. worker CPU per job: utime+stime of every live process in the qcluster process group, read
   from /proc just before SIGTERM, / N. Also shown: the same including reaped children (the
   ffmpeg runs for probe and poster, recycled workers), and the idle start-up share.

Diagnostics printed per run: slot hand-over (Kling's k-th freed slot to its (k+slots)-th
create), django-q tasks run per job, queue depth, CPU per process role. `--keep` keeps the temp
dir: worker.log, web.log, access.log, sim.log (every simulator request, timestamped), database.

Callbacks on = PUBLIC_BASE_URL set to the gunicorn address; callbacks off = unset, so the worker
polls (first poll after KLING_POLL_SECONDS, default 3 s). The LAST line printed has all figures:
    kling_flow: 300 jobs, 5 slots, tasks 2.0 s | callbacks on: slot use ... | callbacks off ...
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable

RESULT_MARK = "KLING_FLOW_RESULT "
USERS = 3
SAMPLE_SECONDS = 0.1
RUN_TIMEOUT = 15 * 60
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- helpers used by the child run -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_cpu(pgid: int) -> dict[str, Any]:
    """CPU seconds of the live processes in a process group, from /proc/<pid>/stat."""
    own = reaped = 0.0
    procs: list[tuple[int, str, float]] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        rest = text[text.rindex(")") + 2 :].split()
        if int(rest[2]) != pgid:  # field 5: pgrp
            continue
        utime, stime, cutime, cstime = (int(x) / CLK_TCK for x in rest[11:15])
        own += utime + stime
        reaped += cutime + cstime
        procs.append((int(entry.name), comm, utime + stime))
    return {"own": own, "with_children": own + reaped, "procs": len(procs), "detail": procs}


def stop_group(proc: subprocess.Popen[bytes] | None, timeout: float = 20) -> None:
    """SIGTERM the process group we started (the child leads it), SIGKILL after `timeout`."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"{what} not ready within {timeout:.0f} s")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank-with-interpolation percentile (statistics.quantiles needs ≥ 2 values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def make_inputs(workdir: Path) -> tuple[Path, Path, bytes]:
    """A 480x600 JPEG portrait, a 3 s MP3 voice-over, and the small MP4 Kling 'renders'."""
    from PIL import Image, ImageDraw

    from jobs.ffmpeg import run_ffmpeg

    portrait = workdir / "face.jpg"
    image = Image.effect_noise((480, 600), 40).convert("RGB")
    draw = ImageDraw.Draw(image)
    draw.ellipse((140, 120, 340, 400), fill=(225, 185, 160))
    image.save(portrait, "JPEG", quality=88)
    voice = workdir / "voice.mp3"
    run_ffmpeg(["-v", "error", "-f", "lavfi", "-i", "sine=duration=3", str(voice)], timeout=60)
    video = workdir / "result.mp4"
    run_ffmpeg(
        shlex.split(
            "-v error -f lavfi -i testsrc=size=320x240:rate=10:duration=2 "
            "-f lavfi -i sine=duration=2 -c:v libx264 -pix_fmt yuv420p -c:a aac -shortest"
        )
        + [str(video)],
        timeout=120,
    )
    return portrait, voice, video.read_bytes()


# --- one run (child process) -----------------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    callbacks = args.child == "on"
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-kling-{args.child}-"))
    procs: dict[str, subprocess.Popen[bytes] | None] = {"web": None, "worker": None}
    sim = None
    try:
        from jobs.kling.simulator import KlingSimulator, SimulatorConfig

        if args.keep:  # every request the simulator serves, timestamped, for a post-mortem
            import logging

            handler = logging.FileHandler(tmp / "sim.log")
            handler.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(message)s"))
            sim_log = logging.getLogger("jobs.kling.simulator")
            sim_log.addHandler(handler)
            sim_log.setLevel(logging.DEBUG)
            sim_log.propagate = False

        portrait_path, voice_path, mp4 = make_inputs(tmp)
        sim = KlingSimulator(
            SimulatorConfig(
                max_concurrency=args.slots,
                submitted_seconds=args.submitted,
                processing_seconds=args.processing,
                video_factory=lambda image, audio: mp4,
            )
        ).start()
        port = free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if k
            not in (
                "DATABASE_URL",
                "REDIS_URL",
                "PUBLIC_BASE_URL",
                "KLING_ACCESS_KEY",
                "KLING_SECRET_KEY",
                "KLING_PRESET",
                "DJANGO_SETTINGS_MODULE",
            )
        }
        env.update(
            DJANGO_SETTINGS_MODULE="avatarsite.settings",
            DATA_DIR=str(tmp / "data"),
            MEDIA_ROOT=str(tmp / "media"),
            SECRET_KEY="bench-kling-flow-" + os.urandom(16).hex(),  # all processes must agree
            ALLOWED_HOSTS="127.0.0.1,localhost",
            KLING_BASE_URL=sim.base_url,
            KLING_API_KEY=sim.config.api_key,
            KLING_MAX_CONCURRENCY=str(args.slots),
            PYTHONUNBUFFERED="1",
            LOG_LEVEL="INFO",
            Q_CLUSTER_NAME=f"bench{os.getpid()}",
        )
        if args.poll:
            env["KLING_POLL_SECONDS"] = str(args.poll)
        if callbacks:
            env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
        os.environ.clear()
        os.environ.update(env)

        import django

        django.setup()
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.db import connection
        from django_q.models import OrmQ

        from jobs.kling.client import KlingClient
        from jobs.media.audio import validate_audio
        from jobs.media.portraits import validate_portrait
        from jobs.models import AvatarJob, Team
        from jobs.services.assets import asset_store
        from jobs.services.jobs import job_create

        call_command("migrate", verbosity=0)
        call_command("createcachetable", verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)  # as `make run` does

        users, assets = [], []
        for i in range(USERS):
            user = get_user_model().objects.create_user(f"bench{i}")
            team = Team.objects.get(memberships__user=user)
            p = asset_store(team=team, user=user, valid=validate_portrait(portrait_path))
            a = asset_store(team=team, user=user, valid=validate_audio(voice_path))
            users.append((user, team))
            assets.append((p, a))
        connection.close()  # nothing held open while the other processes start

        web_log = (tmp / "web.log").open("ab")
        procs["web"] = subprocess.Popen(
            [
                PY,
                "-m",
                "gunicorn",
                "avatarsite.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--threads",
                "4",
                "--worker-class",
                "gthread",
                *(["--access-logfile", str(tmp / "access.log")] if args.keep else []),
            ],
            env=env,
            cwd=ROOT,
            stdout=web_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def web_up() -> bool:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)  # noqa: S310
            except urllib.error.HTTPError:
                return True
            except OSError:
                return False
            return True

        wait_until(web_up, 60, "gunicorn")

        worker_log_path = tmp / "worker.log"
        procs["worker"] = subprocess.Popen(
            [PY, "manage.py", "qcluster"],
            env=env,
            cwd=ROOT,
            stdout=worker_log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        worker = procs["worker"]
        wait_until(
            lambda: (
                "running" in worker_log_path.read_text(errors="replace")
                and group_cpu(worker.pid)["procs"] >= 3 + settings.Q_CLUSTER["workers"]
            ),
            90,
            "qcluster",
        )
        time.sleep(1.0)  # let the workers finish importing (their ticker starts on spawn)
        cpu_idle = group_cpu(worker.pid)

        # The burst: N jobs, round-robin over the users; job_create wakes the worker on commit.
        started = time.monotonic()
        for i in range(args.jobs):
            user, team = users[i % USERS]
            p, a = assets[i % USERS]
            job_create(team=team, user=user, portrait=p, audio=a, mode="std")
        created_in = time.monotonic() - started

        kling_busy: list[int] = []
        db_busy: list[int] = []
        queue_depth: list[int] = []
        draining = True
        deadline = started + RUN_TIMEOUT
        last_check = 0.0
        queued_left_at = None
        while True:
            tick = time.monotonic()
            if draining:
                queued = AvatarJob.objects.filter(status=AvatarJob.Status.QUEUED).count()
                if queued:
                    kling_busy.append(sim.snapshot()["current_concurrency"])
                    db_busy.append(AvatarJob.objects.in_flight().count())
                    queue_depth.append(OrmQ.objects.count())
                else:
                    draining = False
                    queued_left_at = tick - started
            if tick - last_check >= 1.0:
                last_check = tick
                left = AvatarJob.objects.exclude(status__in=AvatarJob.TERMINAL).count()
                if left == 0:
                    break
                if tick > deadline:
                    raise RuntimeError(f"{left} jobs still active after {RUN_TIMEOUT} s")
                if procs["worker"].poll() is not None:
                    raise RuntimeError("the worker died; see " + str(worker_log_path))
            time.sleep(max(0.0, SAMPLE_SECONDS - (time.monotonic() - tick)))
        elapsed = time.monotonic() - started

        snap = sim.snapshot()  # before the per-job queries below
        cpu_end = group_cpu(worker.pid)
        web_cpu = group_cpu(procs["web"].pid)
        stop_group(procs["worker"])
        stop_group(procs["web"])

        # Figure 3: when did Kling report succeed, when did we show succeeded?
        client = KlingClient.from_settings()
        jobs = list(AvatarJob.objects.order_by("pk"))
        statuses = Counter(j.status for j in jobs)
        errors = Counter(j.error_code for j in jobs if j.status != AvatarJob.Status.SUCCEEDED)
        total_lat, notice_lat, save_lat = [], [], []
        creates_ms, succeeds_ms = [], []
        for job in jobs:
            if job.status != AvatarJob.Status.SUCCEEDED or not job.task_id:
                continue
            task = client.get_task(job.task_id)
            if task.status != "succeed" or task.updated_at is None:
                continue
            succeed = task.updated_at
            total_lat.append((job.finished_at - succeed).total_seconds())
            if job.downloading_at:
                notice_lat.append((job.downloading_at - succeed).total_seconds())
                save_lat.append((job.finished_at - job.downloading_at).total_seconds())
            creates_ms.append(task.created_at.timestamp())
            succeeds_ms.append(succeed.timestamp())
        # Slot hand-over: the k-th slot freed is refilled by the (k+slots)-th create.
        creates_ms.sort()
        succeeds_ms.sort()
        handover = [
            creates_ms[k + args.slots] - succeeds_ms[k]
            for k in range(len(succeeds_ms) - args.slots)
            if k + args.slots < len(creates_ms)
        ]
        worker_text = worker_log_path.read_text(errors="replace")
        roles = {worker.pid: "main"}
        for role, pattern in (
            ("worker", r"ready for work at (\d+)"),
            ("monitor", r"monitoring at (\d+)"),
            ("pusher", r"pushing tasks at (\d+)"),
        ):
            roles.update((int(pid), role) for pid in re.findall(pattern, worker_text))
        tasks_run = worker_text.count("Processed '") + worker_text.count("processed '")
        tasks_run = tasks_run or worker_text.lower().count("processed")
        requests = snap["requests_by_endpoint"]
        kling_requests = sum(v for k, v in requests.items() if k not in ("stats", "config"))
        result = {
            "mode": args.child,
            "jobs": args.jobs,
            "slots": args.slots,
            "poll_seconds": settings.KLING_POLL_SECONDS,
            "first_poll_seconds": settings.KLING_POLL_SECONDS * (10 if callbacks else 1),
            "task_seconds": args.submitted + args.processing,
            "elapsed": elapsed,
            "created_in": created_in,
            "queued_until": queued_left_at,
            "samples": len(kling_busy),
            "slot_use_kling": statistics.fmean(kling_busy) / args.slots if kling_busy else None,
            "slot_use_db": statistics.fmean(db_busy) / args.slots if db_busy else None,
            "queue_depth_mean": statistics.fmean(queue_depth) if queue_depth else None,
            "queue_depth_max": max(queue_depth) if queue_depth else None,
            "requests": requests,
            "requests_per_job": kling_requests / args.jobs,
            "rejected_by_code": snap["rejected_by_code"],
            "rejected_by_reason": snap["rejected_by_reason"],
            "callbacks": snap["callbacks"],
            "tasks_created": snap["tasks_created"],
            "multi_creates": sum(1 for v in snap["creates_by_external_id"].values() if v > 1),
            "peak_concurrency": snap["peak_concurrency"],
            "statuses": dict(statuses),
            "errors": dict(errors),
            "latency_n": len(total_lat),
            "p50": percentile(total_lat, 0.5),
            "p95": percentile(total_lat, 0.95),
            "max": max(total_lat) if total_lat else None,
            "notice_p50": percentile(notice_lat, 0.5),
            "notice_p95": percentile(notice_lat, 0.95),
            "save_p50": percentile(save_lat, 0.5),
            "save_p95": percentile(save_lat, 0.95),
            "handover_p50": percentile(handover, 0.5),
            "handover_p95": percentile(handover, 0.95),
            "cpu_ms_per_job": cpu_end["own"] * 1000 / args.jobs,
            "cpu_ms_per_job_with_children": cpu_end["with_children"] * 1000 / args.jobs,
            "cpu_idle_start_s": cpu_idle["own"],
            "cpu_ms_per_job_after_start": (cpu_end["own"] - cpu_idle["own"]) * 1000 / args.jobs,
            "worker_procs": [
                (roles.get(pid, "sentinel"), round(cpu, 1)) for pid, _, cpu in cpu_end["detail"]
            ],
            "web_cpu_s": web_cpu["own"],
            "queue_tasks_run": tasks_run,
            "tmp": str(tmp) if args.keep else None,
        }
        print(RESULT_MARK + json.dumps(result), flush=True)
    finally:
        for name in ("worker", "web"):
            stop_group(procs[name])
        if sim is not None:
            sim.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


# --- the parent: runs, reports ---------------------------------------------------------------


def run_child(args: argparse.Namespace, mode: str, jobs: int) -> dict[str, Any]:
    cmd = [
        PY,
        __file__,
        "--child",
        mode,
        "--jobs",
        str(jobs),
        "--slots",
        str(args.slots),
        "--submitted",
        str(args.submitted),
        "--processing",
        str(args.processing),
    ]
    if args.poll:
        cmd += ["--poll", str(args.poll)]
    if args.keep:
        cmd.append("--keep")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT + 300)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK) :])
    sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-5000:])
    raise SystemExit(f"the callbacks-{mode} run failed (exit {proc.returncode})")


def describe(r: dict[str, Any]) -> str:
    reqs = ", ".join(f"{k} {v}" for k, v in sorted(r["requests"].items()))
    return (
        f"  {r['jobs']} jobs in {r['elapsed']:.0f} s (burst created in {r['created_in']:.1f} s, "
        f"queue empty after {r['queued_until'] or 0:.0f} s, {r['samples']} samples); "
        f"statuses {r['statuses']}{' errors ' + str(r['errors']) if r['errors'] else ''}\n"
        f"  slot use while queued: Kling {r['slot_use_kling']:.1%}, our DB {r['slot_use_db']:.1%}"
        f"; slot hand-over (Kling succeed -> next create) p50 {r['handover_p50']:.2f} s "
        f"p95 {r['handover_p95']:.2f} s; peak {r['peak_concurrency']}\n"
        f"  requests {r['requests_per_job']:.2f}/job: {reqs}; rejected {r['rejected_by_code']} "
        f"{r['rejected_by_reason']}; jobs created twice {r['multi_creates']}; "
        f"callbacks {r['callbacks']}\n"
        f"  succeed->succeeded p50 {r['p50']:.2f} s p95 {r['p95']:.2f} s max {r['max']:.2f} s "
        f"(n={r['latency_n']}) = notice+query p50 {r['notice_p50']:.2f} p95 {r['notice_p95']:.2f}"
        f" + download/probe/poster p50 {r['save_p50']:.2f} p95 {r['save_p95']:.2f}\n"
        f"  worker CPU {r['cpu_ms_per_job']:.0f} ms/job live processes "
        f"({r['cpu_ms_per_job_with_children']:.0f} ms/job with reaped ffmpeg children; "
        f"start-up {r['cpu_idle_start_s']:.1f} s, so {r['cpu_ms_per_job_after_start']:.0f} ms/job "
        f"after it); CPU s by process {r['worker_procs']}; web CPU {r['web_cpu_s']:.1f} s; "
        f"django-q tasks run ~{r['queue_tasks_run']} ({r['queue_tasks_run'] / r['jobs']:.1f}/job)"
        f", queue depth mean {r['queue_depth_mean']:.1f} max {r['queue_depth_max']}"
        + (f"\n  kept: {r['tmp']}" if r.get("tmp") else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300, help="jobs in the callbacks-on run")
    parser.add_argument(
        "--off-jobs", type=int, default=None, help="jobs in the callbacks-off run (default: --jobs)"
    )
    parser.add_argument("--on-runs", type=int, default=1, help="callbacks-on runs (median)")
    parser.add_argument("--slots", type=int, default=5)
    parser.add_argument("--submitted", type=float, default=0.5, help="simulated s in submitted")
    parser.add_argument("--processing", type=float, default=1.5, help="simulated s processing")
    parser.add_argument("--poll", type=int, default=None, help="KLING_POLL_SECONDS (default 3)")
    parser.add_argument("--skip-off", action="store_true", help="only the callbacks-on run(s)")
    parser.add_argument("--keep", action="store_true", help="keep temp dirs (logs, database)")
    parser.add_argument("--child", choices=("on", "off"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    off_jobs = args.off_jobs or args.jobs
    print(
        f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"{os.cpu_count()} CPUs; tasks take {args.submitted + args.processing:.1f} s at Kling"
    )
    on_runs = []
    for i in range(max(1, args.on_runs)):
        r = run_child(args, "on", args.jobs)
        on_runs.append(r)
        print(f"callbacks on, run {i + 1}:\n{describe(r)}", flush=True)
    off = None
    if not args.skip_off:
        off = run_child(args, "off", off_jobs)
        print(
            f"callbacks off (first poll {off['first_poll_seconds']} s):\n{describe(off)}",
            flush=True,
        )

    def med(key: str) -> float:
        return statistics.median(r[key] for r in on_runs)

    runs_note = f" (median of {len(on_runs)} runs)" if len(on_runs) > 1 else " (1 run)"
    failed = sum(sum(v for k, v in r["statuses"].items() if k != "succeeded") for r in on_runs)
    line = (
        f"kling_flow: {args.jobs} jobs, {args.slots} slots, tasks "
        f"{args.submitted + args.processing:.1f} s | callbacks on{runs_note}: "
        f"slot use {med('slot_use_kling'):.1%} (DB {med('slot_use_db'):.1%}), "
        f"{med('requests_per_job'):.2f} requests/job, succeed->succeeded p50 {med('p50'):.2f} s "
        f"p95 {med('p95'):.2f} s, worker CPU {med('cpu_ms_per_job'):.0f} ms/job "
        f"({med('cpu_ms_per_job_with_children'):.0f} incl. reaped children)"
        + (f", {failed} not succeeded" if failed else "")
    )
    if off is not None:
        off_failed = sum(v for k, v in off["statuses"].items() if k != "succeeded")
        line += (
            f" | callbacks off (poll {off['poll_seconds']} s"
            + (f", {off['jobs']} jobs" if off["jobs"] != args.jobs else "")
            + f", 1 run): slot use {off['slot_use_kling']:.1%} (DB {off['slot_use_db']:.1%}), "
            f"{off['requests_per_job']:.2f} requests/job, p50 {off['p50']:.2f} s "
            f"p95 {off['p95']:.2f} s, worker CPU {off['cpu_ms_per_job']:.0f} ms/job "
            f"({off['cpu_ms_per_job_with_children']:.0f} incl. reaped children)"
            + (f", {off_failed} not succeeded" if off_failed else "")
        )
    print(line)


if __name__ == "__main__":
    main()
