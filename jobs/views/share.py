"""Public share pages: a finished video for anyone with the link, and nothing else.

The token in the URL is the only key; only its hash is stored. Unknown, revoked and expired
links all answer 404; the page says which it is (a guess matches no link, so it learns
nothing).
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
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST, require_safe

from jobs.access import StudioRequest, get_job, get_share
from jobs.forms import (
    ShareForm,
)
from jobs.links import absolute, public_base_url
from jobs.models import ShareLink, hash_token
from jobs.presenters import captions
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


def _gone_reason(token: str) -> str:
    """Why a link that is not live does not work: turned off, expired, or unknown.

    Only someone holding a real token learns that it was revoked or expired (a guess matches
    no hash and gets the plain answer), so this tells nothing to someone guessing.
    """
    link = ShareLink.objects.filter(token_hash=hash_token(token)).first()
    if link is not None and link.revoked_at is not None:
        return "This link was turned off by the team."
    if link is not None and link.expires_at is not None and link.expires_at <= timezone.now():
        day = date_format(timezone.localtime(link.expires_at), "j F Y")
        return f"This link expired on {day}."
    return "This link does not work: it may be incomplete."


@require_GET
def share_page(request: HttpRequest, token: str) -> HttpResponseBase:
    link = share_open(token, count_view=True)
    if link is None:
        # 404 like the video and poster (and as the job page's "revoked" message says).
        gone = {"gone": _gone_reason(token)}
        page = render(request, "share/share_page.html", gone, status=404)
        return _private(page)
    context = {
        "link": link,
        "token": token,
        "title": share_title(link),
        "page_url": absolute(reverse("share-page", args=[token]), request),
        "poster_url": absolute(reverse("share-poster", args=[token]), request),
        "video_url": absolute(reverse("share-video", args=[token]), request),
    }
    return _private(render(request, "share/share_page.html", context))


@require_safe  # GET and HEAD: players ask before they fetch
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


@require_safe
def share_poster(request: HttpRequest, token: str) -> HttpResponseBase:
    link = _link(token)
    response = serve_stored_file(
        request, link.job.poster, content_type="image/jpeg", filename="poster.jpg"
    )
    return _private(response)


@require_safe
def share_captions(request: HttpRequest, token: str) -> HttpResponseBase:
    link = _link(token)
    return _private(HttpResponse(captions(link.job), content_type="text/vtt; charset=utf-8"))


# --- share links -------------------------------------------------------------------------------


def _share_response(request: StudioRequest, context: dict[str, Any]) -> HttpResponse:
    # htmx swaps the panel on the job page; without JavaScript the panel is a page of its own.
    template = "jobs/_share.html" if request.htmx else "teams/job_share.html"
    return no_store(render(request, template, context))


@login_required
@require_POST
def share_create(request: StudioRequest, code: UUID) -> HttpResponse:
    """Make a share link for a finished video; its address is shown in this answer only."""
    job, access = get_job(request.user, code, action="share")
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
    link, access = get_share(request.user, code, action="revoke_share")
    sharing.share_revoke(link=link)
    if request.htmx:
        context = {"job": link.job, "access": access, "share_form": ShareForm()}
        return _share_response(request, context)
    messages.success(request, "Link revoked: it now answers “not found”.")
    return redirect(link.job)
