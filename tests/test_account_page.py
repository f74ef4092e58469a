"""Your account page: the email address (used for password resets and job mails) is changed
only with your password, is unique across accounts, and can be removed."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils.html import escape

from jobs.models import AvatarJob
from tests.helpers import login

pytestmark = pytest.mark.django_db


def test_the_account_page_needs_a_login(client):
    response = client.get(reverse("account"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_it_shows_who_you_are_and_your_teams(client, owner, team, teammate):
    login(client, teammate)
    page = client.get(reverse("account")).content.decode()
    assert "logged in as <strong>bob</strong>" in page
    assert 'value="bob@example.com"' in page
    assert escape(team.name) in page and "(member)" in page
    assert 'bob&#x27;s team</a> <span class="muted">(your personal team)' in page
    assert reverse("password_change") in page
    assert f'href="{reverse("account")}" aria-current="page">Account</a>' in page


def test_an_address_is_added_with_the_password_and_job_mail_can_then_be_ticked(
    client, owner, portrait, audio
):
    owner.email = ""
    owner.save()
    login(client, owner)
    assert "with no email address" in client.get(reverse("account")).content.decode()
    response = client.post(
        reverse("account"), {"email": " alice@new.example ", "password": "alice-pass-1"}
    )
    assert response.status_code == 302 and response["Location"] == reverse("account")
    owner.refresh_from_db()
    assert owner.email == "alice@new.example"
    page = client.get(reverse("account")).content.decode()
    assert "Your email address is now alice@new.example." in page
    new_job = client.get(reverse("jobs:job-new")).content.decode()
    assert "One email to alice@new.example when the job finishes or fails." in new_job
    data = {"portrait_asset": portrait.code, "audio_asset": audio.code, "mode": "draft"}
    client.post(reverse("jobs:job-new"), {**data, "notify_by_email": "on"})
    assert AvatarJob.objects.get().notify_by_email is True


def test_a_wrong_password_changes_nothing(client, owner):
    login(client, owner)
    response = client.post(
        reverse("account"), {"email": "mallory@example.com", "password": "guess"}
    )
    assert response.status_code == 200
    assert "That is not your password: the address was not changed." in response.content.decode()
    owner.refresh_from_db()
    assert owner.email == "alice@example.com"
    response = client.post(reverse("account"), {"email": "mallory@example.com"})
    assert "Type your password to change the email address." in response.content.decode()


@pytest.mark.parametrize("taken", ["bob@example.com", "BOB@Example.com"])
def test_another_accounts_address_is_refused(client, owner, teammate, taken):
    login(client, owner)
    response = client.post(reverse("account"), {"email": taken, "password": "alice-pass-1"})
    assert "Another account already uses this email" in response.content.decode()
    owner.refresh_from_db()
    assert owner.email == "alice@example.com"


def test_a_bad_address_is_refused_and_an_empty_one_removes_it(client, owner):
    login(client, owner)
    response = client.post(
        reverse("account"), {"email": "not-an-address", "password": "alice-pass-1"}
    )
    assert "Enter a valid email address." in response.content.decode()
    client.post(reverse("account"), {"email": "", "password": "alice-pass-1"})
    owner.refresh_from_db()
    assert owner.email == ""
    page = client.get(reverse("account")).content.decode()
    assert "Your email address is removed." in page
    # The same address again is no change, and says so.
    client.post(reverse("account"), {"email": "", "password": "alice-pass-1"})
    assert "Nothing changed" in client.get(reverse("account")).content.decode()
