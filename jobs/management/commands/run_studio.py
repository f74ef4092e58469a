"""Start the web server and the workers together (the jobs cluster and the callbacks cluster);
Ctrl-C stops them all. `--web-only` and `--worker-only` start one half, for hosts that only
serve pages or only run jobs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


def web_command(host: str, port: int) -> list[str]:
    """The studio's gunicorn: a few threaded workers, logging requests to stdout."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "avatarsite.wsgi:application",
        "--bind",
        f"{host}:{port}",
        "--workers",
        "2",
        "--threads",
        "4",
        "--worker-class",
        "gthread",
        "--timeout",
        "120",
        "--graceful-timeout",
        "10",
        "--access-logfile",
        "-",
        # Unused here, and one per user: two studios on a host would share it.
        "--no-control-socket",
        "--chdir",
        str(settings.BASE_DIR),
    ]


class Command(BaseCommand):
    help = (
        "Run gunicorn on 127.0.0.1:$PORT (8000) and the django-q2 workers (jobs and callbacks) "
        "until Ctrl-C."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=None)
        only = parser.add_mutually_exclusive_group()
        only.add_argument(
            "--web-only", action="store_true", help="Only the web server (a web host)."
        )
        only.add_argument(
            "--worker-only",
            action="store_true",
            help="Only the workers, jobs and callbacks clusters (a worker host).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        port = options["port"] or _port_from_env()
        host = options["host"]
        python = sys.executable
        manage = str(settings.BASE_DIR / "manage.py")
        web = web_command(host, port)
        worker = [python, manage, "qcluster"]
        # The callbacks cluster: same command, its own queue (settings.ALT_CLUSTERS).
        callbacks_env = {**os.environ, "Q_CLUSTER_NAME": settings.API_CALLBACK_CLUSTER}
        jobs_env = {**os.environ, "Q_CLUSTER_NAME": str(settings.Q_CLUSTER["name"])}
        procs: dict[str, subprocess.Popen[bytes]] = {}
        if not options["worker_only"]:
            procs["web"] = _start(web)
        if not options["web_only"]:
            procs["worker"] = _start(worker, env=jobs_env)
            procs["callbacks worker"] = _start(worker, env=callbacks_env)
        self.stdout.write(self.style.SUCCESS(self._banner(host, port, options)))
        exit_code = 0
        try:
            exit_code = self._watch(procs)
        finally:
            self._stop(procs)
        self.stdout.write("Stopped.")
        if exit_code:
            raise CommandError(
                "The studio stopped because one of its processes died.", returncode=exit_code
            )

    def _banner(self, host: str, port: int, options: dict[str, Any]) -> str:
        if options["worker_only"]:
            return (
                "\navatarsite workers are running (jobs and callbacks clusters).\n"
                "Press Ctrl-C to stop them.\n"
            )
        admin = get_user_model().objects.filter(is_superuser=True).order_by("pk").first()
        what = "the web server" if options["web_only"] else "the web server and the workers"
        return (
            f"\navatarsite is running: http://{host}:{port}/\n"
            + (
                f"Log in as '{admin.get_username()}' (the password printed when the "
                "account was made, or DJANGO_SUPERUSER_PASSWORD).\n"
                if admin
                else ""
            )
            + f"Press Ctrl-C to stop {what}.\n"
        )

    def _watch(self, procs: dict[str, subprocess.Popen[bytes]]) -> int:
        """Wait for Ctrl-C (or SIGTERM) or for a process to die; its exit code, or 0."""
        self.stopping = self.hurry = False

        def stop(*_: Any) -> None:
            if self.stopping:
                self.hurry = True  # a second Ctrl-C: do not wait for the graceful stop
                self.stderr.write("Stopping now.")
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        while not self.stopping:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    self.stderr.write(
                        f"The {name} process stopped (exit {proc.returncode}); stopping the studio."
                    )
                    self.stopping = True  # a Ctrl-C from now on hurries the stop
                    return proc.returncode or 1
            time.sleep(0.5)
        return 0

    def _stop(self, procs: dict[str, subprocess.Popen[bytes]]) -> None:
        self.stdout.write("Stopping: running requests and tasks get to finish.")
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # the graceful stop of gunicorn and qcluster
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while any(p.poll() is None for p in procs.values()):
            if self.hurry or time.monotonic() > deadline:
                for name, proc in procs.items():
                    if proc.poll() is None:
                        self.stderr.write(f"The {name} process did not stop in time: killed.")
                        _kill_group(proc)
                return
            time.sleep(0.1)


# gunicorn's own graceful timeout is 10 s; a worker's task may take a moment to save its state.
STOP_GRACE_SECONDS = 20


def _start(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A child in its own process group, so that Ctrl-C reaches this command alone.

    A terminal sends SIGINT to the whole group: gunicorn's workers then quit at once while its
    master asks them to stop, and the master SIGKILLs the one still closing ("Perhaps out of
    memory?"). Here every child gets one SIGTERM, its graceful stop, from this command.
    """
    return subprocess.Popen(command, env=env, process_group=0)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a child and everything it started (its process group, see `_start`): killing
    only qcluster's or gunicorn's master would leave its workers running as orphans."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _port_from_env() -> int:
    raw = os.environ.get("PORT", "8000").strip() or "8000"
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise CommandError(f"PORT={raw!r} is not a port number: use 1-65535.")
    return int(raw)
