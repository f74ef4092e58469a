from __future__ import annotations

from django.contrib import admin

from jobs.models import Asset, AvatarJob, Membership, Team


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "personal", "created"]
    list_filter = ["personal"]
    search_fields = ["name", "slug"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "team", "role", "created"]
    list_filter = ["role"]
    search_fields = ["user__username", "team__name"]
    list_select_related = ["user", "team"]


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "kind",
        "team",
        "format",
        "width",
        "height",
        "duration",
        "size",
        "created",
    ]
    list_filter = ["kind", "format"]
    search_fields = ["name", "sha256", "team__name"]
    list_select_related = ["team"]
    readonly_fields = ["code", "sha256", "size", "format", "width", "height", "duration", "file"]


@admin.register(AvatarJob)
class AvatarJobAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "team",
        "created_by",
        "mode",
        "status",
        "created",
        "finished_at",
        "error_code",
    ]
    list_filter = ["status", "mode"]
    search_fields = ["code", "task_id", "external_task_id", "prompt", "team__name"]
    list_select_related = ["team", "created_by"]
    date_hierarchy = "created"
    readonly_fields = [
        "code",
        "external_task_id",
        "task_id",
        "created",
        "submitting_at",
        "submitted_at",
        "processing_at",
        "downloading_at",
        "finished_at",
        "updated",
        "attempts",
        "video",
        "poster",
        "video_size",
        "duration",
        "units_charged",
    ]
    raw_id_fields = ["portrait", "audio"]
