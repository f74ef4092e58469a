"""The library: the team's portraits and voice-overs, renamed, deleted, served, thumbnailed."""

from __future__ import annotations

import io
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import (
    Count,
    IntegerField,
    OuterRef,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponse, HttpResponseNotModified, QueryDict
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import (
    require_GET,
    require_http_methods,
    require_POST,
    require_safe,
)
from PIL import Image, ImageOps

from jobs.access import Access, StudioRequest, current_team, get_asset
from jobs.forms import AssetRenameForm
from jobs.models import Asset, AvatarJob, Team
from jobs.serve import (
    PRIVATE_CACHE,
    is_object_storage,
    presigned_url,
    redirect_to_stored,
    serve_stored_file,
)
from jobs.services import assets

LIBRARY_PAGE = 48  # files of each kind per library page
THUMB_SIZE = 480  # px, the longest side of a portrait thumbnail (2x a card's width)


def _uses(relation: str) -> Coalesce:
    used = AvatarJob.objects.filter(**{relation: OuterRef("pk")}).order_by().values(relation)
    count = used.annotate(n=Count("pk")).values("n")[:1]
    return Coalesce(Subquery(count, output_field=IntegerField()), 0)


def library_assets(team: Team) -> QuerySet[Asset]:
    """The team's files with how many jobs used each, in one query."""
    return Asset.objects.for_team(team).annotate(
        uses=_uses("portrait") + _uses("audio")  # an asset is only ever one of the two
    )


def _library_context(
    access: Access, query: QueryDict, editing: UUID | None = None
) -> dict[str, Any]:
    """The library's two lists, newest first, each in pages of LIBRARY_PAGE (`p` and `v`)."""
    assets = library_assets(access.team)
    pages = {
        name: Paginator(assets.filter(kind=kind), LIBRARY_PAGE).get_page(query.get(param))
        for name, kind, param in (
            ("portraits", Asset.Kind.PORTRAIT, "p"),
            ("voiceovers", Asset.Kind.AUDIO, "v"),
        )
    }
    return {"access": access, "editing": editing, "query": query.copy(), **pages}


def _library_page_of(asset: Asset) -> QueryDict:
    """The library query (`p` or `v`) whose page shows this file."""
    newer = Asset.objects.filter(team_id=asset.team_id, kind=asset.kind, created__gt=asset.created)
    query = QueryDict(mutable=True)
    query["p" if asset.kind == Asset.Kind.PORTRAIT else "v"] = str(
        newer.count() // LIBRARY_PAGE + 1
    )
    return query


@login_required
@require_GET
def library(request: StudioRequest) -> HttpResponse:
    access = current_team(request)
    return render(request, "jobs/library.html", _library_context(access, request.GET))


def _asset_with_uses(asset: Asset) -> Asset:
    return library_assets(asset.team).get(pk=asset.pk)


@login_required
@require_http_methods(["GET", "POST"])
def asset_rename(request: StudioRequest, code: UUID) -> HttpResponse:
    """Rename a library file: inline with htmx, or the library page in edit mode without it."""
    asset, access = get_asset(request.user, code, action="library_rename")
    if request.htmx and request.method == "GET" and "cancel" in request.GET:
        context = {"asset": _asset_with_uses(asset), "access": access}  # the tile as it was
        return render(request, "jobs/library.html#asset", context)
    form = AssetRenameForm(request.POST or None, initial={"name": asset.name})
    if request.method == "POST" and form.is_valid():
        try:
            assets.asset_rename(asset=asset, name=form.cleaned_data["name"])
        except ValidationError as exc:
            form.add_error("name", exc)
        else:
            if not request.htmx:
                messages.success(request, f"Renamed to {asset.name}.")
                return redirect(f"{reverse('jobs:library')}?{_library_page_of(asset).urlencode()}")
            context = {"asset": _asset_with_uses(asset), "access": access}
            return render(request, "jobs/library.html#asset", context)
    if request.htmx:
        context = {
            "asset": _asset_with_uses(asset),
            "access": access,
            "editing": asset.code,
            "rename_form": form,
        }
        return render(request, "jobs/library.html#asset", context)
    # Without JavaScript: the library page that holds the file, with its form open.
    context = _library_context(access, _library_page_of(asset), editing=asset.code)
    context["rename_form"] = form
    return render(request, "jobs/library.html", context)


@login_required
@require_POST
def asset_delete(request: StudioRequest, code: UUID) -> HttpResponse:
    asset, access = get_asset(request.user, code, action="library_delete")
    try:
        assets.asset_delete(asset=asset)
    except ValidationError as exc:
        if request.htmx:
            context = {"asset": _asset_with_uses(asset), "access": access, "error": exc.messages[0]}
            return render(request, "jobs/library.html#asset", context)
        messages.error(request, exc.messages[0])
        return redirect("jobs:library")
    transaction.on_commit(lambda: default_storage.delete(_thumb_name(asset)))
    if request.htmx:
        # The tile swaps itself out (nothing in its place); its section's count, out of band.
        kind = "portraits" if asset.kind == Asset.Kind.PORTRAIT else "voiceovers"
        left = Asset.objects.for_team(access.team).filter(kind=asset.kind).count()
        context = {"count_id": f"{kind}-count", "count": left}
        return render(request, "jobs/library.html#deleted", context)
    messages.success(request, f"Deleted {asset.name}.")
    return redirect("jobs:library")


@login_required
@require_safe  # GET and HEAD
def asset_file(request: StudioRequest, code: UUID) -> HttpResponseBase:
    asset, _ = get_asset(request.user, code, action="download")
    return serve_stored_file(
        request,
        asset.file,
        content_type=asset.content_type,
        filename=asset.name,
        attachment="download" in request.GET,
    )


def _thumb_name(asset: Asset) -> str:
    return f"thumbs/{asset.team.code}/{asset.code}-{THUMB_SIZE}.jpg"


def _make_thumb(asset: Asset) -> bytes:
    with asset.file.open("rb") as fh, Image.open(fh) as opened:
        opened.draft("RGB", (THUMB_SIZE, THUMB_SIZE))  # JPEG: decode at 1/2..1/8 scale, fast
        image = ImageOps.exif_transpose(opened).convert("RGB")
        image.thumbnail((THUMB_SIZE, THUMB_SIZE))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=82, optimize=True, progressive=True)
    return out.getvalue()


@login_required
@require_safe
def asset_thumb(request: StudioRequest, code: UUID) -> HttpResponseBase:
    """A small JPEG of a portrait for cards and the library (portraits can be 10 MB).

    Made on first request and kept in storage; the checksum makes a strong ETag. With object
    storage the answer is a presigned redirect to the stored thumbnail (jobs/serve.py).
    """
    asset, _ = get_asset(request.user, code)
    if asset.kind != Asset.Kind.PORTRAIT:
        raise Http404("Only portraits have thumbnails.")
    etag = f'"{asset.sha256[:32]}-{THUMB_SIZE}"'
    if request.headers.get("If-None-Match") == etag:
        return HttpResponseNotModified(headers={"ETag": etag})
    name = _thumb_name(asset)
    if is_object_storage(default_storage):
        # Object storage writes whole objects, so one that exists is complete (and a second
        # request making it meanwhile gets a suffixed name: dropped).
        if not default_storage.exists(name):
            saved = default_storage.save(name, ContentFile(_make_thumb(asset)))
            if saved != name:
                default_storage.delete(saved)
        url = presigned_url(default_storage, name, content_type="image/jpeg")
        assert url is not None
        return redirect_to_stored(url)
    if default_storage.exists(name):
        with default_storage.open(name, "rb") as fh:
            data = fh.read()
        if not data.endswith(b"\xff\xd9"):  # no end marker: another request is still writing it
            data = _make_thumb(asset)
    else:
        data = _make_thumb(asset)
        saved = default_storage.save(name, ContentFile(data))
        if saved != name:
            # Another request made it meanwhile, and ours went under another name: no spare.
            default_storage.delete(saved)
    response = HttpResponse(data, content_type="image/jpeg")
    response["ETag"] = etag
    response["Cache-Control"] = PRIVATE_CACHE  # the ETag makes a re-check cheap
    response["X-Content-Type-Options"] = "nosniff"
    return response
