"""The name API callbacks were queued under before they moved to jobs.tasks.deliver_callback.

Deliveries and retry schedules already stored in django-q2's tables name `jobs.outbound.deliver`;
this keeps them working after an upgrade. New ones are queued as jobs.tasks.deliver_callback.
"""

from __future__ import annotations

from jobs.tasks import deliver_callback as deliver

__all__ = ["deliver"]
