"""The API's portal pages: API tokens (made, listed, revoked) and the docs."""

from __future__ import annotations

from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from jobs.access import StudioRequest, current_team, membership_for
from jobs.forms import TokenForm
from jobs.links import public_base_url
from jobs.models import DRAFT_MODE_HELP, ApiToken, Membership
from jobs.services.api_tokens import (
    api_key_pair_create,
    api_token_create,
    api_token_revoke,
    api_tokens_visible,
)


@login_required
def tokens(request: StudioRequest) -> HttpResponse:
    """List the team's tokens (admins see everyone's), create one (shown once), revoke."""
    access = current_team(request)
    form = TokenForm(request.POST or None)
    created: tuple[ApiToken, str] | None = None
    if request.method == "POST":
        if not access.can_write:
            raise PermissionDenied("Your role in this team can only view: it cannot make tokens.")
        if form.is_valid():
            make = api_key_pair_create if form.cleaned_data["kind"] == "pair" else api_token_create
            try:
                created = make(user=request.user, team=access.team, name=form.cleaned_data["name"])
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                form = TokenForm()
    token_list = api_tokens_visible(user=request.user, team=access.team, is_admin=access.is_admin)
    response = render(
        request,
        "api/tokens.html",
        {
            "access": access,
            "form": form,
            "tokens": token_list,
            "new_token": created[1] if created else None,
            "new_token_name": created[0].name if created else "",
            "new_access_key": created[0].access_key if created else None,
            "base_url": public_base_url(request),
        },
        status=201 if created else 200,
    )
    # The page may hold a token shown once: it must not sit in a cache or the history.
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke(request: StudioRequest, code: UUID) -> HttpResponse:
    """Revoke a token: its owner can, and so can the team's admins; others get 404."""
    token = ApiToken.objects.select_related("team").filter(code=code).first()
    if token is None:
        raise Http404("No such token.")
    membership = membership_for(request.user, token.team)
    is_owner = token.user_id == request.user.pk
    if membership is None or not (is_owner or membership.role == Membership.Role.ADMIN):
        raise Http404("No such token.")
    if api_token_revoke(token=token):
        messages.success(request, f"Revoked {token.name}: requests with it now get 401.")
    return redirect("api:tokens")


@login_required
def docs(request: StudioRequest) -> HttpResponse:
    """How to call the API from scripts, with this server's own address in every example."""
    access = current_team(request)
    base_url = public_base_url(request)
    return render(
        request,
        "api/docs.html",
        {
            "access": access,
            "base_url": base_url,
            "kling_base": f"{base_url}/kling",
            "create_url": f"{base_url}/kling/v1/videos/avatar/image2video",
            "openapi_url": f"{base_url}{reverse('api:openapi')}",
            "max_audio_seconds": settings.KLING_MAX_AUDIO_SECONDS,
            "draft_help": DRAFT_MODE_HELP,
            "has_tokens": api_tokens_visible(user=request.user, team=access.team, is_admin=False)
            .filter(revoked_at__isnull=True)
            .exists(),
        },
    )
