"""Every django-q2 entry point: thin, takes ids, safe to run twice.

The dotted names of these functions are stored in django-q2's queue and schedule tables
(jobs/migrations/0002_reconcile_schedule.py stores `jobs.tasks.reconcile`), so they keep their
names and their place.
"""

from __future__ import annotations

from jobs.api import callbacks
from jobs.services import batch_jobs
from jobs.services import jobs as job_services


def advance_job(job_id: int) -> None:
    """Do the next step of one job (jobs/services/jobs.py: job_advance)."""
    job_services.job_advance(job_id=job_id)


def reconcile() -> int:
    """Wake every job and batch that is due (every minute from django-q2's scheduler)."""
    return job_services.reconcile() + batch_jobs.batch_sweep()


def prepare_batch(batch_id: int) -> str:
    """Make a confirmed batch's voice-overs, then its jobs (jobs/services/batch_jobs.py)."""
    return batch_jobs.batch_prepare(batch_id)


def deliver_callback(job_id: int, attempt: int = 1) -> str:
    """Tell an API caller's callback_url about its task's new status (jobs/api/callbacks.py)."""
    return callbacks.deliver(job_id, attempt)
