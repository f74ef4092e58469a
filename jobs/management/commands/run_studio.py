"""Start the web server and the workers together (the jobs cluster and the callbacks cluster);
Ctrl-C stops them all. `--web-only` and `--worker-only` start one half, for hosts that only
serve pages or only run jobs."""

from __future__ import annotations

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
            procs["web"] = subprocess.Popen(web)
        if not options["web_only"]:
            procs["worker"] = subprocess.Popen(worker, env=jobs_env)
            procs["callbacks worker"] = subprocess.Popen(worker, env=callbacks_env)
        self.stdout.write(self.style.SUCCESS(self._banner(host, port, options)))
        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        exit_code = 0
        try:
            while not stopping:
                for name, proc in procs.items():
                    if proc.poll() is not None:
                        self.stderr.write(
                            f"The {name} process stopped (exit {proc.returncode}); "
                            "stopping the studio."
                        )
                        exit_code = proc.returncode or 1
                        stopping = True
                time.sleep(0.5)
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 20
            for proc in procs.values():
                try:
                    proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
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


def _port_from_env() -> int:
    raw = os.environ.get("PORT", "8000").strip() or "8000"
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise CommandError(f"PORT={raw!r} is not a port number: use 1-65535.")
    return int(raw)
