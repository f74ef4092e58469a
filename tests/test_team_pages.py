"""The team pages: create and switch teams, members, invites, quotas, usage, share links, and the
new-job form's notify box and quota refusal."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django_q.models import OrmQ

from jobs.models import AvatarJob, KlingAccount, Membership, ShareLink, Team, TeamInvite
from jobs.services.quotas import quota_set
from jobs.services.sharing import share_create
from jobs.services.teams import team_create
from tests.helpers import HTMX, finish, login, new_job

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast")]

Role = Membership.Role


def page(response) -> str:
    return response.content.decode()


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def team_url(name: str, team: Team, *args) -> str:
    return reverse(f"jobs:{name}", args=[team.code, *args])


@pytest.fixture
def studio(owner) -> Team:
    """A second team, besides alice's personal one, with alice as its admin."""
    return team_create(name="Studio North", user=owner)


# --- creating and switching --------------------------------------------------------------------


def test_create_a_team_and_work_in_it(client, owner):
    login(client, owner)
    assert client.get(reverse("jobs:team-create")).status_code == 200
    response = client.post(reverse("jobs:team-create"), {"name": "  Film club  "}, follow=True)
    team = Team.objects.get(name="Film club")
    assert Membership.objects.get(team=team, user=owner).role == Role.ADMIN
    assert client.session["team"] == str(team.code)
    assert response.redirect_chain[-1][0] == team_url("team-detail", team)
    assert "Created Film club" in page(response)
    # The switcher in the top bar lists both teams, the new one chosen.
    assert f'<option value="{team.code}" selected>Film club</option>' in page(response)


def test_a_team_needs_a_name(client, owner):
    response = login(client, owner).post(reverse("jobs:team-create"), {"name": " "})
    assert response.status_code == 200 and "Give the team a name." in page(response)
    assert Team.objects.count() == 1


def test_switch_to_a_team_you_are_in_only(client, owner, outsider, studio, team):
    login(client, owner)
    response = client.post(reverse("jobs:team-switch"), {"team": str(studio.code)})
    assert response.status_code == 302 and client.session["team"] == str(studio.code)
    assert "Studio North" in page(client.get(reverse("jobs:dashboard")))

    other = Team.objects.get(memberships__user=outsider, personal=True)
    response = client.post(reverse("jobs:team-switch"), {"team": str(other.code)})
    assert response.status_code == 404
    assert client.post(reverse("jobs:team-switch"), {"team": "nope"}).status_code == 404
    assert client.session["team"] == str(studio.code)


# --- members -----------------------------------------------------------------------------------


def test_add_a_member_by_username_or_email(client, owner, team, outsider):
    login(client, owner)
    url = team_url("member-add", team)
    response = client.post(url, {"login": "OSCAR@example.com", "role": "viewer"}, follow=True)
    assert Membership.objects.get(team=team, user=outsider).role == Role.VIEWER
    assert "Added oscar as Viewer." in page(response)
    response = client.post(url, {"login": "nobody", "role": "member"})
    assert response.status_code == 200  # the page again, the problem next to the field
    assert "There is no account called &#x27;nobody&#x27;" in page(response)


def test_change_a_role_and_remove_a_member(client, owner, team, teammate):
    login(client, owner)
    bob = Membership.objects.get(team=team, user=teammate)
    response = client.post(team_url("member-role", team, bob.code), {"role": "viewer"}, follow=True)
    bob.refresh_from_db()
    assert bob.role == Role.VIEWER and "bob is now viewer." in page(response)
    response = client.post(team_url("member-remove", team, bob.code), follow=True)
    assert not Membership.objects.filter(pk=bob.pk).exists()
    assert "Removed bob" in page(response)


def test_the_last_admin_can_neither_leave_nor_be_demoted(client, owner, team, teammate):
    login(client, owner)
    alice = Membership.objects.get(team=team, user=owner)
    url = team_url("member-role", team, alice.code)
    response = client.post(url, {"role": "member"}, follow=True)
    assert "A team needs at least one admin: make someone else admin first." in page(response)
    response = client.post(team_url("team-leave", team), follow=True)
    assert "The last admin cannot leave the team" in page(response)
    alice.refresh_from_db()
    assert alice.role == Role.ADMIN


def test_members_leave_and_their_session_moves_on(client, teammate, team, studio):
    Membership.objects.create(user=teammate, team=studio, role=Role.VIEWER)
    login(client, teammate, studio)
    response = client.post(team_url("team-leave", studio), follow=True)
    assert not Membership.objects.filter(team=studio, user=teammate).exists()
    assert "You left Studio North." in page(response)
    assert "team" not in client.session
    assert response.status_code == 200


def test_only_admins_manage_members(client, teammate, viewer, team, outsider):
    bob = Membership.objects.get(team=team, user=teammate)
    for user in (teammate, viewer):
        login(client, user, team)
        page_ = page(client.get(team_url("team-detail", team)))
        assert "alice" in page_ and "Invite by link" not in page_  # the list, no admin forms
        assert client.post(team_url("member-add", team), {"login": "oscar"}).status_code == 403
        role = client.post(team_url("member-role", team, bob.code), {"role": "admin"})
        assert role.status_code == 403
        assert client.post(team_url("invite-create", team), {"role": "admin"}).status_code == 403
    bob.refresh_from_db()
    assert bob.role == Role.MEMBER and not TeamInvite.objects.exists()


# --- invites -----------------------------------------------------------------------------------


def make_invite(client, admin, team, role="viewer", days=3) -> str:
    response = login(client, admin).post(
        team_url("invite-create", team), {"role": role, "days": days}
    )
    # POST/redirect/GET: a reload of the page that shows the link does not post again.
    assert response.status_code == 302 and response["Location"] == team_url("team-detail", team)
    response = client.get(response["Location"])
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    match = re.search(
        r'id="new-invite-url" value="http://testserver(/invites/[^/"]+/)"', page(response)
    )
    assert match, "the invite link is on the page"
    assert 'data-copy="new-invite-url"' in page(response)
    # Shown once: the team page does not show it again.
    assert match.group(1) not in page(client.get(team_url("team-detail", team)))
    client.logout()
    return match.group(1)


def test_invite_link_end_to_end(client, owner, team, outsider, django_user_model):
    url = make_invite(client, owner, team, role="viewer", days=3)
    invite = TeamInvite.objects.get()
    assert invite.role == Role.VIEWER
    assert timedelta(days=2, hours=23) < invite.expires_at - timezone.now() <= timedelta(days=3)

    # Logged out: log in first, then come back.
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login")) and "next=" in response["Location"]

    login(client, outsider)
    response = client.get(url)
    assert response.status_code == 200
    assert f"Join {escape(team.name)}" in page(response)
    assert "viewer" in page(response) and "Accept and join" in page(response)
    response = client.post(url, follow=True)
    assert Membership.objects.get(team=team, user=outsider).role == Role.VIEWER
    assert client.session["team"] == str(team.code)
    assert f"Welcome to {escape(team.name)}" in page(response)

    # Second use, by someone else: refused, and the page says what to do.
    third = django_user_model.objects.create_user("tia", "tia@example.com", "tia-pass-1")
    login(client, third)
    for response in (client.get(url), client.post(url)):
        assert response.status_code == 410
        assert "already used" in page(response) and "Ask an admin" in page(response)
    assert not Membership.objects.filter(user=third, team=team).exists()


def test_expired_unknown_and_revoked_invites_are_refused(client, owner, team, outsider):
    url = make_invite(client, owner, team)
    TeamInvite.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    login(client, outsider)
    response = client.post(url)
    assert response.status_code == 410 and "expired" in page(response)
    assert client.get("/invites/made-up-token/").status_code == 404

    url = make_invite(client, owner, team)
    invite = TeamInvite.objects.filter(used_at=None).latest("created")
    login(client, owner)
    listed = page(client.get(team_url("team-detail", team)))
    assert f'id="invite-{invite.code}"' in listed and "expires" in listed
    client.post(team_url("invite-revoke", team, invite.code))
    assert not TeamInvite.objects.filter(pk=invite.pk).exists()
    login(client, outsider)
    assert client.get(url).status_code == 404
    assert not Membership.objects.filter(user=outsider, team=team).exists()


# --- quotas and usage --------------------------------------------------------------------------


def test_admins_set_quotas(client, owner, team, teammate):
    login(client, owner)
    url = team_url("team-settings", team)
    assert client.get(url).status_code == 200
    response = client.post(url, {"draft": "600", "std": "", "pro": "0"}, follow=True)
    team.refresh_from_db()
    assert (team.quota_draft_seconds, team.quota_std_seconds, team.quota_pro_seconds) == (
        600,
        None,
        0,
    )
    assert "Saved the monthly limits." in page(response)
    response = client.post(url, {"draft": "-5"})
    assert response.status_code == 200 and "greater than or equal to 0" in page(response)
    login(client, teammate, team)
    assert client.get(url).status_code == 403
    assert client.post(url, {"draft": ""}).status_code == 403


def test_usage_page_shows_this_month_per_member_and_mode(
    client, owner, teammate, team, portrait, audio
):
    finish(new_job(team, owner, portrait, audio))  # 3 s draft by alice
    bob_std = finish(new_job(team, teammate, portrait, audio))
    AvatarJob.objects.filter(pk=bob_std.pk).update(
        mode="std", duration=5.0, units_charged=Decimal("1.5")
    )
    new_job(team, teammate, portrait, audio, status=AvatarJob.Status.FAILED)  # does not count
    old = finish(new_job(team, owner, portrait, audio))
    AvatarJob.objects.filter(pk=old.pk).update(created=timezone.now() - timedelta(days=40))
    quota_set(team=team, mode="draft", seconds=10)

    html = page(login(client, teammate, team).get(team_url("team-usage", team)))
    rows = {
        m.group(1): re.findall(r'<td class="num">([^<]*)</td>', m.group(2))
        for m in re.finditer(r'<tr><th scope="row">(\w+)</th>(.*?)</tr>', html)
    }
    assert rows["alice"] == ["3", "0", "0", "0"]
    assert rows["bob"] == ["0", "5", "0", "1.5"]
    assert rows["Total"] == ["3", "5", "0", "1.5"]
    draft = re.search(r'id="quota-draft">(.*?)</li>', html, re.S).group(1)
    assert "3 s used" in draft and "of 10 s" in draft and "7 s left" in draft
    assert "no limit" in re.search(r'id="quota-std">(.*?)</li>', html, re.S).group(1)


def post_job(client, portrait, audio, **data):
    return client.post(
        reverse("jobs:job-new"),
        {"portrait_asset": portrait.code, "audio_asset": audio.code, "mode": "draft", **data},
    )


def test_notify_checkbox_is_stored(client, owner, portrait, audio):
    login(client, owner)
    assert 'name="notify_by_email"' in page(client.get(reverse("jobs:job-new")))
    post_job(client, portrait, audio, notify_by_email="on")
    post_job(client, portrait, audio)
    assert list(
        AvatarJob.objects.order_by("created").values_list("notify_by_email", flat=True)
    ) == [
        True,
        False,
    ]


def test_a_job_over_the_quota_is_refused_next_to_the_mode(client, owner, team, portrait, audio):
    quota_set(team=team, mode="draft", seconds=5)
    login(client, owner)
    assert post_job(client, portrait, audio).status_code == 302  # 3 s of 5
    queued = OrmQ.objects.count()
    response = post_job(client, portrait, audio)
    assert response.status_code == 200
    modes = re.search(
        r'<fieldset class="modes has-error" id="modes">(.*?)</fieldset>', page(response), re.S
    )
    assert modes, "the mode fieldset is marked as the one with the problem"
    assert "needs 3 s, but the team has 2 s of draft video left this month" in modes.group(1)
    assert AvatarJob.objects.count() == 1 and OrmQ.objects.count() == queued


# --- share links from the job page -------------------------------------------------------------


def test_share_create_shows_the_link_once_and_it_works(client, owner, done):
    login(client, owner)
    job_page = page(client.get(done.get_absolute_url()))
    assert 'id="share"' in job_page and "Create share link" in job_page
    response = client.post(
        reverse("jobs:share-create", args=[done.code]),
        {"expires_in": "7", "allow_download": "on"},
        headers=HTMX,
    )
    assert response.status_code == 200 and "<html" not in page(response)  # the panel alone
    assert response["Cache-Control"] == "no-store"
    match = re.search(r'id="new-share-url" value="http://testserver/s/([^/"]+)/"', page(response))
    assert match
    token = match.group(1)
    link = ShareLink.objects.get()
    assert link.allow_download and timedelta(days=6) < link.expires_at - timezone.now()
    assert "Live" in page(response) and "download allowed" in page(response)
    # Shown once: the job page lists the link but never its address again.
    again = page(client.get(done.get_absolute_url()))
    assert token not in again and f'id="share-{link.code}"' in again

    client.logout()
    assert client.get(f"/s/{token}/").status_code == 200
    login(client, owner)
    response = client.post(reverse("jobs:share-revoke", args=[link.code]), follow=True)
    assert "Link revoked" in page(response) and "Revoked" in page(response)
    client.logout()
    assert client.get(f"/s/{token}/").status_code == 404


def test_share_without_javascript_and_htmx_revoke(client, owner, done):
    login(client, owner)
    response = client.post(reverse("jobs:share-create", args=[done.code]), {"expires_in": ""})
    assert response.status_code == 200 and "<html" in page(response)  # a page of its own
    assert 'id="new-share-url"' in page(response) and "Back to the job" in page(response)
    link = ShareLink.objects.get()
    assert link.expires_at is None and not link.allow_download
    response = client.post(reverse("jobs:share-revoke", args=[link.code]), headers=HTMX)
    assert response.status_code == 200 and 'id="share"' in page(response)
    link.refresh_from_db()
    assert link.revoked_at is not None


def test_invalid_share_form_answers_200_with_the_problem(client, owner, done, queued_job):
    login(client, owner)
    response = client.post(
        reverse("jobs:share-create", args=[done.code]), {"expires_in": "5"}, headers=HTMX
    )
    assert response.status_code == 200 and "Select a valid choice" in page(response)
    response = client.post(reverse("jobs:share-create", args=[queued_job.code]), headers=HTMX)
    assert response.status_code == 200 and "Only a finished video can be shared." in page(response)
    assert not ShareLink.objects.exists()


@pytest.fixture
def queued_job(team, owner, portrait, audio) -> AvatarJob:
    return new_job(team, owner, portrait, audio)


def test_viewers_see_share_links_but_cannot_make_or_revoke_them(client, owner, viewer, team, done):
    link, _ = share_create(job=done, by=owner)
    login(client, viewer, team)
    html = page(client.get(done.get_absolute_url()))
    assert f'id="share-{link.code}"' in html and "Create share link" not in html
    assert "Revoke" not in html
    assert client.post(reverse("jobs:share-create", args=[done.code])).status_code == 403
    assert client.post(reverse("jobs:share-revoke", args=[link.code])).status_code == 403
    link.refresh_from_db()
    assert link.revoked_at is None and ShareLink.objects.count() == 1


# --- the top bar -------------------------------------------------------------------------------


def test_viewers_get_no_new_job_button(client, viewer, owner, team):
    html = page(login(client, viewer, team).get("/"))
    assert "New job" not in html
    for name in ("Team", "Usage", "API tokens"):
        assert f">{name}</a>" in html
    assert "New job" in page(login(client, owner).get("/"))


def test_the_kling_pause_banner_shows_to_admins_and_staff_only(
    client, owner, teammate, team, settings
):
    settings.KLING_API_KEY = "key"
    KlingAccount.objects.create(
        pk=1,
        paused_until=timezone.now() + timedelta(hours=1),
        pause_code="1102",
        pause_message="The Kling resource pack is used up.",
    )
    assert "The Kling resource pack is used up." in page(login(client, owner).get("/"))
    assert "resource pack" not in page(login(client, teammate, team).get("/"))
    teammate.is_staff = True
    teammate.save()
    assert "resource pack" in page(login(client, teammate, team).get("/"))
    # Without a Kling key nothing is sent to Kling, so there is no pause to show.
    settings.KLING_API_KEY = ""
    assert "resource pack" not in page(login(client, owner).get("/"))
