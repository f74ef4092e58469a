"""Studio pages. Function views; every object comes through jobs.access."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from jobs import services
from jobs.access import current_team, get_asset, get_job
from jobs.forms import NewJobForm
from jobs.models import AvatarJob
from jobs.serve import serve_stored_file

JOBS_PER_PAGE = 24


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    access = current_team(request)
    jobs = AvatarJob.objects.for_team(access.team).select_related("created_by", "portrait")
    page = Paginator(jobs, JOBS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "jobs/dashboard.html", {"access": access, "page": page})


@login_required
@require_http_methods(["GET", "POST"])
def job_new(request: HttpRequest) -> HttpResponse:
    access = current_team(request)
    if not access.can_write:
        return render(request, "jobs/read_only.html", {"access": access}, status=403)
    form = NewJobForm(request.POST or None, request.FILES or None, team=access.team)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        with transaction.atomic():
            portrait = data["portrait_asset"] or services.asset_store(
                team=access.team, user=request.user, valid=data["portrait"]
            )
            audio = data["audio_asset"] or services.asset_store(
                team=access.team, user=request.user, valid=data["audio"]
            )
            job = services.job_create(
                team=access.team,
                user=request.user,
                portrait=portrait,
                audio=audio,
                prompt=data["prompt"],
                mode=data["mode"],
            )
        messages.success(request, "Job queued. This page updates when it is done.")
        return redirect(job)
    return render(request, "jobs/job_new.html", {"access": access, "form": form})


@login_required
@require_GET
def job_detail(request: HttpRequest, code: UUID) -> HttpResponse:
    job, access = get_job(request.user, code)
    return render(request, "jobs/job_detail.html", {"job": job, "access": access})


@login_required
@require_POST
def job_cancel(request: HttpRequest, code: UUID) -> HttpResponse:
    job, _ = get_job(request.user, code, write=True)
    if services.job_cancel(job=job):
        messages.success(request, "Job canceled.")
    else:
        messages.error(request, "This job can no longer be canceled: it has already started.")
    return redirect(job)


def _download_name(job: AvatarJob, ext: str) -> str:
    stem = slugify(job.portrait.name.rsplit(".", 1)[0])[:40] or "avatar"
    return f"{stem}-{job.mode}-{job.created:%Y%m%d-%H%M}.{ext}"


@login_required
@require_GET
def job_video(request: HttpRequest, code: UUID) -> HttpResponse:
    job, _ = get_job(request.user, code)
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
@require_GET
def job_poster(request: HttpRequest, code: UUID) -> HttpResponse:
    job, _ = get_job(request.user, code)
    if not job.poster:
        return render(request, "404.html", {"reason": "This job has no poster yet."}, status=404)
    return serve_stored_file(
        request, job.poster, content_type="image/jpeg", filename=_download_name(job, "jpg")
    )


@login_required
@require_GET
def asset_file(request: HttpRequest, code: UUID) -> HttpResponse:
    asset, _ = get_asset(request.user, code)
    return serve_stored_file(
        request,
        asset.file,
        content_type=asset.content_type,
        filename=asset.name,
        attachment="download" in request.GET,
    )
