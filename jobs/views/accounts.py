"""Accounts: logging in (with word of an invite), signing up from an invite, open sign-up
(off unless ALLOW_SIGNUP), your own account page, and password reset requests with a rate limit."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from axes.helpers import get_client_ip_address  # type: ignore[import-untyped]
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import login as auth_login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordResetForm
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import Resolver404, resolve, reverse
from django.views.decorators.http import require_http_methods

from jobs.access import StudioRequest
from jobs.forms import AccountForm, SignupForm
from jobs.models import TeamInvite
from jobs.services import teams
from jobs.services.teams import invite_find
from jobs.views.teams import invite_refused, no_store

# django-axes sits first in AUTHENTICATION_BACKENDS; a fresh account logs in through this one.
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"

# Password reset requests per hour: each one sends an email, so an address or a mailbox
# cannot be flooded. Counted whether or not the account exists, so the limit reveals nothing.
RESET_LIMIT_PER_ADDRESS = 5
RESET_LIMIT_PER_EMAIL = 3
RESET_WINDOW_SECONDS = 3600


def _invite_from_next(next_url: str) -> tuple[TeamInvite, str] | None:
    """The usable invite a login's `next` leads back to, if it is an invite link."""
    try:
        match = resolve(urlsplit(next_url).path)
    except Resolver404:
        return None
    if match.view_name != "jobs:invite-accept":
        return None
    token = match.kwargs["token"]
    invite = invite_find(token)
    if invite is None or not invite.is_usable:
        return None
    return invite, token


@require_http_methods(["GET", "POST"])
def login(request: HttpRequest) -> HttpResponseBase:
    """Django's login, saying which team invites you when you come from an invite link."""
    extra: dict[str, object] = {}
    found = _invite_from_next(request.POST.get("next") or request.GET.get("next") or "")
    if found is not None:
        invite, token = found
        extra = {"invite": invite, "signup_url": reverse("invite-signup", args=[token])}
    view = auth_views.LoginView.as_view(redirect_authenticated_user=True, extra_context=extra)
    response = view(request)
    if found is not None:  # the token is in this page's address
        no_store(response)
    return response


def _signup_closed(request: HttpRequest) -> HttpResponse:
    return render(request, "registration/signup_closed.html", status=404)


@require_http_methods(["GET", "POST"])
def invite_signup(request: HttpRequest, token: str) -> HttpResponse:
    """A newcomer makes an account from an invite link and is in the team at once."""
    invite = invite_find(token)
    if invite is None:
        return invite_refused(
            request, "This invite link does not work: it was revoked, or is incomplete.", 404
        )
    if not invite.is_usable:
        used = "was already used" if invite.used_at else "has expired"
        return invite_refused(request, f"This invite link {used}.", 410)
    accept_url = reverse("jobs:invite-accept", args=[token])
    if request.user.is_authenticated:
        return redirect(accept_url)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            membership = teams.signup_with_invite(
                token=token,
                username=form.cleaned_data["username"],
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password1"],
            )
        except ValidationError as exc:  # used or expired while the form was being filled
            return invite_refused(request, " ".join(exc.messages), 410)
        auth_login(request, membership.user, backend=MODEL_BACKEND)
        request.session["team"] = str(invite.team.code)
        messages.success(
            request,
            f"Welcome to {invite.team.name}: you joined as "
            f"{membership.get_role_display().lower()}.",
        )
        return redirect("jobs:team-detail", code=invite.team.code)
    context = {
        "form": form,
        "invite": invite,
        "login_url": reverse("login") + "?" + urlencode({"next": accept_url}),
    }
    return no_store(render(request, "registration/signup.html", context))


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """Open sign-up, without an invite: off unless the server sets ALLOW_SIGNUP=true."""
    if not settings.ALLOW_SIGNUP:
        return _signup_closed(request)
    if request.user.is_authenticated:
        return redirect("jobs:dashboard")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():  # the account and its personal team (signal) together
            user = get_user_model().objects.create_user(
                form.cleaned_data["username"],
                form.cleaned_data["email"],
                form.cleaned_data["password1"],
            )
        auth_login(request, user, backend=MODEL_BACKEND)
        return redirect("jobs:dashboard")
    return render(request, "registration/signup.html", {"form": form})


@login_required
@require_http_methods(["GET", "POST"])
def account(request: StudioRequest) -> HttpResponse:
    """Your account: who you are, your email address (changed with your password), your teams."""
    user = request.user
    form = AccountForm(user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"]
        if email == user.email:
            messages.info(request, "Nothing changed: that is already your address.")
        else:
            user.email = email
            user.save(update_fields=["email"])
            messages.success(
                request,
                f"Your email address is now {email}."
                if email
                else "Your email address is removed.",
            )
        return redirect("account")
    memberships = user.memberships.select_related("team").order_by("team__personal", "team__name")
    context = {"form": form, "memberships": memberships}
    return render(request, "registration/account.html", context)


def _over_limit(key: str, limit: int) -> bool:
    """Count one request against `key`; True once more than `limit` came in this window."""
    cache.add(key, 0, RESET_WINDOW_SECONDS)  # starts the window; no-op if it is running
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr: this is the first of a new window
        cache.set(key, 1, RESET_WINDOW_SECONDS)
        count = 1
    return count > limit


@require_http_methods(["GET", "POST"])
def password_reset(request: HttpRequest) -> HttpResponseBase:
    """Django's password reset, at most a few requests an hour per client and per email."""
    if request.method == "POST":
        # The address the login lockout uses (AXES_CLIENT_IP_CALLABLE: PROXY_COUNT-aware).
        address = get_client_ip_address(request) or "unknown"
        email = request.POST.get("email", "").strip().lower()
        # Both counters move on every request, so neither can be used to probe the other.
        by_address = _over_limit(f"pwreset:ip:{address}", RESET_LIMIT_PER_ADDRESS)
        by_email = _over_limit(f"pwreset:email:{email}", RESET_LIMIT_PER_EMAIL)
        if by_address or by_email:
            context = {"form": PasswordResetForm(request.POST), "limited": True}
            return render(request, "registration/password_reset_form.html", context, status=429)
    return auth_views.PasswordResetView.as_view()(request)
