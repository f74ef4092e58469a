"""The operator's panel: every model, actions that go through the same services as the
pages, and an overview of what needs a person."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypedDict

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery, Sum
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from jobs.engines.kling import resume_submissions
from jobs.models import (
    Asset,
    AvatarJob,
    Batch,
    KlingAccount,
    Membership,
    ShareLink,
    Team,
    TeamInvite,
)
from jobs.serve import serve_stored_file
from jobs.services.jobs import job_cancel, job_poke, job_retry
from jobs.services.quotas import month_start
from jobs.services.sharing import share_revoke
from jobs.services.units import account_units, format_units, units_by_team, units_warning

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

STUCK_AFTER = timedelta(hours=1)


def needs_attention() -> Q:
    """Active jobs a person should look at: overdue at Kling, unresolved creates, paused,
    or not moved for an hour."""
    return Q(status__in=AvatarJob.ACTIVE) & (
        Q(error_code__in=("overdue", "outcome_unknown", "paused"))
        | Q(updated__lt=timezone.now() - STUCK_AFTER)
    )


def overview() -> dict[str, Any]:
    counts = dict(AvatarJob.objects.values_list("status").annotate(n=Count("pk")))
    return {
        "job_counts": [
            (label, counts.get(value, 0), value) for value, label in AvatarJob.Status.choices
        ],
        "stuck_jobs": AvatarJob.objects.filter(needs_attention())
        .select_related("team", "created_by")
        .order_by("updated")[:20],
        "kling_account": KlingAccount.objects.filter(pk=1).first(),
        **units_overview(),
    }


def units_overview() -> dict[str, Any]:
    """The Kling account's packs (read at most once a minute), whether they cover the work
    waiting for Kling, and this month's units per team and member."""
    account = account_units()
    return {
        "account": account,
        "units_warning": units_warning(account),
        "units_by_team": units_by_team(),
    }


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class _Counted(TypedDict):
    """What TeamAdmin.get_queryset annotates each team with."""

    n_members: int
    units_month: Decimal | None


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "slug",
        "personal",
        "member_count",
        "quota_draft_seconds",
        "quota_std_seconds",
        "quota_pro_seconds",
        "monthly_unit_budget",
        "units_this_month",
        "created",
    ]
    list_filter = ["personal"]
    search_fields = ["name", "slug"]
    inlines = [MembershipInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Team]:
        # A subquery, not a second join: joined with the members it would be counted per member.
        units = (
            AvatarJob.objects.filter(team=OuterRef("pk"), created__gte=month_start())
            .values("team")
            .annotate(units=Sum("units_charged"))
            .values("units")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(n_members=Count("memberships"), units_month=Subquery(units))
        )

    @admin.display(description="members", ordering="n_members")
    def member_count(self, team: WithAnnotations[Team, _Counted]) -> int:
        return team.n_members

    @admin.display(description="Kling units this month", ordering="units_month")
    def units_this_month(self, team: WithAnnotations[Team, _Counted]) -> str:
        return format_units(team.units_month or 0)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "team", "role", "created"]
    list_filter = ["role"]
    search_fields = ["user__username", "user__email", "team__name"]
    list_select_related = ["user", "team"]
    autocomplete_fields = ["user", "team"]


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    """Batches are made from the studio's pages, the command or the API; here they are read."""

    list_display = ["name", "team", "created_by", "state", "source", "created"]
    list_filter = ["state", "source"]
    search_fields = ["name", "team__name", "created_by__username"]
    list_select_related = ["team", "created_by"]
    fields = readonly_fields = (
        "name",
        "team",
        "created_by",
        "source",
        "state",
        "problem",
        "voiceovers_needed",
        "voiceovers_made",
        "attempts",
        "next_attempt_at",
        "created",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # read-only: its page is a view, with no Save buttons


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
    readonly_fields = [
        "code",
        "sha256",
        "size",
        "format",
        "width",
        "height",
        "duration",
        "file",
        "created",
    ]


class AttentionFilter(admin.SimpleListFilter):
    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Needs a person")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[AvatarJob]) -> QuerySet:
        return queryset.filter(needs_attention()) if self.value() == "yes" else queryset


@admin.register(AvatarJob)
class AvatarJobAdmin(admin.ModelAdmin):
    # Addresses typed without a scheme are https (Django 6's default, chosen now).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = [
        "name",
        "code",
        "team",
        "created_by",
        "source",
        "mode",
        "status",
        "created",
        "finished_at",
        "error_code",
    ]
    list_filter = [AttentionFilter, "status", "mode"]
    search_fields = ["name", "code", "task_id", "external_task_id", "prompt", "team__name"]
    list_select_related = ["team", "created_by"]
    date_hierarchy = "created"
    show_full_result_count = False  # no COUNT(*) over every job on each page
    actions = ["retry_jobs", "cancel_jobs", "query_kling_now"]
    # The stored files are shown as links the admin serves (video_link, poster_link).
    exclude = ["video", "poster"]
    # Upstream and lifecycle fields are written by the worker only.
    readonly_fields = [
        "code",
        "team",
        "created_by",
        "source",
        "api_token",
        "portrait",
        "audio",
        "kling_audio_id",
        "mode",
        "status",
        "external_task_id",
        "task_id",
        "source_url",
        "created",
        "submitting_at",
        "submitted_at",
        "processing_at",
        "downloading_at",
        "finished_at",
        "updated",
        "attempts",
        "next_attempt_at",
        "deadline_at",
        "error_code",
        "video_link",
        "poster_link",
        "video_size",
        "duration",
        "units_charged",
        "notified_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs are made by the studio, the command or the API

    # The files' storage URLs (/media/...) are not served: the admin serves them itself, to
    # staff who may view jobs, whatever team they are in (the studio's job-video would 404).
    def get_urls(self) -> list[URLPattern]:
        serve = self.admin_site.admin_view
        return [
            path("<int:pk>/video.mp4", serve(self.serve_video), name="jobs_avatarjob_video"),
            path("<int:pk>/poster.jpg", serve(self.serve_poster), name="jobs_avatarjob_poster"),
            *super().get_urls(),
        ]

    def _serve(self, request: HttpRequest, pk: int, field: str, kind: str) -> HttpResponseBase:
        if not self.has_view_permission(request):
            raise PermissionDenied
        job = AvatarJob.objects.filter(pk=pk).first()
        stored = getattr(job, field, None)
        if not stored:
            raise Http404("This job has no such file.")
        name = stored.name.rsplit("/", 1)[-1]
        return serve_stored_file(request, stored, content_type=kind, filename=name)

    def serve_video(self, request: HttpRequest, pk: int) -> HttpResponseBase:
        return self._serve(request, pk, "video", "video/mp4")

    def serve_poster(self, request: HttpRequest, pk: int) -> HttpResponseBase:
        return self._serve(request, pk, "poster", "image/jpeg")

    def _file_link(self, job: AvatarJob, kind: str) -> str:
        stored = getattr(job, kind)
        if not stored:
            return "-"
        url = reverse(f"admin:jobs_avatarjob_{kind}", args=[job.pk])
        return format_html('<a href="{}">{}</a>', url, stored.name)

    @admin.display(description="video")
    def video_link(self, job: AvatarJob) -> str:
        return self._file_link(job, "video")

    @admin.display(description="poster")
    def poster_link(self, job: AvatarJob) -> str:
        return self._file_link(job, "poster")

    @admin.action(description="Retry (as a new job with the same inputs)")
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[AvatarJob]) -> None:
        user = request.user
        if not user.is_authenticated:  # the admin site lets only signed-in staff this far
            raise PermissionDenied
        made = 0
        for job in queryset.select_related("team", "portrait", "audio"):
            try:
                job_retry(job=job, user=user)
                made += 1
            except ValidationError as exc:
                self.message_user(
                    request, f"{job.code}: {' '.join(exc.messages)}", messages.WARNING
                )
        self.message_user(request, f"{made} job(s) queued again.")

    @admin.action(description="Cancel (jobs not yet sent)")
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[AvatarJob]) -> None:
        canceled = sum(job_cancel(job=job) for job in queryset)
        self.message_user(request, f"{canceled} job(s) canceled; others had already started.")

    @admin.action(description="Query Kling now / take the next step now")
    def query_kling_now(self, request: HttpRequest, queryset: QuerySet[AvatarJob]) -> None:
        poked = sum(job_poke(job=job) for job in queryset)
        self.message_user(request, f"{poked} active job(s) will take their next step now.")


@admin.register(ShareLink)
class ShareLinkAdmin(admin.ModelAdmin):
    list_display = [
        "job",
        "created_by",
        "created",
        "expires_at",
        "allow_download",
        "views",
        "revoked_at",
    ]
    list_filter = ["allow_download"]
    list_select_related = ["job", "created_by"]
    readonly_fields = [
        "code",
        "job",
        "token_hash",
        "created_by",
        "created",
        "views",
        "last_viewed_at",
    ]
    actions = ["revoke"]

    @admin.action(description="Revoke")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ShareLink]) -> None:
        for link in queryset:
            share_revoke(link=link)
        self.message_user(request, "Revoked.")


@admin.register(TeamInvite)
class TeamInviteAdmin(admin.ModelAdmin):
    list_display = ["team", "role", "created_by", "created", "expires_at", "used_at", "used_by"]
    list_select_related = ["team", "created_by", "used_by"]
    readonly_fields = ["code", "token_hash", "created_by", "created", "used_at", "used_by"]


@admin.register(KlingAccount)
class KlingAccountAdmin(admin.ModelAdmin):
    list_display = ["__str__", "paused_until", "pause_code", "pause_message", "updated"]
    readonly_fields = ["pause_code", "pause_message", "updated"]
    actions = ["resume"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Resume Kling submissions now")
    def resume(self, request: HttpRequest, queryset: QuerySet[KlingAccount]) -> None:

        resume_submissions()
        self.message_user(request, "Submissions resumed; queued jobs are being sent.")
