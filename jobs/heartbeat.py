"""Worker liveness: each worker process writes the time into the cache every few seconds.

The cache is shared by every host (Redis, or the database cache table), and each write
overwrites the last, so the value is the newest heartbeat of any worker. /healthz fails when it
is older than WORKER_HEARTBEAT_MAX_AGE, and /metrics shows its age.
"""

from __future__ import annotations

import time

from django.core.cache import cache

HEARTBEAT_KEY = "avatarsite:worker-heartbeat"
HEARTBEAT_SECONDS = 10.0


def beat(now: float | None = None) -> None:
    cache.set(HEARTBEAT_KEY, time.time() if now is None else now, timeout=None)


def last_beat() -> float | None:
    """The newest worker heartbeat (a Unix time), or None if no worker ever wrote one."""
    value = cache.get(HEARTBEAT_KEY)
    return float(value) if isinstance(value, int | float) else None


def age(now: float | None = None) -> float | None:
    last = last_beat()
    return None if last is None else max((time.time() if now is None else now) - last, 0.0)
