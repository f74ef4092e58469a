"""Run the Kling simulator on loopback until Ctrl-C or SIGTERM: offline staging and benchmarks.

Prints the settings to point the studio at it, one per line, so a script can read them:

    KLING_BASE_URL=http://127.0.0.1:8765/kling
    KLING_API_KEY=sim-api-key
    KLING_ACCESS_KEY=sim-access
    KLING_SECRET_KEY=...

Use either KLING_API_KEY or the access/secret pair (the settings refuse both).
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.kling.simulator import KlingSimulator, SimulatorConfig


def _rate(value: str) -> float:
    rate = float(value)
    if not 0 <= rate <= 1:
        raise ValueError(f"{value} is not between 0 and 1")
    return rate


def _error_rates(items: list[str]) -> dict[int, float]:
    """["1303=0.2", "5000=0.05"] → {1303: 0.2, 5000: 0.05}."""
    rates = {}
    for item in items:
        code, sep, rate = item.partition("=")
        try:
            if not sep:
                raise ValueError("expected CODE=RATE")
            rates[int(code)] = _rate(rate)
        except ValueError as exc:
            raise CommandError(f"--error-rate {item!r}: {exc} (e.g. 1303=0.2)") from None
    return rates


class Command(BaseCommand):
    help = "Serve a fake Kling avatar API on loopback, with fault injection, until stopped."
    # It touches neither the database nor the URLconf: no reason to run (or wait for) checks.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
        parser.add_argument(
            "--concurrency", type=int, default=5, help="task slots; beyond them creates answer 1303"
        )
        parser.add_argument("--submitted-seconds", type=float, default=0.5)
        parser.add_argument("--processing-seconds", type=float, default=2.0)
        parser.add_argument(
            "--error-rate",
            action="append",
            default=[],
            metavar="CODE=RATE",
            help="answer creates with this business code at this rate; repeat",
        )
        parser.add_argument(
            "--query-error-rate",
            action="append",
            default=[],
            metavar="CODE=RATE",
            help="same for task queries and lists",
        )
        parser.add_argument("--latency", type=float, default=0.0, help="seconds added per reply")
        parser.add_argument(
            "--slow-reply-rate",
            type=_rate,
            default=0.0,
            help="creates whose reply comes after --slow-reply-seconds",
        )
        parser.add_argument("--slow-reply-seconds", type=float, default=5.0)
        parser.add_argument(
            "--drop-rate",
            type=_rate,
            default=0.0,
            help="creates whose connection is closed without a reply",
        )
        parser.add_argument(
            "--malformed-rate", type=_rate, default=0.0, help="creates answered with invalid JSON"
        )
        parser.add_argument(
            "--fail-rate", type=_rate, default=0.0, help="tasks that end failed (content risk)"
        )
        parser.add_argument("--callback-drop-rate", type=_rate, default=0.0)
        parser.add_argument("--callback-duplicate-rate", type=_rate, default=0.0)
        parser.add_argument(
            "--callback-reorder",
            action="store_true",
            help="send each task's callbacks newest-first once it finishes",
        )
        parser.add_argument(
            "--no-external-id-lookup",
            action="store_true",
            help="refuse GET by external_task_id, like some gateways",
        )
        parser.add_argument("--max-audio-seconds", type=int, default=300)
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        config = SimulatorConfig(
            max_concurrency=options["concurrency"],
            max_audio_seconds=options["max_audio_seconds"],
            submitted_seconds=options["submitted_seconds"],
            processing_seconds=options["processing_seconds"],
            fail_rate=options["fail_rate"],
            error_rates=_error_rates(options["error_rate"]),
            query_error_rates=_error_rates(options["query_error_rate"]),
            latency=options["latency"],
            slow_reply_rate=options["slow_reply_rate"],
            slow_reply_seconds=options["slow_reply_seconds"],
            drop_rate=options["drop_rate"],
            malformed_rate=options["malformed_rate"],
            callback_drop_rate=options["callback_drop_rate"],
            callback_duplicate_rate=options["callback_duplicate_rate"],
            callback_reorder=options["callback_reorder"],
            lookup_by_external_id=not options["no_external_id_lookup"],
            seed=options["seed"],
        )
        try:
            sim = KlingSimulator(config, host=options["host"], port=options["port"]).start()
        except OSError as exc:
            raise CommandError(
                f"Cannot listen on {options['host']}:{options['port']}: {exc}"
            ) from exc

        stop = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            for line in (
                f"KLING_BASE_URL={sim.base_url}",
                f"KLING_API_KEY={config.api_key}",
                f"KLING_ACCESS_KEY={config.access_key}",
                f"KLING_SECRET_KEY={config.secret_key}",
            ):
                self.stdout.write(line)
            self.stdout.flush()
            self.stderr.write(
                "Kling simulator running (stats: GET /_sim/stats). Use KLING_API_KEY or the "
                "access/secret pair, not both. Ctrl-C stops it."
            )
            self.stderr.flush()
            while not stop.wait(0.5):  # a timed wait lets Ctrl-C through promptly
                pass
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            sim.stop()
