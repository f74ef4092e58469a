"""`make run`'s last step starts the web server and the workers (jobs and callbacks clusters);
SIGINT stops them all. `--web-only` and `--worker-only` start one half each."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import ROOT


def stop_studio(proc: subprocess.Popen) -> None:
    """After a failure: run_studio stops its children (each in its own process group) itself."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_run_studio_serves_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    env = {**os.environ, "DATA_DIR": str(tmp_path), "PORT": str(port)}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    manage = [sys.executable, str(ROOT / "manage.py")]
    for step in (
        ["migrate", "--noinput", "-v", "0"],
        ["collectstatic", "--noinput", "-v", "0"],
        ["createcachetable"],
    ):
        subprocess.run(manage + step, env=env, cwd=ROOT, check=True, timeout=120)
    log = tmp_path / "run_studio.log"
    proc = subprocess.Popen(
        manage + ["run_studio"],
        env=env,
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline, status = time.monotonic() + 60, None
        while time.monotonic() < deadline and status is None:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/accounts/login/", timeout=2
                ) as r:
                    status = r.status
                    page = r.read().decode()
            except OSError:
                time.sleep(0.3)
        assert status == 200 and "Log in" in page
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/css/studio.css") as r:
            assert r.status == 200
        while time.monotonic() < deadline and log.read_text().count("] running.") < 2:
            time.sleep(0.3)  # both clusters are up: a stop now is the everyday one
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        proc.wait(timeout=40)
    finally:
        stop_studio(proc)
    text = log.read_text()
    assert f"avatarsite is running: http://127.0.0.1:{port}/" in text
    assert "Stopped." in text
    # Two django-q2 clusters: the jobs one and the callbacks one (ALT_CLUSTERS).
    running = re.findall(r"Q Cluster \S+ \[(\w+)\] running\.", text)
    assert sorted(running) == ["avatarsite", "callbacks"], text
    assert proc.returncode == 0
    # One graceful stop: nothing was killed on the way out, and no process is left behind.
    assert "SIGKILL" not in text and "killed" not in text and "out of memory" not in text, text
    # gunicorn gets the graceful SIGTERM from run_studio alone: the terminal's SIGINT to the whole
    # group made it quit hard, and now and then SIGKILL a worker still closing.
    assert "Handling signal: term" in text and "Handling signal: int" not in text, text
    assert "Shutting down: Master" in text
    gunicorn = re.findall(r"Listening at: \S+ \((\d+)\)|Booting worker with pid: (\d+)", text)
    assert len(gunicorn) == 3, text  # the master and its two workers
    for pid in (int(a or b) for a, b in gunicorn):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=2)


def _prepared(tmp_path) -> tuple[dict[str, str], list[str]]:
    env = {**os.environ, "DATA_DIR": str(tmp_path), "PORT": str(free_port())}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    manage = [sys.executable, str(ROOT / "manage.py")]
    for step in (["migrate", "--noinput", "-v", "0"], ["createcachetable"]):
        subprocess.run(manage + step, env=env, cwd=ROOT, check=True, timeout=120)
    return env, manage


def _run_for(manage: list[str], env: dict[str, str], flag: str, until) -> str:  # noqa: ANN001
    """Start `run_studio <flag>`, wait until `until()` holds, Ctrl-C it; its whole output."""
    proc = subprocess.Popen(
        manage + ["run_studio", flag],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not until():
            time.sleep(0.3)
        time.sleep(2)  # what else it would start has had time to
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=40)
    finally:
        stop_studio(proc)
    assert proc.returncode == 0, out.decode()
    return out.decode()


def _serving(port: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=2):
            return True
    except OSError:
        return False


@pytest.mark.slow
def test_web_only_starts_the_web_server_and_no_worker(tmp_path):
    env, manage = _prepared(tmp_path)
    out = _run_for(manage, env, "--web-only", lambda: _serving(env["PORT"]))
    assert f"avatarsite is running: http://127.0.0.1:{env['PORT']}/" in out
    assert "Press Ctrl-C to stop the web server.\n" in out
    assert "Q Cluster" not in out, out
    assert "Stopped." in out


@pytest.mark.slow
def test_worker_only_starts_both_clusters_and_no_web_server(tmp_path):
    env, manage = _prepared(tmp_path)
    started = time.monotonic()  # the output is read at the end: give the clusters 8 s
    out = _run_for(manage, env, "--worker-only", lambda: time.monotonic() - started > 8)
    running = re.findall(r"Q Cluster \S+ \[(\w+)\] running\.", out)
    assert sorted(running) == ["avatarsite", "callbacks"], out
    assert "workers are running" in out and "http://" not in out
    assert "gunicorn" not in out.lower()
    assert not _serving(env["PORT"])


STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import signal, time; "
                          "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60)
"""


def test_a_child_that_ignores_the_stop_is_killed_with_everything_it_started(monkeypatch, capsys):
    """qcluster's master killed alone would leave its sentinel and workers running as orphans."""
    from jobs.management.commands import run_studio

    monkeypatch.setattr(run_studio, "STOP_GRACE_SECONDS", 1)
    proc = run_studio._start([sys.executable, "-c", STUBBORN])
    grandchild = None
    try:
        command = run_studio.Command()
        command.hurry = False
        deadline = time.monotonic() + 10
        # The grandchild's pid, from the child's process group.
        while grandchild is None and time.monotonic() < deadline:
            members = subprocess.run(
                ["pgrep", "-g", str(proc.pid)], capture_output=True, text=True
            ).stdout.split()
            others = [int(pid) for pid in members if int(pid) != proc.pid]
            grandchild = others[0] if others else None
            time.sleep(0.1)
        assert grandchild is not None
        command._stop({"stubborn": proc})
        assert "The stubborn process did not stop in time: killed." in capsys.readouterr().err
        assert proc.returncode == -signal.SIGKILL
        deadline = time.monotonic() + 5
        while _alive(grandchild) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(grandchild)
    finally:  # whatever happened, nothing of this test keeps running
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Running, not gone nor a zombie waiting for whoever adopted it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
