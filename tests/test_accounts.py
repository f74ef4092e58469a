"""Every account has a personal team from the moment it exists, however it was made."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from jobs.models import Membership, Team

pytestmark = pytest.mark.django_db


def personal_team_of(user) -> Team:
    return Team.objects.get(
        personal=True, memberships__user=user, memberships__role=Membership.Role.ADMIN
    )


def test_create_user_gets_a_personal_team():
    user = get_user_model().objects.create_user("dora", password="x-y-z-123")
    team = personal_team_of(user)
    assert team.name == "dora's team"
    assert team.slug == "doras-team"


def test_createsuperuser_gets_a_personal_team(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "root-pass-123")
    call_command("createsuperuser", "--noinput", "--username", "root", "--email", "r@x.org")
    personal_team_of(get_user_model().objects.get(username="root"))


def test_admin_add_user_gets_a_personal_team(admin_client):
    response = admin_client.post(
        "/admin/auth/user/add/",
        {
            "username": "eve",
            "password1": "Sturdy-pass-991",
            "password2": "Sturdy-pass-991",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content[:500]
    personal_team_of(get_user_model().objects.get(username="eve"))


def test_same_names_get_distinct_slugs():
    get_user_model().objects.create_user("sam")
    Team.objects.create(name="sam's team")
    assert Team.objects.filter(name="sam's team").values_list("slug", flat=True).count() == 2
    assert set(Team.objects.filter(name="sam's team").values_list("slug", flat=True)) == {
        "sams-team",
        "sams-team-2",
    }


def test_ensure_admin_generates_a_password_once(capsys, monkeypatch):
    monkeypatch.delenv("DJANGO_SUPERUSER_USERNAME", raising=False)
    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)
    call_command("ensure_admin")
    first = capsys.readouterr().out
    assert "Created the admin account 'admin' with the password: " in first
    password = first.split("password: ")[1].split()[0]
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password)
    call_command("ensure_admin")
    second = capsys.readouterr().out
    assert "password" not in second and "Admin account: admin" in second
    assert get_user_model().objects.filter(is_superuser=True).count() == 1


def test_ensure_admin_uses_the_environment(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "boss")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "first-pass-123")
    call_command("ensure_admin")
    assert get_user_model().objects.get(username="boss").check_password("first-pass-123")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "second-pass-456")
    call_command("ensure_admin")
    assert get_user_model().objects.get(username="boss").check_password("second-pass-456")
