"""The worker's clock: once a second, wake the jobs (and batches) whose next step is due; every
HEARTBEAT_SECONDS, write the worker's heartbeat (jobs/heartbeat.py) for /healthz.

django-q2's scheduler only fires every 30 seconds or so, too coarse for a first Kling poll
after a few seconds or a 1 s backoff on 1303. So each worker process runs this small thread
(started on django-q2's post_spawn signal). Several of them are harmless: wake() lets the
same job in the same state through once per dedup window, and every step is a conditional
claim anyway.
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import close_old_connections

from jobs import heartbeat
from jobs.services.batch_jobs import batch_sweep
from jobs.services.jobs import reconcile

log = logging.getLogger(__name__)
TICK_SECONDS = 1.0
_started = threading.Event()


def run_forever(stop: threading.Event) -> None:
    last_beat = 0.0
    while not stop.wait(TICK_SECONDS):
        try:
            close_old_connections()
            if time.monotonic() - last_beat >= heartbeat.HEARTBEAT_SECONDS:
                heartbeat.beat()
                last_beat = time.monotonic()
            reconcile()
            batch_sweep()
        except Exception:
            log.exception("ticker: could not wake due jobs; trying again")


def start() -> None:
    """Start the ticker thread in this process, once."""
    if _started.is_set():
        return
    _started.set()
    threading.Thread(
        target=run_forever, args=(threading.Event(),), name="avatarsite-ticker", daemon=True
    ).start()
