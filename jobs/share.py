"""Public share pages: a finished video for anyone with the link, and nothing else.

The token in the URL is the only key; only its hash is stored. Unknown, revoked and expired
links all answer the same 404, so a guess learns nothing.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from jobs import services
from jobs.models import ShareLink
from jobs.serve import serve_stored_file

PRIVATE_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-store",
}


def _link(token: str, *, count_view: bool = False) -> ShareLink:
    link = services.share_open(token, count_view=count_view)
    if link is None:
        raise Http404("This link does not work (it may have been revoked or have expired).")
    return link


def _private(response: HttpResponse) -> HttpResponse:
    for name, value in PRIVATE_HEADERS.items():
        response[name] = value
    return response


def share_title(link: ShareLink) -> str:
    stem = link.job.portrait.name.rsplit(".", 1)[0]
    return f"{stem} – talking avatar video"


@require_GET
def share_page(request: HttpRequest, token: str) -> HttpResponse:
    link = _link(token, count_view=True)
    context = {
        "link": link,
        "token": token,
        "title": share_title(link),
        "page_url": request.build_absolute_uri(),
        "poster_url": request.build_absolute_uri(f"/s/{token}/poster.jpg"),
        "video_url": request.build_absolute_uri(f"/s/{token}/video.mp4"),
    }
    return _private(render(request, "share/share_page.html", context))


@require_GET
def share_video(request: HttpRequest, token: str) -> HttpResponse:
    link = _link(token)
    download = "download" in request.GET
    if download and not link.allow_download:
        raise Http404("Downloads are not allowed for this link.")
    filename = f"{share_title(link).split(' – ')[0]}.mp4"
    response = serve_stored_file(
        request, link.job.video, content_type="video/mp4", filename=filename, attachment=download
    )
    return _private(response)


@require_GET
def share_poster(request: HttpRequest, token: str) -> HttpResponse:
    link = _link(token)
    response = serve_stored_file(
        request, link.job.poster, content_type="image/jpeg", filename="poster.jpg"
    )
    return _private(response)
