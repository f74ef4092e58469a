"""Teams: create, switch, members and roles, invites, settings and usage."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, TypeVar
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from jobs.access import Access, StudioRequest, get_team, membership_for
from jobs.forms import (
    ROLE_HELP,
    InviteForm,
    MemberAddForm,
    QuotaForm,
    RoleForm,
    TeamCreateForm,
)
from jobs.links import public_base_url
from jobs.models import AvatarJob, Membership, TeamInvite
from jobs.services import teams
from jobs.services.quotas import quota_set, usage_summary
from jobs.services.teams import invite_find, member_set_role
from jobs.services.units import (
    account_units,
    budget_summary,
    format_units,
    unit_budget_set,
    units_warning,
)

ResponseT = TypeVar("ResponseT", bound=HttpResponseBase)


def no_store(response: ResponseT) -> ResponseT:
    """The page holds a secret (an invite or share link): keep it out of caches and history.

    Its Referer goes only to this site (same-origin), never to others. Not no-referrer: a page
    with a form must not have it, since Chromium then posts the form with `Origin: null`,
    which Django's CSRF check refuses (issue 12).
    """
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "same-origin"
    return response


def _team_url(access: Access) -> str:
    return reverse("jobs:team-detail", args=[access.team.code])


# --- creating and switching teams --------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def team_create(request: StudioRequest) -> HttpResponse:
    form = TeamCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            team = teams.team_create(name=form.cleaned_data["name"], user=request.user)
        except ValidationError as exc:
            form.add_error("name", exc)
        else:
            request.session["team"] = str(team.code)
            messages.success(request, f"Created {team.name}: you are its admin. Invite people.")
            return redirect("jobs:team-detail", code=team.code)
    return render(request, "teams/team_new.html", {"form": form})


@login_required
@require_POST
def team_switch(request: StudioRequest) -> HttpResponse:
    """Work in another of the user's teams (kept in the session); other teams are 404."""
    try:
        code = UUID(request.POST.get("team", ""))
    except ValueError:
        raise Http404("No such team.") from None
    access = get_team(request.user, code)
    request.session["team"] = str(access.team.code)
    messages.success(request, f"You are now working in {access.team.name}.")
    return redirect("jobs:dashboard")


# --- members and invites -----------------------------------------------------------------------


def _team_context(access: Access, **extra: Any) -> dict[str, Any]:
    members = access.team.memberships.select_related("user").order_by("user__username")
    invites = (
        access.team.invites.filter(used_at__isnull=True).select_related("created_by")
        if access.is_admin
        else TeamInvite.objects.none()
    )
    context = {
        "access": access,
        "team": access.team,
        "members": list(members),
        "invites": list(invites),
        "roles": Membership.Role.choices,
        "add_form": MemberAddForm(),
        "invite_form": InviteForm(),
    }
    context.update(extra)
    return context


NEW_INVITE_KEY = "new_invite"


@login_required
@require_GET
def team_detail(request: StudioRequest, code: UUID) -> HttpResponse:
    access = get_team(request.user, code)
    # A link just made (POST/redirect/GET): shown on this one page view, then gone.
    shown = request.session.pop(NEW_INVITE_KEY, None) if access.is_admin else None
    extra: dict[str, Any] = {}
    if shown and shown.get("team") == str(access.team.code):
        new_invite = access.team.invites.filter(code=shown["code"]).first()
        if new_invite is not None:
            extra = {"new_invite": new_invite, "new_invite_url": shown["url"]}
    response = render(request, "teams/team_detail.html", _team_context(access, **extra))
    return no_store(response) if extra else response


@login_required
@require_POST
def member_add(request: StudioRequest, code: UUID) -> HttpResponse:
    access = get_team(request.user, code, admin=True)
    form = MemberAddForm(request.POST)
    if form.is_valid():
        try:
            membership = teams.member_add(
                team=access.team, login=form.cleaned_data["login"], role=form.cleaned_data["role"]
            )
        except ValidationError as exc:
            form.add_error("login", exc)
        else:
            messages.success(
                request,
                f"Added {membership.user.get_username()} as {membership.get_role_display()}.",
            )
            return redirect(_team_url(access))
    return render(request, "teams/team_detail.html", _team_context(access, add_form=form))


def _team_membership(access: Access, member: UUID) -> Membership:
    membership = access.team.memberships.select_related("user").filter(code=member).first()
    if membership is None:
        raise Http404("No such member.")
    return membership


@login_required
@require_POST
def member_role(request: StudioRequest, code: UUID, member: UUID) -> HttpResponse:
    access = get_team(request.user, code, admin=True)
    membership = _team_membership(access, member)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a role: admin, member or viewer.")
        return redirect(_team_url(access))
    try:
        member_set_role(membership=membership, role=form.cleaned_data["role"])
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        name = membership.user.get_username()
        messages.success(request, f"{name} is now {membership.get_role_display().lower()}.")
    return redirect(_team_url(access))


@login_required
@require_POST
def member_remove(request: StudioRequest, code: UUID, member: UUID) -> HttpResponse:
    access = get_team(request.user, code, admin=True)
    membership = _team_membership(access, member)
    if membership.user_id == request.user.pk:
        return _leave(request, access)
    try:
        teams.member_remove(membership=membership)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Removed {membership.user.get_username()} from the team.")
    return redirect(_team_url(access))


def _leave(request: HttpRequest, access: Access) -> HttpResponse:
    try:
        teams.member_remove(membership=access.membership)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(_team_url(access))
    if request.session.get("team") == str(access.team.code):
        del request.session["team"]
    messages.success(request, f"You left {access.team.name}.")
    return redirect("jobs:dashboard")


@login_required
@require_POST
def team_leave(request: StudioRequest, code: UUID) -> HttpResponse:
    """Anyone may leave a team, viewers too; only the last admin may not."""
    return _leave(request, get_team(request.user, code))


@login_required
@require_POST
def invite_create(request: StudioRequest, code: UUID) -> HttpResponse:
    access = get_team(request.user, code, admin=True)
    form = InviteForm(request.POST)
    if not form.is_valid():
        context = _team_context(access, invite_form=form)
        return render(request, "teams/team_detail.html", context, status=400)
    invite, token = teams.invite_create(
        team=access.team,
        by=request.user,
        role=form.cleaned_data["role"],
        days=form.cleaned_data["days"],
    )
    # Redirect, so a reload does not post again; the link waits in the session for one view.
    request.session[NEW_INVITE_KEY] = {
        "team": str(access.team.code),
        "code": str(invite.code),
        "url": public_base_url(request) + reverse("jobs:invite-accept", args=[token]),
    }
    return redirect(_team_url(access))


@login_required
@require_POST
def invite_revoke(request: StudioRequest, code: UUID, invite: UUID) -> HttpResponse:
    """Delete an unused invite: its link stops working at once."""
    access = get_team(request.user, code, admin=True)
    found = access.team.invites.filter(code=invite, used_at__isnull=True).first()
    if found is None:
        raise Http404("No such invite.")
    found.delete()
    messages.success(request, "Invite revoked: its link no longer works.")
    return redirect(_team_url(access))


def invite_refused(request: HttpRequest, reason: str, status: int) -> HttpResponse:
    response = render(request, "teams/invite_invalid.html", {"reason": reason}, status=status)
    return no_store(response)


@require_http_methods(["GET", "POST"])
def invite_accept(request: StudioRequest, token: str) -> HttpResponse:
    """The page an invite link opens: who invites you, as what, and an Accept button.

    Someone not logged in is sent to log in (the login page names the team and offers to
    create an account instead), and comes back here.
    """
    invite = invite_find(token)
    if invite is None:
        return invite_refused(
            request, "This invite link does not work: it was revoked, or is incomplete.", 404
        )
    if not request.user.is_authenticated:
        if not invite.is_usable:
            used = "was already used" if invite.used_at else "has expired"
            return invite_refused(request, f"This invite link {used}.", 410)
        return no_store(redirect_to_login(request.path))
    member = membership_for(request.user, invite.team)
    if member is None and not invite.is_usable:
        used = "was already used" if invite.used_at else "has expired"
        return invite_refused(request, f"This invite link {used}.", 410)
    if request.method == "POST":
        try:
            membership = teams.invite_accept(token=token, user=request.user)
        except ValidationError as exc:
            return invite_refused(request, " ".join(exc.messages), 410)
        request.session["team"] = str(invite.team.code)
        messages.success(
            request,
            f"Welcome to {invite.team.name}: you joined as "
            f"{membership.get_role_display().lower()}.",
        )
        return redirect("jobs:dashboard")
    context = {"invite": invite, "member": member, "role_help": ROLE_HELP}
    return no_store(render(request, "teams/invite.html", context))


# --- quotas and usage --------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def team_settings(request: StudioRequest, code: UUID) -> HttpResponse:
    """Monthly limits (seconds per mode, Kling units), for the team's admins."""
    access = get_team(request.user, code, admin=True)
    team = access.team
    initial: dict[str, int | None] = {
        mode: team.quota_seconds(mode) for mode in AvatarJob.Mode.values
    }
    initial["unit_budget"] = team.monthly_unit_budget
    form = QuotaForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        for mode in AvatarJob.Mode.values:
            quota_set(team=team, mode=mode, seconds=form.cleaned_data[mode])
        unit_budget_set(team=team, units=form.cleaned_data["unit_budget"])
        messages.success(request, "Saved the monthly limits.")
        return redirect("jobs:team-settings", code=team.code)
    return render(request, "teams/team_settings.html", {"access": access, "form": form})


@login_required
@require_GET
def team_usage(request: StudioRequest, code: UUID) -> HttpResponse:
    """This month's generated seconds per member and mode, Kling's units, and what is left."""
    access = get_team(request.user, code)
    summary = usage_summary(team=access.team)
    # The Kling account is the whole studio's, not the team's: its packs are for those who
    # run the team or the studio (and only their views ask Kling).
    sees_account = access.is_admin or request.user.is_staff
    account = account_units() if sees_account else None
    labels = dict(AvatarJob.Mode.choices)
    people: dict[str, dict[str, Any]] = defaultdict(lambda: {"seconds": {}, "units": 0})
    for row in summary["rows"]:
        person = people[row["created_by__username"] or "(deleted account)"]
        person["seconds"][row["mode"]] = row["seconds"] or 0
        person["units"] += row["units"] or 0
    members = [
        {
            "name": name,
            "seconds": [numbers["seconds"].get(mode, 0) for mode in AvatarJob.Mode.values],
            "units": format_units(numbers["units"]),
        }
        for name, numbers in sorted(people.items())
    ]
    modes = [
        {
            "value": mode,
            "label": labels[mode],
            **numbers,
            "percent": min(round(100 * numbers["used"] / numbers["limit"]), 100)
            if numbers["limit"]
            else None,
        }
        for mode, numbers in summary["modes"].items()
    ]
    context = {
        "access": access,
        "since": summary["since"],
        "members": members,
        "mode_labels": list(AvatarJob.Mode.values),  # short: the table is narrow on a phone
        "modes": modes,
        "total_units": format_units(sum(p["units"] for p in people.values())),
        "budget": budget_summary(team=access.team),
        "account": account,
        "units_warning": units_warning(account) if account and access.is_admin else None,
    }
    return render(request, "teams/team_usage.html", context)
