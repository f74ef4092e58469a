"""Issue 12, "a team can join and work in the portal": forms post from every page (CSRF as
Chromium does it), styled error pages, POST/redirect/GET after making an invite, sign-up from an
invite, login that names the team, rate-limited password reset, share pages that say why they
stopped working, and members' emails shown to admins only."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connection
from django.template import loader
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from jobs.models import Membership, ShareLink, Team, TeamInvite
from jobs.services import teams as team_services
from jobs.services.sharing import share_create, share_revoke
from jobs.services.teams import invite_create, team_create
from tests.helpers import finish, login, new_job

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast")]

Role = Membership.Role
ORIGIN = "http://testserver"  # what Chromium sends on a same-origin form post
STRONG = "Quiet-harbour-2291"


def page(response) -> str:
    return response.content.decode()


def browser() -> Client:
    """A client that checks CSRF tokens like production does."""
    return Client(enforce_csrf_checks=True)


def csrf_of(response) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page(response))
    assert match, "the page has a form with a CSRF token"
    return match.group(1)


def post_form(client: Client, url: str, data: dict, *, origin: str = ORIGIN, **extra):
    """GET the page, then post its form back with the token and the Origin Chromium sends."""
    token = csrf_of(client.get(url))
    return client.post(url, {"csrfmiddlewaretoken": token, **data}, HTTP_ORIGIN=origin, **extra)


@pytest.fixture
def studio(owner) -> Team:
    return team_create(name="Studio North", user=owner)


@pytest.fixture
def invite_url(studio, owner) -> str:
    _, token = invite_create(team=studio, by=owner, role=Role.MEMBER)
    return reverse("jobs:invite-accept", args=[token])


# --- 1. forms post from every page; styled error pages ---------------------------------------


def test_invite_page_can_be_accepted_by_chromium(studio, invite_url, outsider):
    client = login(browser(), outsider)
    shown = client.get(invite_url)
    # No no-referrer on a page with a form: Chromium would post it with `Origin: null`.
    assert shown["Referrer-Policy"] == "same-origin"
    response = client.post(invite_url, {"csrfmiddlewaretoken": csrf_of(shown)}, HTTP_ORIGIN=ORIGIN)
    assert response.status_code == 302
    assert Membership.objects.get(team=studio, user=outsider).role == Role.MEMBER


def test_every_page_with_a_form_sends_a_referrer(client, owner, studio, done, invite_url):
    """The test client does not apply Referrer-Policy, so the header itself is checked."""
    login(client, owner, studio)
    client.post(reverse("jobs:invite-create", args=[studio.code]), {"role": "viewer", "days": 2})
    team = owner.memberships.get(team__personal=True).team
    pages = [
        reverse("jobs:dashboard"),
        reverse("jobs:job-new"),
        reverse("jobs:library"),
        reverse("jobs:voiceover-new"),
        reverse("jobs:team-create"),
        reverse("jobs:team-detail", args=[studio.code]),  # shows the new invite link
        reverse("jobs:team-detail", args=[team.code]),
        reverse("jobs:team-settings", args=[studio.code]),
        reverse("jobs:team-usage", args=[studio.code]),
        reverse("api:tokens"),
        reverse("password_change"),
        done.get_absolute_url(),
        invite_url,
    ]
    anonymous = [
        reverse("login"),
        reverse("login") + "?next=" + invite_url,
        reverse("password_reset"),
        invite_url.rstrip("/") + "/signup/",
    ]
    checked = 0
    for url in pages + ["logout"] + anonymous:
        if url == "logout":
            client.logout()
            continue
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.get("Referrer-Policy") != "no-referrer", url
        checked += "<form" in page(response)
    assert checked == len(pages) + len(anonymous)


def test_a_refused_form_explains_what_to_do(outsider, invite_url):
    client = login(browser(), outsider)
    response = post_form(client, invite_url, {}, origin="null")
    assert response.status_code == 403
    assert "could not be sent" in page(response) and "reload it and try again" in page(response)
    assert 'href="/static/css/studio.css"' in page(response) or "studio" in page(response)
    assert response["Content-Security-Policy"]
    # Without the cookie (blocked cookies): say so.
    client = login(browser(), outsider)
    token = csrf_of(client.get(invite_url))
    client.cookies.pop("csrftoken")
    response = client.post(invite_url, {"csrfmiddlewaretoken": token}, HTTP_ORIGIN=ORIGIN)
    assert response.status_code == 403 and "allow cookies" in page(response)


def test_a_post_only_address_opened_by_get_gets_a_styled_405(client, owner, team):
    login(client, owner)
    for url in (
        reverse("jobs:team-switch"),
        reverse("jobs:invite-create", args=[team.code]),
        reverse("jobs:team-leave", args=[team.code]),
    ):
        response = client.get(url)
        assert response.status_code == 405
        assert response["Allow"] == "POST"
        assert "This address is not a page" in page(response)
        assert "Back to your jobs" in page(response)
        assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    # A machine asking for JSON keeps the plain answer.
    plain = client.get(reverse("jobs:team-switch"), HTTP_ACCEPT="application/json")
    assert plain.status_code == 405 and plain.content == b""


def test_bad_request_and_server_error_pages_are_styled(client):
    response = client.get("/", HTTP_HOST="not-this-server.example")
    assert response.status_code == 400
    assert "The request was not understood" in page(response)
    assert 'href="/static/css/studio.css"' in page(response)
    # The 500 page needs no database and no request.
    with CaptureQueriesContext(connection) as queries:
        html = loader.get_template("500.html").render()
    assert len(queries) == 0
    assert "Something went wrong on our side" in html and "style=" not in html


def test_not_found_tells_a_visitor_to_ask_for_a_new_link(client):
    response = client.get("/jobs/00000000-0000-0000-0000-000000000000/")
    # Logged out: the login page (login_required); an unknown address says not found.
    assert response.status_code == 302
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and "ask them for a new one" in page(response)
    assert "add you to their team" not in page(response)


# --- 2. POST/redirect/GET after making an invite ---------------------------------------------


def test_making_an_invite_redirects_and_a_reload_does_not_post_again(client, owner, studio):
    login(client, owner, studio)
    url = reverse("jobs:team-detail", args=[studio.code])
    response = client.post(
        reverse("jobs:invite-create", args=[studio.code]), {"role": "viewer", "days": 2}
    )
    assert response.status_code == 302 and response["Location"] == url
    shown = client.get(url)
    assert shown["Cache-Control"] == "no-store"
    link = re.search(
        r'id="new-invite-url" value="http://testserver(/invites/[^/"]+/)"', page(shown)
    )
    assert link
    reload = client.get(url)  # the reload is a plain GET of the team page
    assert reload.status_code == 200 and link.group(1) not in page(reload)
    assert TeamInvite.objects.filter(team=studio).count() == 1
    # The invite is listed to admins, to revoke.
    assert "Open invites" in page(reload)


def test_a_bad_invite_form_is_shown_again_with_its_error(client, owner, studio):
    login(client, owner, studio)
    response = client.post(
        reverse("jobs:invite-create", args=[studio.code]), {"role": "viewer", "days": 99}
    )
    assert response.status_code == 400 and "30" in page(response)
    assert not TeamInvite.objects.exists()


# --- 3. onboarding ----------------------------------------------------------------------------


def test_a_newcomer_signs_up_from_the_invite_and_is_in_the_team(studio, invite_url):
    client = browser()
    response = client.get(invite_url)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    login_page = client.get(response["Location"])
    assert f"{escape(studio.name)}</strong> invited you: log in or create an account" in page(
        login_page
    )
    signup_url = re.search(r'href="(/invites/[^"]+/signup/)"', page(login_page)).group(1)
    response = post_form(
        client,
        signup_url,
        {"username": "nina", "email": "nina@example.com", "password1": STRONG, "password2": STRONG},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("jobs:team-detail", args=[studio.code])
    nina = get_user_model().objects.get(username="nina")
    assert nina.email == "nina@example.com" and nina.check_password(STRONG)
    assert Membership.objects.get(team=studio, user=nina).role == Role.MEMBER
    assert Team.objects.filter(personal=True, memberships__user=nina).count() == 1
    assert TeamInvite.objects.get().used_by == nina
    assert client.session["team"] == str(studio.code)
    landed = client.get(response["Location"])
    assert landed.status_code == 200 and f"Welcome to {escape(studio.name)}" in page(landed)
    # The link is used up now, for anyone.
    assert Client().get(invite_url).status_code == 410


def test_sign_up_checks_the_password_rules(studio, invite_url):
    client = browser()
    signup_url = invite_url.rstrip("/") + "/signup/"
    response = post_form(
        client,
        signup_url,
        {"username": "nina", "email": "nina@x.org", "password1": "12345678", "password2": "1234"},
    )
    assert response.status_code == 200
    assert "didn’t match" in page(response) or "match" in page(response)
    response = post_form(
        client,
        signup_url,
        {
            "username": "nina",
            "email": "nina@x.org",
            "password1": "password",
            "password2": "password",
        },
    )
    assert "too common" in page(response)
    assert not get_user_model().objects.filter(username="nina").exists()
    assert TeamInvite.objects.get().used_at is None


def test_sign_up_refuses_a_taken_username_or_email(studio, invite_url, outsider):
    client = browser()
    signup_url = invite_url.rstrip("/") + "/signup/"
    response = post_form(
        client,
        signup_url,
        {"username": "OSCAR", "email": "new@x.org", "password1": STRONG, "password2": STRONG},
    )
    assert "already exists" in page(response)
    response = post_form(
        client,
        signup_url,
        {
            "username": "olga",
            "email": "Oscar@Example.com",
            "password1": STRONG,
            "password2": STRONG,
        },
    )
    assert "already uses this email" in page(response)
    assert get_user_model().objects.count() == 2  # alice and oscar


def test_a_used_invite_leaves_no_account_behind(studio, owner, outsider):
    _, token = invite_create(team=studio, by=owner)
    team_services.signup_with_invite(
        token=token, username="first", email="f@x.org", password=STRONG
    )
    with pytest.raises(ValidationError):
        team_services.signup_with_invite(
            token=token, username="second", email="s@x.org", password=STRONG
        )
    assert not get_user_model().objects.filter(username="second").exists()
    assert not Team.objects.filter(name="second's team").exists()


def test_someone_with_an_account_logs_in_and_comes_back_to_accept(studio, invite_url, outsider):
    client = browser()
    login_url = client.get(invite_url)["Location"]
    response = post_form(
        client, login_url, {"username": "oscar", "password": "oscar-pass-1", "next": invite_url}
    )
    assert response.status_code == 302 and response["Location"] == invite_url
    response = post_form(client, invite_url, {})
    assert response.status_code == 302
    assert Membership.objects.filter(team=studio, user=outsider).exists()


def test_open_sign_up_is_off_unless_allowed(client, settings):
    response = client.get("/accounts/signup/")
    assert response.status_code == 404 and "Sign-up is by invite" in page(response)
    data = {"username": "nina", "email": "n@x.org", "password1": STRONG, "password2": STRONG}
    assert client.post("/accounts/signup/", data).status_code == 404
    assert not get_user_model().objects.exists()
    settings.ALLOW_SIGNUP = True
    assert "Create an account" in page(client.get("/accounts/signup/"))
    response = post_form(browser(), "/accounts/signup/", data)
    assert response.status_code == 302
    nina = get_user_model().objects.get(username="nina")
    assert Team.objects.get(personal=True, memberships__user=nina).name == "nina's team"


def test_expired_used_and_revoked_invites_show_a_plain_page(client, studio, owner):
    invite, token = invite_create(team=studio, by=owner)
    TeamInvite.objects.filter(pk=invite.pk).update(expires_at=timezone.now() - timedelta(1))
    for url in (f"/invites/{token}/", f"/invites/{token}/signup/"):
        response = client.get(url)
        assert response.status_code == 410 and "has expired" in page(response)
        assert "Ask the person who sent it for a new one" in page(response)
    invite.delete()  # revoked
    response = client.get(f"/invites/{token}/")
    assert response.status_code == 404 and "revoked" in page(response)


# --- 4. password reset ------------------------------------------------------------------------


def test_login_page_links_to_password_reset(client):
    response = client.get(reverse("login"))
    assert f'href="{reverse("password_reset")}">Forgot password?' in page(response)
    reset = client.get(reverse("password_reset"))
    assert reset.status_code == 200 and "Forgot your password?" in page(reset)
    assert 'href="/static/css/studio.css"' in page(reset) or "studio.css" in page(reset)


def test_password_reset_is_rate_limited_per_email_without_revealing_accounts(client, owner):
    url = reverse("password_reset")
    for n in range(3):  # each from its own address: the per-address limit stays out of it
        for email in ("alice@example.com", "nobody@example.com"):
            response = client.post(url, {"email": email}, REMOTE_ADDR=f"10.1.{n}.1")
            assert response.status_code == 302
    assert len(mail.outbox) == 3
    known = client.post(url, {"email": "ALICE@example.com"}, REMOTE_ADDR="10.0.0.2")
    unknown = client.post(url, {"email": "nobody@example.com"}, REMOTE_ADDR="10.0.0.2")
    assert known.status_code == unknown.status_code == 429
    message = "Too many reset requests in the last hour"
    assert message in page(known) and message in page(unknown)
    assert len(mail.outbox) == 3


def test_password_reset_is_rate_limited_per_address(client):
    url = reverse("password_reset")
    for n in range(5):
        assert client.post(url, {"email": f"p{n}@example.com"}).status_code == 302
    response = client.post(url, {"email": "p9@example.com"})
    assert response.status_code == 429
    other = client.post(url, {"email": "p9@example.com"}, REMOTE_ADDR="10.9.9.9")
    assert other.status_code == 302


# --- 5. share page ----------------------------------------------------------------------------


@pytest.fixture
def finished(team, owner, portrait, audio):
    return finish(new_job(team, owner, portrait, audio))


def test_a_dead_share_link_says_why(client, finished, owner):
    revoked, revoked_token = share_create(
        job=finished, by=owner, expires_at=timezone.now() + timedelta(days=5)
    )
    share_revoke(link=revoked)
    expired, expired_token = share_create(
        job=finished, by=owner, expires_at=timezone.now() + timedelta(hours=1)
    )
    when = timezone.now() - timedelta(days=2)
    ShareLink.objects.filter(pk=expired.pk).update(expires_at=when)

    response = client.get(f"/s/{revoked_token}/")
    assert response.status_code == 404
    assert "This link was turned off by the team." in page(response)
    assert "expired" not in page(response)
    response = client.get(f"/s/{expired_token}/")
    assert f"This link expired on {timezone.localtime(when):%-d %B %Y}." in page(response)
    for token in (revoked_token, expired_token, "x" * 32):
        text = page(client.get(f"/s/{token}/"))
        assert "Ask the person who sent it for a new one." in text
        assert "add you to their team" not in text and "<form" not in text
        assert "og:video" not in text


# --- 6. members' emails -----------------------------------------------------------------------


def test_only_admins_see_members_emails(client, owner, team, teammate, viewer):
    url = reverse("jobs:team-detail", args=[team.code])
    for user in (teammate, viewer):
        text = page(login(client, user, team).get(url))
        assert "bob" in text and "bob@example.com" not in text and "alice@example.com" not in text
    text = page(login(client, owner, team).get(url))
    assert "bob@example.com" in text and "vera@example.com" in text
