"""Endpoints that outside services call: Kling's status callbacks."""

from __future__ import annotations

import json
from uuid import UUID

from django.http import HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from jobs.engines.kling import callback_hint
from jobs.links import callback_secret
from jobs.models import AvatarJob


@csrf_exempt
@require_POST
def kling_callback(request: HttpRequest, code: UUID, secret: str) -> HttpResponse:
    """Kling's status-change notice: only a hint to ask Kling now; the body is never trusted."""
    job = AvatarJob.objects.filter(code=code).first()
    if job is None or not constant_time_compare(secret, callback_secret(job)):
        return HttpResponse(status=404)
    hint = None
    try:
        body = json.loads(request.body or b"{}")
        if isinstance(body, dict) and isinstance(body.get("task_status"), str):
            hint = body["task_status"]
    except ValueError:
        pass
    callback_hint(job, hint)
    return HttpResponse(status=204)
