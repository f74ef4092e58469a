"""Batches: the spreadsheet checked in full, the confirmation, and the batch's live page.

Checking stores nothing; only a batch whose rows all pass (or whose bad rows the user chose to
leave out) gets a confirmation page, which carries the checked plan signed, so the confirm
neither trusts the browser nor checks the files again.
"""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from jobs.access import Access, StudioRequest, current_team, get_batch, get_template
from jobs.forms import BatchForm, ShareForm
from jobs.links import public_base_url
from jobs.models import AvatarJob, Batch, JobTemplate
from jobs.services import batch_jobs
from jobs.services import batches as batch_services
from jobs.services.batch_runs import REPORT_HEADER, file_stem, report_rows, video_entries
from jobs.services.units import batch_units
from jobs.tts.script import SPEED_MAX, SPEED_MIN
from jobs.views.dashboard import POLL_SECONDS, parse_codes
from jobs.views.teams import no_store
from jobs.voices import VOICES
from jobs.zipstream import stream_zip

PLAN_SALT = "jobs.batch.plan"
PLAN_MAX_AGE = 24 * 3600  # seconds a confirmation page may wait


def _forbidden(request: StudioRequest, access: Access) -> HttpResponse:
    return render(request, "jobs/read_only.html", {"access": access}, status=403)


@login_required
@require_http_methods(["GET", "POST"])
def batch_new(request: StudioRequest) -> HttpResponse:
    """GET: the form. POST: check every row; show the problems, or the confirmation."""
    access = current_team(request)
    if not access.may("create_batch"):
        return _forbidden(request, access)
    context: dict[str, Any] = {
        "access": access,
        "recent": _recent(access),
        "templates": JobTemplate.objects.filter(team=access.team).select_related("portrait"),
        "can_manage_templates": access.may("manage_template"),
        "voices": VOICES,
        "default_voice": batch_services.DEFAULT_VOICE,
        "speed_range": (SPEED_MIN, SPEED_MAX),
    }
    if request.method != "POST":
        template = _template(request, access, request.GET.get("template", ""))
        context.update(
            form=BatchForm(initial={"template": template.code if template else None}),
            template=template,
        )
        return render(request, "jobs/batch_new.html", context)
    form = BatchForm(request.POST, request.FILES)
    context["form"] = form
    if not form.is_valid():
        return render(request, "jobs/batch_new.html", context)
    data = form.cleaned_data
    archive = data.get("archive")
    template = _template(request, access, str(data.get("template") or ""))
    context["template"] = template
    check = batch_services.batch_check(
        team=access.team, csv_text=data["csv_text"], archive=archive, template=template
    )
    context.update(
        check=check,
        quota=batch_services.quota_figures(check.needs),
        unit_estimate=batch_units(team=access.team, rows=check.good_rows),
    )
    if check.ok or (data["drop_bad"] and check.usable):
        plan = batch_services.batch_store_files(check=check, team=access.team, user=request.user)
        upload = data.get("rows_file")
        name = data["name"] or batch_services.default_batch_name(getattr(upload, "name", ""))
        context.update(
            name=name,
            token=signing.dumps(
                {"code": str(uuid.uuid4()), "name": name, "plan": plan},
                salt=PLAN_SALT,
                compress=True,
            ),
            dropped=check.bad_rows,
        )
        return render(request, "jobs/batch_confirm.html", context)
    # Refused: the rows come back as text to fix here; a file input cannot be refilled.
    form = BatchForm(
        initial={
            "rows": data["csv_text"],
            "name": data["name"],
            "drop_bad": data["drop_bad"],
            "template": template.code if template else None,
        }
    )
    context.update(form=form, zip_again=bool(archive))
    return render(request, "jobs/batch_new.html", context)


@login_required
@require_POST
def batch_confirm(request: StudioRequest) -> HttpResponse:
    access = current_team(request)
    if not access.may("create_batch"):
        return _forbidden(request, access)
    try:
        signed = signing.loads(request.POST.get("plan", ""), salt=PLAN_SALT, max_age=PLAN_MAX_AGE)
        code = UUID(signed["code"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        messages.error(request, "This confirmation is too old or damaged: check the batch again.")
        return redirect("jobs:batch-new")
    try:
        batch = batch_jobs.batch_create(
            team=access.team, user=request.user, plan=signed["plan"], name=signed["name"], code=code
        )
    except ValidationError as exc:
        existing = Batch.objects.filter(code=code, team=access.team).first()
        if exc.code == "exists" and existing:
            return redirect(existing)
        messages.error(request, " ".join(exc.messages))
        return redirect("jobs:batch-new")
    if batch.state == Batch.State.PREPARING:
        messages.success(
            request,
            f"Batch confirmed: {len(batch.plan)} rows. The worker makes their voice-overs "
            "first, then queues every row at once; this page follows it live.",
        )
    else:
        messages.success(
            request, f"Batch queued: {batch.jobs.count()} jobs. This page updates live."
        )
    return redirect(batch)


def _template(request: StudioRequest, access: Access, value: str) -> JobTemplate | None:
    """The template a batch starts from (?template= or the form's), through the gate."""
    codes = parse_codes([value])
    if not codes:
        return None
    template, _ = get_template(request.user, codes[0])
    return template if template.team_id == access.team.pk else None


def _recent(access: Access) -> list[Batch]:
    return list(Batch.objects.filter(team=access.team)[:10])


@login_required
@require_GET
def batch_list(request: StudioRequest) -> HttpResponse:
    """The team's batches, newest first: every role may follow them."""
    access = current_team(request)
    done = Q(jobs__status=AvatarJob.Status.SUCCEEDED)
    batches = (
        Batch.objects.filter(team=access.team)
        .select_related("created_by")
        .annotate(
            row_count=Count("jobs__batch_row", distinct=True),
            done_count=Count("jobs__batch_row", filter=done, distinct=True),
        )[:100]
    )
    return render(request, "jobs/batch_list.html", {"access": access, "batches": batches})


@login_required
@require_GET
def batch_detail(request: StudioRequest, code: UUID) -> HttpResponse:
    """The batch page; while rows run, htmx asks for `#batch-live` once per interval (204 when
    nothing changed since the version the page holds)."""
    batch, access = get_batch(request.user, code)
    progress = batch_jobs.batch_progress(batch)
    if request.htmx and request.GET.get("v") == progress.version:
        return HttpResponse(status=204)
    context = {
        "batch": batch,
        "access": access,
        "progress": progress,
        "can_manage": access.may("manage_batch", batch),
        "poll_seconds": POLL_SECONDS,
        "share_form": ShareForm(),
    }
    template = "jobs/batch_detail.html#batch-live" if request.htmx else "jobs/batch_detail.html"
    return render(request, template, context)


@login_required
@require_POST
def batch_cancel(request: StudioRequest, code: UUID) -> HttpResponse:
    batch, _ = get_batch(request.user, code, action="manage_batch")
    whole = batch.state != Batch.State.READY
    count = batch_jobs.batch_cancel(batch=batch)
    if whole:
        messages.success(request, "Canceled the batch: none of its rows was queued.")
    else:
        messages.success(request, f"Canceled {count} queued job{'s' if count != 1 else ''}.")
    return redirect(batch)


@login_required
@require_POST
def batch_retry(request: StudioRequest, code: UUID) -> HttpResponse:
    batch, _ = get_batch(request.user, code, action="manage_batch")
    whole = batch.state == Batch.State.FAILED
    try:
        count = batch_jobs.batch_retry(batch=batch, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages) + " Nothing was retried.")
    else:
        if whole:
            messages.success(request, "Trying again: the voice-overs left are being made.")
        else:
            messages.success(request, f"Retrying {count} failed row{'s' if count != 1 else ''}.")
    return redirect(batch)


def _stem(batch: Batch) -> str:
    return file_stem(batch.name, "batch")


@login_required
@require_GET
def batch_report(request: StudioRequest, code: UUID) -> HttpResponse:
    """Row, name, status, reason and video link of every row, as CSV."""
    batch, _ = get_batch(request.user, code, action="download")
    return _report(request, batch, {}, f"{_stem(batch)}-report.csv")


def _report(
    request: StudioRequest, batch: Batch, shares: dict[int, str], filename: str
) -> HttpResponse:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(REPORT_HEADER)
    base = public_base_url(request)

    def share_link(job: Any) -> str:
        token = shares.get(job.batch_row or 0)
        return base + reverse("share-page", args=[token]) if token else ""

    writer.writerows(
        report_rows(
            batch_jobs.batch_progress(batch).rows,
            lambda job: request.build_absolute_uri(reverse("jobs:job-video", args=[job.code])),
            share_link,
        )
    )
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return no_store(response) if shares else response


@login_required
@require_POST
def batch_share(request: StudioRequest, code: UUID) -> HttpResponse:
    """A share link for every finished video, answered as the report with a share column: the
    links' addresses are in this answer only."""
    batch, _ = get_batch(request.user, code, action="manage_batch")
    form = ShareForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose when the links stop working from the list.")
        return redirect(batch)
    try:
        shares = batch_jobs.batch_share(
            batch=batch,
            by=request.user,
            expires_at=form.expires_at(),
            allow_download=form.cleaned_data["allow_download"],
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(batch)
    return _report(request, batch, shares, f"{_stem(batch)}-share-links.csv")


@login_required
@require_GET
def batch_videos(request: StudioRequest, code: UUID) -> StreamingHttpResponse:
    """Every finished video of the batch in one ZIP, streamed: never held in memory."""
    batch, _ = get_batch(request.user, code, action="download")
    entries = video_entries(batch_jobs.batch_progress(batch).rows)
    response = StreamingHttpResponse(stream_zip(entries), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{_stem(batch)}-videos.zip"'
    return response
