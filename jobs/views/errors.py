"""The error pages Django does not style by itself: a refused CSRF check and 405.

400, 403, 404 and 500 are Django's own handlers rendering templates/<code>.html.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.middleware.csrf import REASON_NO_CSRF_COOKIE
from django.shortcuts import render


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """settings.CSRF_FAILURE_VIEW: what happened and what to do, instead of Django's bare 403."""
    context = {"cookies_missing": reason == REASON_NO_CSRF_COOKIE}
    return render(request, "csrf_failure.html", context, status=403)


class MethodNotAllowedMiddleware:
    """Django has no handler405: a page answers a wrong method (a GET of a POST-only address,
    from a reload or a bookmark) with an empty 405. Browsers get a page that says what to do;
    the API (JSON, its own bodies) and htmx requests keep the plain answer."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if (
            response.status_code != 405
            or (isinstance(response, HttpResponse) and response.content)
            or request.headers.get("HX-Request")
            or request.method == "HEAD"
            or not request.accepts("text/html")  # machines (callbacks, openapi.json)
        ):
            return response
        page = render(request, "405.html", {"allowed": response.get("Allow", "")}, status=405)
        page["Allow"] = response.get("Allow", "")
        return page
