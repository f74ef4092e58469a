"""Benchmark: API callers pointing creates at a slow server must not stall the site.

Run from the repository root:
    .venv/bin/python bench/slowpeer.py [--attackers N] [--tick S] [--tokens T]

What is measured: the studio's web tier (gunicorn as `run_studio` starts it: 2 workers x 4
threads, on a free loopback port, ALLOW_PRIVATE_URLS=true, SQLite in a fresh temporary
DATA_DIR) receives N concurrent API creates (from one token, or from T in turn) whose image
URL points at a loopback server that answers `200 OK` and then one header line every `tick`
seconds, forever. Meanwhile a client requests GET /accounts/login/ one after another until
the last attacker is answered.

Printed: the attackers' longest request (target: cut at the 20 s fetch deadline, well before
the 75 s a per-read timeout allowed), how many were refused at once (1302: the token's 2
fetch slots, or the web process's 2, taken), and the login page's median and p95 (target:
p95 under 200 ms). The last line is the summary, e.g.
    slowpeer: 16 attackers on 1 token(s): longest 20.1 s (2 cut at the deadline, 14 refused
    1302, 0 other); login median 6.2 ms, p95 8.6 ms over 3,101 requests [OK: p95 < 200 ms]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_LOGIN_P95_MS = 200.0
CREATE = "/kling/v1/videos/avatar/image2video"


def setup_django(data_dir: Path, tokens: int) -> list[str]:
    """A fresh SQLite database in data_dir with one team and `tokens` API tokens."""
    for name in ("DATABASE_URL", "REDIS_URL", "MEDIA_ROOT", "DEBUG"):
        os.environ.pop(name, None)
    os.environ["DATA_DIR"] = str(data_dir)
    os.environ["ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
    os.environ["ALLOW_PRIVATE_URLS"] = "true"
    os.environ["DJANGO_SETTINGS_MODULE"] = "avatarsite.settings"
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from jobs.services.api_tokens import api_token_create
    from jobs.services.teams import team_create

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    user = get_user_model().objects.create_user("bench", password="bench-password-1")
    team = team_create(user=user, name="Bench")
    return [api_token_create(user=user, team=team, name=f"attacker {n}")[1] for n in range(tokens)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_web(port: int, log: Path) -> subprocess.Popen[bytes]:
    """gunicorn as run_studio starts it; waits until the login page answers."""
    from jobs.management.commands.run_studio import web_command

    web = subprocess.Popen(
        web_command("127.0.0.1", port),
        env=dict(os.environ),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=2).ok:
                return web
        except requests.RequestException:
            pass
        if web.poll() is not None:
            raise SystemExit(f"gunicorn exited ({web.returncode}); see {log}")
        time.sleep(0.2)
    stop(web)
    raise SystemExit(f"gunicorn did not answer within 60 s; see {log}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def attack(base: str, token: str, image_url: str, results: list[tuple[float, int, int]]) -> None:
    body = json.dumps({"image": image_url, "sound_file": "AAAA", "mode": "draft"})
    started = time.monotonic()
    try:
        response = requests.post(
            base + CREATE,
            data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=120,
        )
        status, code = response.status_code, int(response.json().get("code", -1))
    except (requests.RequestException, ValueError):
        status, code = 0, -1
    results.append((time.monotonic() - started, status, code))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--attackers", type=int, default=16)
    parser.add_argument("--tick", type=float, default=1.0, help="seconds between header lines")
    parser.add_argument(
        "--tokens", type=int, default=1, help="attackers share this many tokens, in turn"
    )
    args = parser.parse_args()

    from tests.slowpeer import SlowPeer

    with tempfile.TemporaryDirectory(prefix="bench-slowpeer-") as tmp:
        data_dir = Path(tmp)
        tokens = setup_django(data_dir, max(1, args.tokens))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        web = start_web(port, data_dir / "gunicorn.log")
        try:
            with SlowPeer(tick=args.tick) as peer:
                results: list[tuple[float, int, int]] = []
                image_url = peer.url("/trickle-headers/portrait.jpg")
                attackers = [
                    threading.Thread(
                        target=attack, args=(base, tokens[n % len(tokens)], image_url, results)
                    )
                    for n in range(args.attackers)
                ]
                for thread in attackers:
                    thread.start()
                login: list[float] = []
                with requests.Session() as client:
                    while any(t.is_alive() for t in attackers):
                        started = time.monotonic()
                        client.get(base + "/accounts/login/", timeout=60).raise_for_status()
                        login.append((time.monotonic() - started) * 1000)
                for thread in attackers:
                    thread.join()
        finally:
            stop(web)

    longest = max(r[0] for r in results)
    refused = sum(1 for r in results if r[1] == 429 and r[2] == 1302)
    cut = sum(1 for r in results if r[1] == 400 and r[0] > 1.0)
    other = len(results) - refused - cut
    median = statistics.median(login)
    p95 = statistics.quantiles(login, n=20)[-1] if len(login) >= 20 else max(login)
    verdict = "OK" if p95 < TARGET_LOGIN_P95_MS else "OVER TARGET"
    print(
        f"slowpeer: {args.attackers} attackers on {len(tokens)} token(s): longest {longest:.1f} s "
        f"({cut} cut at the deadline, {refused} refused 1302, {other} other); "
        f"login median {median:.1f} ms, p95 {p95:.1f} ms over "
        f"{len(login):,} requests [{verdict}: p95 < {TARGET_LOGIN_P95_MS:g} ms]"
    )


if __name__ == "__main__":
    main()
