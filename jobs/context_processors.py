from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from jobs import kling


def studio(request: HttpRequest) -> dict[str, Any]:
    return {"kling_configured": kling.is_configured()}
