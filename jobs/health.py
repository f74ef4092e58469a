"""What /healthz checks: django-health-check's database, cache and storage checks, and two of
ours, the queue's broker and the age of the newest worker heartbeat (jobs/heartbeat.py).

Ours are async and reach the database through sync_to_async (thread-sensitive), so they use the
request's connection instead of leaving one open in an executor thread.
"""

from __future__ import annotations

import dataclasses

from asgiref.sync import sync_to_async
from django.conf import settings
from django_q.brokers import get_broker
from health_check.base import HealthCheck
from health_check.checks import Cache, Database, Storage
from health_check.exceptions import ServiceUnavailable

from jobs import heartbeat


def _queue_size() -> int:
    broker = get_broker()  # the jobs cluster's: Redis with REDIS_URL, else the database
    if not broker.ping():
        raise ServiceUnavailable("the queue's broker does not answer")
    return int(broker.queue_size() or 0)


@dataclasses.dataclass
class QueueBroker(HealthCheck):
    """The django-q2 broker answers (and can count its queue)."""

    async def run(self) -> None:
        try:
            await sync_to_async(_queue_size)()
        except ServiceUnavailable:
            raise
        except Exception as exc:  # redis.ConnectionError, DatabaseError: all mean "down"
            name = type(exc).__name__
            raise ServiceUnavailable(f"the queue's broker is unreachable ({name})") from exc


@dataclasses.dataclass
class WorkerHeartbeat(HealthCheck):
    """Some worker wrote its heartbeat within WORKER_HEARTBEAT_MAX_AGE seconds."""

    async def run(self) -> None:
        try:
            age = await sync_to_async(heartbeat.age)()
        except Exception as exc:
            name = type(exc).__name__
            raise ServiceUnavailable(f"the heartbeat cannot be read ({name})") from exc
        limit = settings.WORKER_HEARTBEAT_MAX_AGE
        if age is None:
            raise ServiceUnavailable("no worker has written a heartbeat: start `qcluster`")
        if age > limit:
            raise ServiceUnavailable(
                f"the newest worker heartbeat is {age:.0f} s old (limit {limit} s): "
                "are the workers running?"
            )


def health_checks() -> dict[str, HealthCheck]:
    """The checks by the names /healthz reports them under."""
    return {
        "database": Database(),
        "cache": Cache(),
        "queue": QueueBroker(),
        "storage": Storage(),
        "worker_heartbeat": WorkerHeartbeat(),
    }
