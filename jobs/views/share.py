"""Public share pages: a finished video for anyone with the link, and nothing else.

The token in the URL is the only key; only its hash is stored. Unknown, revoked and expired
links all answer the same 404, so a guess learns nothing.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from jobs.access import StudioRequest, get_job, get_share
from jobs.forms import (
    ShareForm,
)
from jobs.links import absolute, public_base_url
from jobs.models import ShareLink
from jobs.serve import serve_stored_file
from jobs.services import sharing
from jobs.services.sharing import share_open
from jobs.views.teams import no_store

PRIVATE_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-store",
}


def _link(token: str, *, count_view: bool = False) -> ShareLink:
    link = share_open(token, count_view=count_view)
    if link is None:
        raise Http404("This link does not work (it may have been revoked or have expired).")
    return link


def _private(response: HttpResponseBase) -> HttpResponseBase:
    for name, value in PRIVATE_HEADERS.items():
        response[name] = value
    return response


def share_title(link: ShareLink) -> str:
    return link.job.name  # never the portrait's file name: that is someone's photo


@require_GET
def share_page(request: HttpRequest, token: str) -> HttpResponseBase:
    link = _link(token, count_view=True)
    context = {
        "link": link,
        "token": token,
        "title": share_title(link),
        "page_url": absolute(reverse("share-page", args=[token]), request),
        "poster_url": absolute(reverse("share-poster", args=[token]), request),
        "video_url": absolute(reverse("share-video", args=[token]), request),
    }
    return _private(render(request, "share/share_page.html", context))


@require_GET
def share_video(request: HttpRequest, token: str) -> HttpResponseBase:
    link = _link(token)
    download = "download" in request.GET
    if download and not link.allow_download:
        raise Http404("Downloads are not allowed for this link.")
    filename = f"{slugify(link.job.name)[:60].strip('-') or 'avatar'}.mp4"
    response = serve_stored_file(
        request, link.job.video, content_type="video/mp4", filename=filename, attachment=download
    )
    return _private(response)


@require_GET
def share_poster(request: HttpRequest, token: str) -> HttpResponseBase:
    link = _link(token)
    response = serve_stored_file(
        request, link.job.poster, content_type="image/jpeg", filename="poster.jpg"
    )
    return _private(response)


# --- share links -------------------------------------------------------------------------------


def _share_response(request: StudioRequest, context: dict[str, Any]) -> HttpResponse:
    # htmx swaps the panel on the job page; without JavaScript the panel is a page of its own.
    template = "jobs/_share.html" if request.htmx else "teams/job_share.html"
    return no_store(render(request, template, context))


@login_required
@require_POST
def share_create(request: StudioRequest, code: UUID) -> HttpResponse:
    """Make a share link for a finished video; its address is shown in this answer only."""
    job, access = get_job(request.user, code, write=True)
    form = ShareForm(request.POST)
    context: dict[str, Any] = {"job": job, "access": access, "share_form": form}
    if form.is_valid():
        try:
            link, token = sharing.share_create(
                job=job,
                by=request.user,
                expires_at=form.expires_at(),
                allow_download=form.cleaned_data["allow_download"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            context["share_form"] = ShareForm()
            context["new_share"] = link
            context["new_share_url"] = public_base_url(request) + reverse(
                "share-page", args=[token]
            )
    return _share_response(request, context)


@login_required
@require_POST
def share_revoke(request: StudioRequest, code: UUID) -> HttpResponse:
    link, access = get_share(request.user, code, write=True)
    sharing.share_revoke(link=link)
    if request.htmx:
        context = {"job": link.job, "access": access, "share_form": ShareForm()}
        return _share_response(request, context)
    messages.success(request, "Link revoked: it now answers “not found”.")
    return redirect(link.job)
