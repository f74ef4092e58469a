"""One job's page and its actions: cancel, retry, rename, delete, and its video and poster."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import (
    require_GET,
    require_http_methods,
    require_POST,
    require_safe,
)

from jobs.access import StudioRequest, authorize, get_job
from jobs.cards import attach_estimates, attach_queue_place
from jobs.models import AvatarJob
from jobs.presenters import captions, timeline
from jobs.serve import serve_stored_file
from jobs.services import jobs as job_services
from jobs.services.templates import template_from_job
from jobs.views.dashboard import POLL_SECONDS

Status = AvatarJob.Status


@login_required
@require_GET
def job_detail(request: StudioRequest, code: UUID) -> HttpResponse:
    """The job page; while the job runs, htmx refreshes its `#status` part every few seconds."""
    job, access = get_job(request.user, code)
    attach_queue_place(job)
    attach_estimates([job])
    context = {
        "job": job,
        "access": access,
        "timeline": timeline(job),
        "download_name": _download_name(job, "mp4"),
        "poll_seconds": POLL_SECONDS,
        "can_manage": access.may("delete", job),
    }
    template = "jobs/job_detail.html#status" if request.htmx else "jobs/job_detail.html"
    return render(request, template, context)


@login_required
@require_POST
def job_cancel(request: StudioRequest, code: UUID) -> HttpResponse:
    job, _ = get_job(request.user, code, action="cancel")
    if job_services.job_cancel(job=job):
        messages.success(request, "Job canceled. Nothing was sent to Kling.")
    else:
        messages.error(request, "This job can no longer be canceled: it has already started.")
    return redirect(job)


@login_required
@require_POST
def job_retry(request: StudioRequest, code: UUID) -> HttpResponse:
    job, _ = get_job(request.user, code, action="retry")
    try:
        new = job_services.job_retry(job=job, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(job)
    messages.success(request, "Trying again with the same inputs: here is the new job.")
    return redirect(f"{reverse('jobs:dashboard')}?new={new.code}")


@login_required
@require_POST
def job_save_template(request: StudioRequest, code: UUID) -> HttpResponse:
    """Keep this job's inputs as a team template, to start new jobs and batches from."""
    job, access = get_job(request.user, code)
    authorize(access, "create_job")
    try:
        template = template_from_job(
            job=job, user=request.user, name=request.POST.get("name") or job.name
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request,
            f"Saved as the template “{template.name}”: start jobs and batches from it, or "
            "rename it, on the New batch page.",
        )
    return redirect(job)


@login_required
@require_POST
def job_rename(request: StudioRequest, code: UUID) -> HttpResponse:
    """Rename from the job page: htmx swaps the heading; without JavaScript, back to the page."""
    job, _ = get_job(request.user, code, action="rename")
    error = ""
    try:
        job_services.job_rename(job=job, name=request.POST.get("name", ""))
    except ValidationError as exc:
        error = " ".join(exc.messages)
    if request.htmx:
        context = {"job": job, "can_manage": True, "rename_error": error}
        return render(request, "jobs/job_detail.html#job-name", context)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, f"Renamed to “{job.name}”.")
    return redirect(job)


@login_required
@require_http_methods(["GET", "POST"])
def job_delete(request: StudioRequest, code: UUID) -> HttpResponse:
    """GET: what deleting removes, and a button to confirm (no JavaScript needed). POST: do it."""
    job, _ = get_job(request.user, code, action="delete")
    if request.method == "POST":
        try:
            job_services.job_delete(job=job)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect(job)
        messages.success(request, f"Deleted “{job.name}”, its video and its share links.")
        return redirect("jobs:dashboard")
    context = {
        "job": job,
        "share_count": job.share_links.count(),
        # Only a queued job can be stopped (canceled) on the way; a running one is refused.
        "running": job.is_active and job.status != Status.QUEUED,
    }
    return render(request, "jobs/job_delete.html", context)


def _download_name(job: AvatarJob, ext: str) -> str:
    stem = slugify(job.name)[:60].strip("-") or "avatar"
    return f"{stem}-{job.mode}-{job.created:%Y%m%d-%H%M}.{ext}"


@login_required
@require_safe  # GET and HEAD
def job_video(request: StudioRequest, code: UUID) -> HttpResponseBase:
    job, _ = get_job(request.user, code, action="download")
    if not job.video:
        return render(request, "404.html", {"reason": "This job has no video yet."}, status=404)
    return serve_stored_file(
        request,
        job.video,
        content_type="video/mp4",
        filename=_download_name(job, "mp4"),
        attachment="download" in request.GET,
    )


@login_required
@require_safe
def job_poster(request: StudioRequest, code: UUID) -> HttpResponseBase:
    job, _ = get_job(request.user, code)
    if not job.poster:
        return render(request, "404.html", {"reason": "This job has no poster yet."}, status=404)
    return serve_stored_file(
        request, job.poster, content_type="image/jpeg", filename=_download_name(job, "jpg")
    )


@login_required
@require_safe
def job_captions(request: StudioRequest, code: UUID) -> HttpResponse:
    """The video's captions (WebVTT) from its voice-over's script; no cue when it has none."""
    job, _ = get_job(request.user, code)
    return HttpResponse(captions(job), content_type="text/vtt; charset=utf-8")
