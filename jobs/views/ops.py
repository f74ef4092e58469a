"""The operators' endpoints: /healthz for load balancers and monitors, /metrics for Prometheus."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe
from django_prometheus.exports import ExportToDjangoView
from health_check.views import HealthCheckView
from prometheus_client import CollectorRegistry, generate_latest

from avatarsite.client_ip import client_ip
from jobs.health import health_checks
from jobs.metrics import StudioCollector


class HealthView(HealthCheckView):
    """200 when every check passes, else 503; JSON naming each check, and why it failed to
    those /metrics answers (a reason can name an internal host or bucket).

    django-health-check runs the checks side by side; its own view answers 500 and picks a
    format by the Accept header, while a load balancer wants 503 and monitors one shape.
    """

    http_method_names = ["get", "head"]

    async def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        named = health_checks()
        with self.get_executor() as executor:
            results = await asyncio.gather(*(c.get_result(executor) for c in named.values()))
        outcome = dict(zip(named, results, strict=True))
        detail = _metrics_allowed(request)
        checks = {
            name: (str(r.error) if detail else "failing") if r.error else "ok"
            for name, r in outcome.items()
        }
        failing = [name for name, r in outcome.items() if r.error]
        body = {"status": "failing" if failing else "ok", "failing": failing, "checks": checks}
        return JsonResponse(body, status=503 if failing else 200)


healthz = HealthView.as_view()


def _metrics_allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header.removeprefix("Bearer ").strip(), token)
    address = client_ip(request)
    if not address or not settings.METRICS_ALLOWLIST:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in settings.METRICS_ALLOWLIST)


@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text: django-prometheus's request and database metrics, then the studio's."""
    if not _metrics_allowed(request):
        response = HttpResponse(
            "/metrics needs METRICS_TOKEN as a bearer token (Authorization: Bearer …) or a "
            "client address inside METRICS_ALLOWLIST.\n",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    response = ExportToDjangoView(request)
    studio = CollectorRegistry(auto_describe=False)
    studio.register(StudioCollector())
    response.content = response.content + generate_latest(studio)
    response["Cache-Control"] = "no-store"
    return response
