from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse


class StudioAdminSite(admin.AdminSite):
    site_header = "avatarsite administration"
    site_title = "avatarsite admin"
    index_title = "Overview"

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        from jobs.admin import overview

        return super().index(request, {**overview(), **(extra_context or {})})
