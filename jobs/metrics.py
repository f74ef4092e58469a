"""The studio's own Prometheus metrics, read from the database at scrape time.

The database is the truth for every host, so any web process answers for the whole studio
(a counter kept in one worker's memory would show only that worker's share and reset with it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count
from django.utils import timezone
from django_q.brokers import get_broker
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from jobs import heartbeat
from jobs.models import AvatarJob, KlingAccount

log = logging.getLogger(__name__)

# Finished jobs whose stage durations the histogram describes: this recent window, at most
# STAGE_SAMPLE of them, so a scrape stays a few milliseconds however old the studio is.
STAGE_WINDOW = timedelta(hours=24)
STAGE_SAMPLE = 5000
STAGE_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)
# (stage, from field, to field): the draft engine goes queued → processing directly.
STAGES = (
    ("queued", "created", "first_step_at"),
    ("submitting", "submitting_at", "submitted_at"),
    ("kling", "submitted_at", "downloading_at"),
    ("rendering", "processing_at", "finished_at"),  # drafts only: render and store
    ("downloading", "downloading_at", "finished_at"),
    ("total", "created", "finished_at"),
)


def _histogram(samples: list[float]) -> tuple[list[tuple[str, float]], float]:
    buckets = [(str(b), float(sum(1 for s in samples if s <= b))) for b in STAGE_BUCKETS]
    return [*buckets, ("+Inf", float(len(samples)))], sum(samples)


class StudioCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._jobs()
            yield from self._stages()
            yield from self._kling()
        except DatabaseError as exc:  # /metrics still answers; the gap shows on the graphs
            log.warning("metrics: the database did not answer: %s", exc)
        yield from self._queue()
        yield from self._heartbeat()

    def _jobs(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "avatarsite_jobs", "Jobs by status and mode.", labels=["status", "mode"]
        )
        counts = {
            (row["status"], row["mode"]): row["n"]
            for row in AvatarJob.objects.values("status", "mode").annotate(n=Count("id"))
        }
        for status in AvatarJob.Status.values:
            for mode in AvatarJob.Mode.values:
                jobs.add_metric([status, mode], counts.get((status, mode), 0))
        yield jobs
        errors = GaugeMetricFamily(
            "avatarsite_job_errors",
            "Jobs whose latest error carries this code (Kling's codes, or ours), by mode.",
            labels=["code", "mode"],
        )
        rows = (
            AvatarJob.objects.exclude(error_code="")
            .values("error_code", "mode")
            .annotate(n=Count("id"))
        )
        for row in rows:
            errors.add_metric([row["error_code"], row["mode"]], row["n"])
        yield errors

    def _stages(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            "avatarsite_job_stage_seconds",
            f"How long jobs finished in the last {STAGE_WINDOW} spent in each stage.",
            labels=["stage", "mode"],
        )
        fields = ("mode", "created", "submitting_at", "submitted_at", "processing_at")
        rows = (
            AvatarJob.objects.filter(
                status=AvatarJob.Status.SUCCEEDED,
                finished_at__gte=timezone.now() - STAGE_WINDOW,
            )
            .order_by("-finished_at")
            .values(*fields, "downloading_at", "finished_at")[:STAGE_SAMPLE]
        )
        samples: dict[tuple[str, str], list[float]] = {}
        for row in rows:
            row["first_step_at"] = row["submitting_at"] or row["processing_at"]
            for stage, start, end in STAGES:
                if stage == "rendering" and row["mode"] != AvatarJob.Mode.DRAFT:
                    continue
                if row[start] and row[end]:
                    seconds = max((row[end] - row[start]).total_seconds(), 0.0)
                    samples.setdefault((stage, row["mode"]), []).append(seconds)
        for (stage, mode), values in sorted(samples.items()):
            buckets, total = _histogram(values)
            family.add_metric([stage, mode], buckets, total)
        yield family

    def _kling(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "avatarsite_kling_slots_in_use",
            "Kling jobs holding a concurrency slot (submitting, submitted, processing).",
            value=AvatarJob.objects.in_flight().count(),
        )
        yield GaugeMetricFamily(
            "avatarsite_kling_slots_limit",
            "KLING_MAX_CONCURRENCY.",
            value=settings.KLING_MAX_CONCURRENCY,
        )
        account = KlingAccount.objects.filter(pk=1).first()
        paused = GaugeMetricFamily(
            "avatarsite_kling_paused",
            "1 while Kling submissions are paused for the operator (bad key, empty pack).",
            labels=["code"],
        )
        is_paused = bool(account and account.is_paused)
        paused.add_metric([account.pause_code if account and is_paused else ""], int(is_paused))
        yield paused

    def _queue(self) -> Iterator[Metric]:
        try:
            depth = get_broker().queue_size()
        except Exception as exc:  # a broken broker must not break the page that shows it
            log.warning("metrics: the queue's broker did not answer: %s", exc)
            return
        yield GaugeMetricFamily(
            "avatarsite_queue_depth",
            "Tasks waiting in the jobs cluster's queue.",
            value=int(depth or 0),
        )

    def _heartbeat(self) -> Iterator[Metric]:
        try:
            age = heartbeat.age()
        except Exception:
            return
        if age is not None:
            yield GaugeMetricFamily(
                "avatarsite_worker_heartbeat_age_seconds",
                "Seconds since the newest worker heartbeat.",
                value=age,
            )
