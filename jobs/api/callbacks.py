"""Callbacks out: tell an API caller's `callback_url` about each status change of its task.

What is sent is what Kling sends: the bare task object (no envelope), POSTed as JSON, whenever
the task's Kling status (submitted, processing, succeed, failed) differs from the last one the
caller was told (`AvatarJob.client_callback_status`). Each delivery sends the job's state as it
is *now*, so a status that was overtaken while a delivery was failing is skipped rather than
sent late and out of order: a receiver sees statuses only move forward, each once.

How it runs (never sleeping inside a task), on its own django-q2 cluster
(settings.API_CALLBACK_CLUSTER), so a slow receiver never delays job work:

- `api_callback_if_changed` is cheap and is called after every worker step and when an API job
  is created; when the status moved on it enqueues `deliver` (deduplicated for a few seconds).
- `deliver` holds a short per-job lock so two deliveries never race each other out of order,
  POSTs through `jobs.netfetch` (same address checks as fetching: public addresses only unless
  ALLOW_PRIVATE_URLS, pinned to the checked IP, no redirects, a 5 s deadline), and records
  what the caller now knows with a conditional UPDATE.
- A failed delivery schedules its own retry as a one-off django-q2 Schedule named after the
  job, with exponential backoff (10 s, 20 s, 40 s ... about 20 minutes in all; django-q2's
  scheduler runs about every 30 s, so early retries land on its next run). While a retry is
  pending, new status changes wait for it: it sends the newest state. After MAX_ATTEMPTS the
  status is given up on (logged) and the next change starts afresh.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

from jobs import netfetch
from jobs.api.contract import task_object
from jobs.links import public_base_url
from jobs.models import AvatarJob
from jobs.presenters import kling_status

log = logging.getLogger(__name__)

# Wall-clock seconds for one delivery (DNS, connect, TLS, the answer), enforced at the socket:
# a receiver only has to say "got it".
CALLBACK_TIMEOUT = 5.0
MAX_ATTEMPTS = 8
FIRST_RETRY_SECONDS = 10.0
MAX_RETRY_SECONDS = 30 * 60.0
LOCK_SECONDS = 60  # longer than one delivery can take (CALLBACK_TIMEOUT, four rounds)
DEDUP_SECONDS = 30


def schedule_name(job_id: int) -> str:
    return f"api-callback-{job_id}"


def retry_delay(attempt: int) -> float:
    """Seconds before delivery attempt number `attempt` (2, 3, ...): doubling, with jitter."""
    base = min(FIRST_RETRY_SECONDS * 2 ** max(attempt - 2, 0), MAX_RETRY_SECONDS)
    return base * random.uniform(1.0, 1.2)


def api_callback_if_changed(*, job_id: int) -> bool:
    """Enqueue a delivery if the caller has not been told the job's current status; True if so."""
    row = (
        AvatarJob.objects.filter(pk=job_id)
        .exclude(client_callback_url="")
        .values_list("status", "client_callback_status")
        .first()
    )
    if row is None:
        return False
    status = kling_status(row[0])
    if status == row[1]:
        return False
    if Schedule.objects.filter(name=schedule_name(job_id)).exists():
        return False  # a retry is waiting out its backoff; it will send the newest state
    key = f"api-callback:{job_id}:{status}"
    if not cache.add(key, 1, timeout=DEDUP_SECONDS):
        return False
    try:
        async_task(
            "jobs.tasks.deliver_callback",
            job_id,
            task_name=f"api-callback-{job_id}",
            group="api",
            cluster=settings.API_CALLBACK_CLUSTER,
        )
    except Exception:
        cache.delete(key)
        log.exception("could not enqueue the callback for job %s", job_id)
        return False
    return True


def deliver(job_id: int, attempt: int = 1) -> str:
    """Tell the caller the job's current status if they have not been told it (a django-q2 task).

    Returns what happened: "sent", "nothing" (nothing new to tell), "retry" (failed; a retry
    is scheduled), "abandoned" (failed MAX_ATTEMPTS times) or "busy" (another delivery for the
    job is running; it looks again once it lets go of the lock, so nothing is lost).
    """
    outcome = "nothing"
    for _ in range(4):
        lock = f"api-callback-lock:{job_id}"
        if not cache.add(lock, 1, timeout=LOCK_SECONDS):
            return "busy"
        try:
            result = _deliver_once(job_id, attempt)
        finally:
            cache.delete(lock)
        # Look again after letting go of the lock: a change that came in while it was held was
        # turned away as "busy" and is ours to send.
        if result == "nothing":
            return outcome
        outcome = result
        if result != "sent":
            return result
        attempt = 1
    return outcome


def _deliver_once(job_id: int, attempt: int) -> str:
    job = AvatarJob.objects.filter(pk=job_id).first()
    if job is None or not job.client_callback_url:
        return "nothing"
    status, told = kling_status(job.status), job.client_callback_status
    if status == told:
        return "nothing"
    body = task_object(job, base_url=public_base_url())
    try:
        http_status = netfetch.post_json(job.client_callback_url, body, timeout=CALLBACK_TIMEOUT)
        problem = None if 200 <= http_status < 300 else f"it answered HTTP {http_status}"
    except (netfetch.UrlRefused, netfetch.FetchError) as exc:
        problem = str(exc)
    if problem is None:
        # Conditional, so a slower delivery of an older state can never overwrite a newer one.
        AvatarJob.objects.filter(pk=job.pk, client_callback_status=told).update(
            client_callback_status=status
        )
        Schedule.objects.filter(name=schedule_name(job.pk)).delete()
        return "sent"
    if attempt >= MAX_ATTEMPTS:
        log.warning(
            "giving up telling %s that job %s is %s after %s attempts: %s",
            job.client_callback_url,
            job.code,
            status,
            attempt,
            problem,
        )
        AvatarJob.objects.filter(pk=job.pk, client_callback_status=told).update(
            client_callback_status=status
        )
        return "abandoned"
    log.info(
        "callback for job %s (%s) failed on attempt %s: %s", job.code, status, attempt, problem
    )
    schedule_retry(job_id=job.pk, attempt=attempt + 1)
    return "retry"


def schedule_retry(*, job_id: int, attempt: int) -> Schedule:
    """One pending retry per job, replacing any earlier one."""
    name = schedule_name(job_id)
    with transaction.atomic():
        Schedule.objects.filter(name=name).delete()
        return Schedule.objects.create(
            name=name,
            func="jobs.tasks.deliver_callback",
            kwargs=repr({"job_id": job_id, "attempt": attempt}),
            schedule_type=Schedule.ONCE,
            cluster=settings.API_CALLBACK_CLUSTER,
            repeats=-1,  # a ONCE schedule with negative repeats is deleted once it has run
            next_run=timezone.now() + timedelta(seconds=retry_delay(attempt)),
        )
