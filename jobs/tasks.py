"""django-q2 entry points: thin, take ids, safe to run twice."""

from __future__ import annotations

from jobs import services


def advance_job(job_id: int) -> None:
    services.job_advance(job_id=job_id)


def reconcile() -> int:
    return services.reconcile()
