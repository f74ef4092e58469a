"""Studio pages. Typed function views, one job each; every object comes through jobs.access.

Each page is one template with named partials (django-template-partials). A plain request gets
the full page, so everything works without JavaScript; an htmx request gets only the partial it
targets. Invalid htmx form posts answer 200 with the form again, because htmx 2 does not swap
4xx responses.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import (
    Count,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce
from django.forms import BoundField
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect
from PIL import Image, ImageOps

from jobs import kling, services
from jobs.access import Access, current_team, get_asset, get_job
from jobs.cards import attach_estimates, card_jobs, filtered_poll_rows, page_rows, poll_rows
from jobs.forms import MODE_HELP, AssetRenameForm, JobFilterForm, NewJobForm
from jobs.media import MediaError, validate_audio, validate_portrait
from jobs.models import Asset, AvatarJob, Membership, Team
from jobs.serve import serve_stored_file

JOBS_PER_PAGE = 24
POLL_SECONDS = 3
# A page sends the codes of its running cards with every poll; more than this is not a page.
POLL_MAX_CODES = 200
LIBRARY_PICKS = 12  # library files offered on the new-job page, newest first
LIBRARY_PAGE = 48  # files of each kind per library page
THUMB_SIZE = 480  # px, the longest side of a portrait thumbnail (2x a card's width)

Status = AvatarJob.Status
ACTIVE = frozenset(AvatarJob.ACTIVE)


def _parse_codes(values: list[str]) -> list[UUID]:
    codes = []
    for value in values[:POLL_MAX_CODES]:
        try:
            codes.append(UUID(value))
        except ValueError:
            continue
    return codes


def _filter_query(filters: JobFilterForm) -> QueryDict:
    query = QueryDict(mutable=True)
    query.update(filters.values())
    return query


# --- dashboard ---------------------------------------------------------------------------------


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    """The team's jobs as cards, newest first, in pages of JOBS_PER_PAGE (keyset paginated).

    htmx asks for `#results` when the filters change and for `#page` (the next cards) when the
    reader reaches the "Older jobs" link.
    """
    access = current_team(request)
    filters = JobFilterForm(request.GET)
    before = _parse_codes([request.GET.get("before", "")])
    cursor = before[0] if before else None
    if filters.values():
        jobs = card_jobs(access.team).filter(filters.condition(request.user))
        if cursor:
            # Keyset pagination: cards never repeat or go missing when new jobs arrive on top.
            mark = AvatarJob.objects.for_team(access.team).filter(code=cursor)
            created = Subquery(mark.values("created")[:1])
            jobs = jobs.filter(
                Q(created__lt=created) | Q(created=created, pk__lt=Subquery(mark.values("pk")[:1]))
            )
        rows = list(jobs[: JOBS_PER_PAGE + 1])
        attach_estimates(rows)
    else:  # the usual page, read the quick way
        rows = [row.card() for row in page_rows(access.team.pk, cursor, JOBS_PER_PAGE + 1)]
    page = rows[:JOBS_PER_PAGE]
    query = _filter_query(filters)
    context = {
        "access": access,
        "team_code": access.team.code,
        "filters": filters,
        "filtered": bool(query),
        "jobs": page,
        "first_page": not before,
        "next_cursor": page[-1].code if len(rows) > JOBS_PER_PAGE else None,
        "query": query,
        # New jobs newer than this are added on top by the poll (first page only).
        "since": (page[0].created if page and not before else timezone.now()).isoformat(),
        "live": any(job.is_active for job in page),
        "highlight": request.GET.get("new", ""),
        "poll_seconds": POLL_SECONDS,
    }
    template = "jobs/dashboard.html"
    if request.htmx:
        context["appending"] = request.htmx.target == "more"
        template += "#page" if context["appending"] else "#results"
    return render(request, template, context)


def _asked_cards(values: list[str]) -> dict[UUID, str]:
    """The page's running cards, `code:version` each (a bare code: the page has no version)."""
    asked: dict[UUID, str] = {}
    for value in values[:POLL_MAX_CODES]:
        code, _, version = value.partition(":")
        try:
            asked[UUID(code)] = version
        except ValueError:
            continue
    return asked


@login_required
@require_GET
def job_cards(request: HttpRequest) -> HttpResponse:
    """The dashboard's one poll: the page's running cards that changed, swapped out of band.

    The page sends its team, its running cards as `code:version` (`job`), its filters, and
    `since`, the time of its newest card. One query reads those cards and the jobs made since
    then, with the membership check joined in: with the session and the user, a poll costs
    three queries (bench/poll.py). When nothing changed the answer is 204 with no body;
    otherwise it carries the changed and new cards, drawn from the same rows, and a new
    poller, which keeps polling only while something on the page still runs. A filtered
    page is read with the ORM instead, which applies its filters to the new jobs.
    """
    asked = _asked_cards(request.GET.getlist("job"))
    since = _parse_since(request.GET.get("since", ""))
    named = _parse_codes([request.GET.get("team", "")])
    # A page that names no team polls the current one.
    current = None if named else current_team(request).team
    team: UUID | int = named[0] if named else current.pk
    filters = JobFilterForm(request.GET)
    limit = len(asked) + JOBS_PER_PAGE
    if filters.values():
        scope = (
            Q(team__code=team, team__memberships__user=request.user) if named else Q(team_id=team)
        )
        condition = filters.condition(request.user)
        rows = filtered_poll_rows(scope, list(asked), since, condition, limit)
    else:
        rows = poll_rows(team, request.user.pk, asked, since, limit)
    if named and not rows and not _is_member(request.user, named[0]):
        # Removed from the team (or a made-up code): the page goes back to the dashboard.
        if request.htmx:
            return HttpResponseClientRedirect(reverse("jobs:dashboard"))
        raise Http404("No such team.")
    changed = [row for row in rows if row.code in asked and asked[row.code] != row.version]
    made = [row for row in rows if row.code not in asked]
    vanished = asked.keys() - {row.code for row in rows}
    if not changed and not made and not vanished:
        # Nothing to swap, and the poller on the page is still right: htmx swaps nothing on
        # 204 and keeps polling. Most polls end here.
        return HttpResponse(status=204)
    fresh = [row.card() for row in made]
    updated_cards = [row.card() for row in changed]
    context = {
        "team_code": named[0] if named else current.code,
        "updated": updated_cards,
        "fresh": fresh,
        "finished": [job for job in updated_cards if not job.is_active],
        # Cards of jobs that vanished (deleted by an admin) are removed, or they would poll on.
        "vanished": vanished,
        "since": fresh[0].created.isoformat() if fresh else (since and since.isoformat()),
        "query": _filter_query(filters),
        "live": any(row.status in ACTIVE for row in rows if row.code in asked)
        or any(job.is_active for job in fresh),
        "poll_seconds": POLL_SECONDS,
    }
    return render(request, "jobs/dashboard.html#poll", context)


def _parse_since(value: str) -> datetime | None:
    """The page's `since`; None when it is missing or not a date (a broken link is no error)."""
    try:
        since = parse_datetime(value)
    except ValueError:  # well formed but impossible, such as month 13
        return None
    if since is not None and timezone.is_naive(since):
        since = timezone.make_aware(since, UTC)
    return since


def _is_member(user: Any, team_code: UUID) -> bool:
    return Membership.objects.filter(team__code=team_code, user_id=user.pk).exists()


# --- new job -----------------------------------------------------------------------------------

VALIDATORS = {"portrait": validate_portrait, "audio": validate_audio}


@dataclass
class FilePick:
    """One file field of the new-job form: upload or pick, with its preview and problems."""

    kind: str  # "portrait" or "audio"
    field: BoundField  # the upload field (its id, label, help text)
    selected: Asset | None
    library: list[Asset]
    errors: list[str] = field(default_factory=list)

    @property
    def asset_name(self) -> str:
        return f"{self.kind}_asset"

    @property
    def check_url(self) -> str:
        return reverse("jobs:job-new-check", args=[self.kind])


def _file_pick(
    form: NewJobForm, kind: str, selected: Asset | None, errors: list[str] | None = None
) -> FilePick:
    library = Asset.objects.for_team(form.team).filter(kind=_asset_kind(kind))
    recent = list(library[:LIBRARY_PICKS])
    if selected is not None and selected not in recent:
        recent.insert(0, selected)  # a pick from further back stays visible and checked
    return FilePick(kind, form[kind], selected, recent, errors or [])


def _asset_kind(kind: str) -> str:
    return Asset.Kind.PORTRAIT if kind == "portrait" else Asset.Kind.AUDIO


def _prefill(request: HttpRequest, access: Access) -> dict[str, Any]:
    """Initial values from ?from=<job> (duplicate) or ?portrait=/?audio=<asset> (reuse), and
    ?mode=/?prompt= (kept across a voice-over written without JavaScript)."""
    initial: dict[str, Any] = {}
    codes = {key: _parse_codes([request.GET.get(key, "")]) for key in ("from", "portrait", "audio")}
    if codes["from"]:
        job, _ = get_job(request.user, codes["from"][0])
        if job.team_id == access.team.pk:
            initial.update(
                portrait_asset=job.portrait,
                audio_asset=job.audio,
                kling_audio_id=job.kling_audio_id if job.audio is None else "",
                prompt=job.prompt,
                mode=job.mode,
            )
        else:
            messages.warning(
                request,
                f"That job belongs to {job.team.name}: switch to that team to duplicate it.",
            )
    for kind in ("portrait", "audio"):
        if codes[kind]:
            asset, _ = get_asset(request.user, codes[kind][0])
            if asset.team_id == access.team.pk and asset.kind == _asset_kind(kind):
                initial[f"{kind}_asset"] = asset
    if request.GET.get("mode") in AvatarJob.Mode.values:
        initial["mode"] = request.GET["mode"]
    if request.GET.get("prompt"):
        initial["prompt"] = request.GET["prompt"]
    return initial


def _keep_valid_uploads(form: NewJobForm, access: Access, user: Any) -> dict[str, Asset | None]:
    """After a refused submit, store the files that passed, so they need not be chosen again."""
    kept: dict[str, Asset | None] = {}
    data = getattr(form, "cleaned_data", {})
    for kind in ("portrait", "audio"):
        if data.get(kind):
            kept[kind] = services.asset_store(team=access.team, user=user, valid=data[kind])
        else:
            kept[kind] = data.get(f"{kind}_asset")
    return kept


def _new_job_context(
    form: NewJobForm, access: Access, selected: dict[str, Asset | None]
) -> dict[str, Any]:
    errors = form.errors if form.is_bound else {}
    kling_ready = kling.is_configured()
    modes = [
        {
            "value": value,
            "label": MODE_HELP[value][0],
            "help": MODE_HELP[value][1],
            "disabled": value != AvatarJob.Mode.DRAFT and not kling_ready,
        }
        for value in AvatarJob.Mode.values
    ]
    mode_value = form["mode"].value() or AvatarJob.Mode.DRAFT
    if any(m["disabled"] and m["value"] == mode_value for m in modes) and not form.is_bound:
        mode_value = AvatarJob.Mode.DRAFT  # a duplicated std/pro job, and no Kling key now
    return {
        "access": access,
        "form": form,
        "picks": [
            _file_pick(form, kind, selected.get(kind), list(errors.get(kind, [])))
            for kind in ("portrait", "audio")
        ],
        "modes": modes,
        "mode_value": mode_value,
        "error_count": len(errors),
    }


@login_required
@require_http_methods(["GET", "POST"])
def job_new(request: HttpRequest) -> HttpResponse:
    access = current_team(request)
    if not access.can_write:
        return render(request, "jobs/read_only.html", {"access": access}, status=403)
    if request.method == "POST":
        form = NewJobForm(request.POST, request.FILES, team=access.team)
        if form.is_valid():
            try:
                job = _create_job(form, access, request.user)
            except ValidationError as exc:
                # Over the team's monthly limit (or a mode gone meanwhile): said next to the
                # mode, where a shorter mode or voice-over is picked; nothing was queued.
                field = "mode" if exc.code in ("quota", "mode") else None
                form.add_error(field, exc)
            else:
                messages.success(request, "Job queued: its card updates as it goes.")
                return redirect(f"{reverse('jobs:dashboard')}?new={job.code}")
        selected = _keep_valid_uploads(form, access, request.user)
    else:
        initial = _prefill(request, access)
        form = NewJobForm(initial=initial, team=access.team)
        selected = {kind: initial.get(f"{kind}_asset") for kind in ("portrait", "audio")}
    return render(request, "jobs/job_new.html", _new_job_context(form, access, selected))


def _create_job(form: NewJobForm, access: Access, user: Any) -> AvatarJob:
    data = form.cleaned_data
    with transaction.atomic():
        portrait = (
            services.asset_store(team=access.team, user=user, valid=data["portrait"])
            if data["portrait"]
            else data["portrait_asset"]
        )
        audio: Asset | None
        if data["kling_audio_id"]:
            audio = None  # a pasted Kling audio id: the job is sent with no file
        elif data["audio"]:
            audio = services.asset_store(team=access.team, user=user, valid=data["audio"])
        else:
            audio = data["audio_asset"]
        return services.job_create(
            team=access.team,
            user=user,
            portrait=portrait,
            audio=audio,
            kling_audio_id=data["kling_audio_id"],
            prompt=data["prompt"],
            mode=data["mode"],
            notify_by_email=data["notify_by_email"],
        )


@login_required
@require_POST
def job_new_check(request: HttpRequest, kind: str) -> HttpResponse:
    """Check one file the moment it is chosen, with the very checks the final submit runs.

    Also answers a pick from the library (`<kind>_asset`, no file) with its preview. A file
    that passes goes straight into the team's library (stored once by checksum) and
    comes back picked, so the final submit sends a code instead of uploading it again. The
    answer is the field's fragment: its preview, or its problems next to it (always 200).
    """
    if kind not in VALIDATORS:
        raise Http404("No such file field.")
    access = current_team(request)
    if not access.can_write:
        raise PermissionDenied("Your role in this team can only view.")
    form = NewJobForm(team=access.team)
    upload = request.FILES.get(kind)
    errors: list[str] = []
    selected: Asset | None = None
    if upload is not None:
        try:
            valid = VALIDATORS[kind](upload)
        except MediaError as exc:
            errors = list(exc.messages)
        else:
            selected = services.asset_store(team=access.team, user=request.user, valid=valid)
    if selected is None:
        # A pick from the library, or what was picked before a refused file.
        picked = _parse_codes([request.POST.get(f"{kind}_asset", "")])
        if picked:
            selected = (
                Asset.objects.for_team(access.team)
                .filter(kind=_asset_kind(kind), code=picked[0])
                .first()
            )
        if selected is None and not errors:
            errors = ["No file arrived: choose it again."]
    context = {"pick": _file_pick(form, kind, selected, errors), "access": access}
    return render(request, "jobs/job_new.html#file-field", context)


# --- job page and its actions ------------------------------------------------------------------


@login_required
@require_GET
def job_detail(request: HttpRequest, code: UUID) -> HttpResponse:
    """The job page; while the job runs, htmx refreshes its `#status` part every few seconds."""
    job, access = get_job(request.user, code)
    if job.status == Status.QUEUED:
        job.queue_ahead = (  # type: ignore[attr-defined]
            AvatarJob.objects.filter(status=Status.QUEUED, created__lt=job.created)
            .filter(Q(mode="draft") if job.mode == "draft" else ~Q(mode="draft"))
            .count()
        )
    attach_estimates([job])
    context = {
        "job": job,
        "access": access,
        "timeline": _timeline(job),
        "download_name": _download_name(job, "mp4"),
        "poll_seconds": POLL_SECONDS,
    }
    template = "jobs/job_detail.html#status" if request.htmx else "jobs/job_detail.html"
    return render(request, template, context)


@dataclass(frozen=True)
class Step:
    label: str
    at: datetime | None
    state: str  # "done", "current", "todo" or "failed"


def _timeline(job: AvatarJob) -> list[Step]:
    """The stages this job goes through (drafts skip Kling's), with when each began."""
    stages: list[tuple[str, str, datetime | None]] = [("queued", "Queued", job.created)]
    if job.uses_kling:
        stages += [
            ("submitting", "Sent to Kling", job.submitting_at),
            ("submitted", "Accepted by Kling", job.submitted_at),
        ]
    stages.append(("processing", "Generating", job.processing_at))
    if job.uses_kling:
        stages.append(("downloading", "Saving", job.downloading_at))
    end_label = {Status.FAILED: "Failed", Status.CANCELED: "Canceled"}.get(job.status, "Done")
    stages.append((Status.SUCCEEDED, end_label, job.finished_at))
    order = [status for status, _, _ in stages]
    current = order.index(job.status) if job.status in order else len(order) - 1
    steps = []
    for i, (_, label, at) in enumerate(stages):
        if job.status in (Status.FAILED, Status.CANCELED) and i == len(stages) - 1:
            state = "failed"
        elif i < current or (i == current and job.is_terminal):
            state = "done"
        elif i == current:
            state = "current"
        else:
            state = "todo"
        if state == "todo" or (state != "failed" and at is None and i > current):
            at = None
        steps.append(Step(label, at, state))
    return steps


@login_required
@require_POST
def job_cancel(request: HttpRequest, code: UUID) -> HttpResponse:
    job, _ = get_job(request.user, code, write=True)
    if services.job_cancel(job=job):
        messages.success(request, "Job canceled. Nothing was sent to Kling.")
    else:
        messages.error(request, "This job can no longer be canceled: it has already started.")
    return redirect(job)


@login_required
@require_POST
def job_retry(request: HttpRequest, code: UUID) -> HttpResponse:
    job, _ = get_job(request.user, code, write=True)
    try:
        new = services.job_retry(job=job, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(job)
    messages.success(request, "Trying again with the same inputs: here is the new job.")
    return redirect(f"{reverse('jobs:dashboard')}?new={new.code}")


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


# --- library -----------------------------------------------------------------------------------


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
def library(request: HttpRequest) -> HttpResponse:
    access = current_team(request)
    return render(request, "jobs/library.html", _library_context(access, request.GET))


def _asset_with_uses(asset: Asset) -> Asset:
    return library_assets(asset.team).get(pk=asset.pk)


@login_required
@require_http_methods(["GET", "POST"])
def asset_rename(request: HttpRequest, code: UUID) -> HttpResponse:
    """Rename a library file: inline with htmx, or the library page in edit mode without it."""
    asset, access = get_asset(request.user, code, write=True)
    if request.htmx and request.method == "GET" and "cancel" in request.GET:
        context = {"asset": _asset_with_uses(asset), "access": access}  # the tile as it was
        return render(request, "jobs/library.html#asset", context)
    form = AssetRenameForm(request.POST or None, initial={"name": asset.name})
    if request.method == "POST" and form.is_valid():
        try:
            services.asset_rename(asset=asset, name=form.cleaned_data["name"])
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
def asset_delete(request: HttpRequest, code: UUID) -> HttpResponse:
    asset, access = get_asset(request.user, code, write=True)
    try:
        services.asset_delete(asset=asset)
    except ValidationError as exc:
        if request.htmx:
            context = {"asset": _asset_with_uses(asset), "access": access, "error": exc.messages[0]}
            return render(request, "jobs/library.html#asset", context)
        messages.error(request, exc.messages[0])
        return redirect("jobs:library")
    transaction.on_commit(lambda: default_storage.delete(_thumb_name(asset)))
    if request.htmx:
        return HttpResponse("")  # the tile swaps itself out
    messages.success(request, f"Deleted {asset.name}.")
    return redirect("jobs:library")


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


def _thumb_name(asset: Asset) -> str:
    return f"thumbs/{asset.team.code}/{asset.code}-{THUMB_SIZE}.jpg"


def _make_thumb(asset: Asset) -> bytes:
    with asset.file.open("rb") as fh, Image.open(fh) as image:
        image.draft("RGB", (THUMB_SIZE, THUMB_SIZE))  # JPEG: decode at 1/2..1/8 scale, fast
        image = ImageOps.exif_transpose(image).convert("RGB")
        image.thumbnail((THUMB_SIZE, THUMB_SIZE))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=82, optimize=True, progressive=True)
    return out.getvalue()


@login_required
@require_GET
def asset_thumb(request: HttpRequest, code: UUID) -> HttpResponse:
    """A small JPEG of a portrait for cards and the library (portraits can be 10 MB).

    Made on first request and kept in storage; the checksum makes a strong ETag.
    """
    asset, _ = get_asset(request.user, code)
    if asset.kind != Asset.Kind.PORTRAIT:
        raise Http404("Only portraits have thumbnails.")
    etag = f'"{asset.sha256[:32]}-{THUMB_SIZE}"'
    if request.headers.get("If-None-Match") == etag:
        return HttpResponseNotModified(headers={"ETag": etag})
    name = _thumb_name(asset)
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
    response["Cache-Control"] = "private, max-age=86400"
    response["X-Content-Type-Options"] = "nosniff"
    return response
