"""The new-job page: files uploaded or picked from the library, each checked as it is chosen."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms import BoundField
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from jobs import kling
from jobs.access import Access, StudioRequest, current_team, get_asset, get_job, get_template
from jobs.forms import MODE_HELP, NewJobForm, refusal_token
from jobs.media.audio import ValidAudio, validate_audio
from jobs.media.limits import MediaError
from jobs.media.portraits import ValidPortrait, validate_portrait
from jobs.models import Asset, AvatarJob
from jobs.services.assets import asset_store
from jobs.services.jobs import job_create
from jobs.services.units import Budget, UnitEstimate, budget_summary, estimates_for
from jobs.views.dashboard import parse_codes

LIBRARY_PICKS = 12  # library files offered on the new-job page, newest first


VALIDATORS: dict[str, Callable[[Any], ValidPortrait | ValidAudio]] = {
    "portrait": validate_portrait,
    "audio": validate_audio,
}


@dataclass
class FilePick:
    """One file field of the new-job form: upload or pick, with its preview and problems."""

    kind: str  # "portrait" or "audio"
    field: BoundField  # the upload field (its id, label, help text)
    selected: Asset | None
    library: list[Asset]
    errors: list[str] = dataclass_field(default_factory=list)
    # A picked voice-over's Kling units in std and pro, before the job is made, and what the
    # team's monthly unit budget leaves (None: no budget).
    estimates: list[UnitEstimate] = dataclass_field(default_factory=list)
    budget: Budget | None = None

    @property
    def asset_name(self) -> str:
        return f"{self.kind}_asset"

    @property
    def refusal(self) -> str:
        """The signed reasons a refused file (nothing picked instead) carries to the submit."""
        return refusal_token(self.errors) if self.errors and self.selected is None else ""

    @property
    def check_url(self) -> str:
        return reverse("jobs:job-new-check", args=[self.kind])


def file_pick(
    form: NewJobForm, kind: str, selected: Asset | None, errors: list[str] | None = None
) -> FilePick:
    library = Asset.objects.for_team(form.team).filter(kind=asset_kind(kind))
    recent = list(library[:LIBRARY_PICKS])
    if selected is not None and selected not in recent:
        recent.insert(0, selected)  # a pick from further back stays visible and checked
    estimates, budget = [], None
    if kind == "audio" and selected is not None and kling.is_configured():
        estimates = estimates_for(team=form.team, seconds=selected.duration)
        if form.team.monthly_unit_budget is not None:
            budget = budget_summary(team=form.team)
    return FilePick(kind, form[kind], selected, recent, errors or [], estimates, budget)


def asset_kind(kind: str) -> str:
    return Asset.Kind.PORTRAIT if kind == "portrait" else Asset.Kind.AUDIO


def _prefill(request: HttpRequest, access: Access) -> dict[str, Any]:
    """Initial values from ?from=<job> (duplicate) or ?portrait=/?audio=<asset> (reuse), and
    ?mode=/?prompt= (kept across a voice-over written without JavaScript)."""
    initial: dict[str, Any] = {}
    keys = ("from", "portrait", "audio", "template")
    codes = {key: parse_codes([request.GET.get(key, "")]) for key in keys}
    if codes["template"]:
        template, _ = get_template(request.user, codes["template"][0])
        if template.team_id == access.team.pk:
            initial.update(
                portrait_asset=template.portrait,
                audio_asset=template.audio,
                prompt=template.prompt,
                mode=template.mode,
            )
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
            if asset.team_id == access.team.pk and asset.kind == asset_kind(kind):
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
            kept[kind] = asset_store(team=access.team, user=user, valid=data[kind])
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
            file_pick(form, kind, selected.get(kind), [str(e) for e in errors.get(kind, [])])
            for kind in ("portrait", "audio")
        ],
        "modes": modes,
        "mode_value": mode_value,
        "error_count": len(errors),
    }


@login_required
@require_http_methods(["GET", "POST"])
def job_new(request: StudioRequest) -> HttpResponse:
    access = current_team(request)
    if not access.can_write:
        return render(request, "jobs/read_only.html", {"access": access}, status=403)
    if request.method == "POST":
        form = NewJobForm(request.POST, request.FILES, team=access.team, user=request.user)
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
        form = NewJobForm(initial=initial, team=access.team, user=request.user)
        selected = {kind: initial.get(f"{kind}_asset") for kind in ("portrait", "audio")}
    return render(request, "jobs/job_new.html", _new_job_context(form, access, selected))


def _create_job(form: NewJobForm, access: Access, user: Any) -> AvatarJob:
    """The job the form asks for: new uploads are stored in the library by job_create."""
    data = form.cleaned_data
    return job_create(
        team=access.team,
        user=user,
        portrait=data["portrait"] or data["portrait_asset"],
        # A pasted Kling audio id: the job is sent with no file.
        audio=None if data["kling_audio_id"] else (data["audio"] or data["audio_asset"]),
        kling_audio_id=data["kling_audio_id"],
        prompt=data["prompt"],
        mode=data["mode"],
        notify_by_email=data["notify_by_email"],
        name=data["name"],
    )


@login_required
@require_POST
def job_new_check(request: StudioRequest, kind: str) -> HttpResponse:
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
            selected = asset_store(team=access.team, user=request.user, valid=valid)
    if selected is None:
        # A pick from the library, or what was picked before a refused file.
        picked = parse_codes([request.POST.get(f"{kind}_asset", "")])
        if picked:
            selected = (
                Asset.objects.for_team(access.team)
                .filter(kind=asset_kind(kind), code=picked[0])
                .first()
            )
        if selected is None and not errors:
            errors = ["No file arrived: choose it again."]
    context = {"pick": file_pick(form, kind, selected, errors), "access": access}
    return render(request, "jobs/job_new.html#file-field", context)
