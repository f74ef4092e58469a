"""Benchmark the dashboard's live-update poll: one request refreshing a page of 12 running cards.

Run from the repository root:  .venv/bin/python bench/poll.py [--seconds N] [--clients N]

What is measured, on a fresh SQLite database in a temporary directory, for a page whose 12
cards are all running (2 queued, 10 generating with a time-left estimate):
  1. in process (django.test.Client, logged in, full middleware stack): the poll's server
     time (median of many requests), its SQL queries and the bytes it answers, both for the
     usual poll, where nothing on the page changed (204, no body), and for one where all 12
     cards changed and come back rendered;
  2. over HTTP: gunicorn (2 workers x 4 threads, gthread) started on a free loopback port
     against the same database, hit with the usual poll and a session cookie by --clients
     load processes on keep-alive connections for --seconds; requests per second counted
     from 200 and 204 answers. The load processes share this machine's CPUs with gunicorn
     (and so does anything else running), so this figure is a floor; the CPU time gunicorn's
     processes spent per poll (from /proc) gives what the machine's cores could sustain.

Targets: 1,000 open dashboards polling every 3 s, i.e. 333 requests per second; at most 3
queries. The last line printed is the summary, e.g.
    poll: 3.7 ms, 4 queries (2 its own), 0.0 kB per poll of 12 running cards (all changed:
    6.6 ms, 3 own queries, 20.2 kB); gunicorn 251 req/s, 4.1 ms CPU each = 490 req/s on 2
    free cores (need 333 for 1,000 dashboards at 3 s)
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from dashboard import make_user, setup_django  # noqa: E402 - the same set-up

DASHBOARDS = 1000
INTERVAL = 3.0
TARGET_RPS = DASHBOARDS / INTERVAL
TARGET_QUERIES = 3
CARDS = 12


def make_page(scratch: Path):  # noqa: ANN201
    """A user whose dashboard shows 12 running cards, with history for the estimates."""
    from django.utils import timezone

    from jobs.models import AvatarJob

    user, team, portrait, audio = make_user(scratch, superuser=False)
    now = timezone.now()
    S = AvatarJob.Status
    rows = []
    for i in range(200):  # finished history: what the estimates are made from
        created = now - timedelta(hours=1, minutes=i)
        rows.append(
            AvatarJob(
                team=team,
                created_by=user,
                portrait=portrait,
                audio=audio,
                status=S.SUCCEEDED,
                created=created,
                processing_at=created + timedelta(seconds=2),
                finished_at=created + timedelta(seconds=30 + i % 20),
                poster="results/p.jpg",
                video="results/v.mp4",
                duration=3.0,
            )
        )
    for i in range(CARDS):
        created = now - timedelta(seconds=20 * i)
        queued = i < 2
        rows.append(
            AvatarJob(
                team=team,
                created_by=user,
                portrait=portrait,
                audio=audio,
                prompt=f"Card {i}",
                status=S.QUEUED if queued else S.PROCESSING,
                created=created,
                processing_at=None if queued else created + timedelta(seconds=1),
            )
        )
    for row in rows:
        row.external_task_id = str(row.code)
    AvatarJob.objects.bulk_create(rows)
    return user


def poll_urls(client) -> tuple[str, str]:  # noqa: ANN001
    """The poll the dashboard page makes, and the same with every card out of date."""
    page = client.get("/").content.decode()
    values = re.findall(r'class="live-code" name="job" value="([^"]+)"', page)
    since = re.search(r'id="poll-since" class="live-code" name="since" value="([^"]+)"', page)
    assert len(values) == CARDS, values
    poller = re.search(r'<div id="poller"[^>]*hx-get="([^"]+)"', page)[1].replace("&amp;", "&")
    steady = {"job": values, "since": since[1]}
    stale = {"job": [v.split(":")[0] for v in values], "since": since[1]}
    return (
        f"{poller}&{urlencode(steady, doseq=True)}",
        f"{poller}&{urlencode(stale, doseq=True)}",
    )


@dataclass
class Cost:
    ms: float
    queries: int  # all of them
    own: int  # without the session and user look-ups every logged-in request makes
    size: int
    cards: int


def in_process(client, url: str, requests: int) -> Cost:  # noqa: ANN001
    """Median ms, queries and bytes of one poll."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(30):
        response = client.get(url)
    assert response.status_code in (200, 204), response.content[:300]
    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    sql = [q["sql"] for q in captured.captured_queries]  # read now: each request resets it
    own = [q for q in sql if "django_session" not in q and 'FROM "auth_user"' not in q]
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - started) * 1000)
    body = response.content
    return Cost(statistics.median(times), len(sql), len(own), len(body), body.count(b"<article"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hammer(args: tuple[int, str, str, float]) -> tuple[int, int]:
    """One load process: poll on a keep-alive connection until time is up."""
    port, url, cookie, seconds = args
    headers = {"Cookie": cookie, "HX-Request": "true"}
    ok = failed = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            conn.request("GET", url, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status in (200, 204):
                ok += 1
            else:
                failed += 1
            if response.will_close:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        except (OSError, http.client.HTTPException):
            failed += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.close()
    return ok, failed


def cpu_seconds(root: int) -> float:
    """CPU time used so far by a process and its children (gunicorn's master and workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        pid, ppid = int(stat.parent.name), int(fields[1])
        if root in (pid, ppid):
            total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return total


def gunicorn_rps(
    data_dir: Path, url: str, cookie: str, seconds: float, clients: int
) -> tuple[float, float]:
    """Polls per second gunicorn answered, and the CPU milliseconds it spent on each."""
    port = free_port()
    env = {**os.environ, "DATA_DIR": str(data_dir), "ALLOWED_HOSTS": "127.0.0.1,localhost"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "avatarsite.wsgi:application"]
        + ["--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4"]
        + ["--worker-class", "gthread", "--log-level", "warning", "--keep-alive", "5"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", url, headers={"Cookie": cookie})
                response = conn.getresponse()
                response.read()
                assert response.status in (200, 204), f"gunicorn answered {response.status}"
                break
            except (OSError, http.client.HTTPException):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("gunicorn did not come up") from None
                time.sleep(0.2)
        # Warm both workers (templates, estimates) before counting.
        hammer((port, url, cookie, 1.0))
        with multiprocessing.get_context("fork").Pool(clients) as pool:
            cpu = cpu_seconds(server.pid)
            results = pool.map(hammer, [(port, url, cookie, seconds)] * clients)
            cpu = cpu_seconds(server.pid) - cpu
        ok = sum(r[0] for r in results)
        failed = sum(r[1] for r in results)
        if failed:
            print(f"{failed} polls failed under load")
        return ok / seconds, cpu * 1000 / max(ok, 1)
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # our own process group, by its pid
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the load run")
    parser.add_argument("--clients", type=int, default=4, help="load processes")
    parser.add_argument("--requests", type=int, default=300, help="timed in-process polls")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-poll-") as tmp:
        scratch = Path(tmp)
        setup_django(scratch)
        from django.conf import settings
        from django.db import connections
        from django.test import Client

        user = make_page(scratch)
        client = Client(headers={"HX-Request": "true"})
        client.force_login(user)
        steady_url, stale_url = poll_urls(client)
        steady = in_process(client, steady_url, args.requests)
        stale = in_process(client, stale_url, args.requests)
        assert steady.cards == 0 and stale.cards == CARDS, (steady, stale)
        cookie = (
            f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
        )
        connections.close_all()  # gunicorn gets the database to itself, apart from SQLite's WAL
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        rps, cpu_ms = gunicorn_rps(scratch, steady_url, cookie, args.seconds, args.clients)
        rps_stale, _ = gunicorn_rps(scratch, stale_url, cookie, args.seconds / 2, args.clients)
        load = os.getloadavg()[0]

    for name, cost in (("nothing changed", steady), ("all 12 changed", stale)):
        print(
            f"{name:>15}: {cost.ms:.2f} ms, {cost.queries} queries ({cost.own} its own), "
            f"{cost.size:,} bytes, {cost.cards} cards rendered"
        )
    cores = os.cpu_count() or 1
    capacity = cores * 1000 / cpu_ms
    print(f"gunicorn: {rps:.0f} req/s when nothing changed, {rps_stale:.0f} req/s when all did")
    print(
        f"gunicorn spent {cpu_ms:.2f} ms of CPU per poll: {capacity:.0f} req/s on this "
        f"machine's {cores} cores if it had them to itself (load average was {load:.1f})"
    )
    missed = []
    if steady.own > TARGET_QUERIES or stale.own > TARGET_QUERIES:
        missed.append(f"the poll's own queries > {TARGET_QUERIES}")
    if steady.queries > TARGET_QUERIES:
        missed.append(
            f"{steady.queries} queries in all: the session and the user are read from the "
            "database by every logged-in request (SESSION_ENGINE)"
        )
    if rps < TARGET_RPS:
        missed.append(f"{rps:.0f} req/s < {TARGET_RPS:.0f}")
    print("targets met" if not missed else f"TARGET MISSED: {'; '.join(missed)}")
    print(
        f"poll: {steady.ms:.1f} ms, {steady.queries} queries ({steady.own} its own), "
        f"{steady.size / 1000:.1f} kB per poll of {CARDS} running cards "
        f"(all changed: {stale.ms:.1f} ms, {stale.own} own queries, {stale.size / 1000:.1f} kB); "
        f"gunicorn {rps:.0f} req/s, {cpu_ms:.1f} ms CPU each = {capacity:.0f} req/s on "
        f"{cores} free cores (need {TARGET_RPS:.0f} for {DASHBOARDS:,} dashboards "
        f"at {INTERVAL:.0f} s)"
    )


if __name__ == "__main__":
    main()
