"""Roles, checked through real requests: every role × every write action × own or a teammate's
object, against the table written out below (EXPECTED), independently of jobs/access.py's.

alice is the team's admin, bob a member, vera a viewer, oscar an outsider. "Own" objects were
made by the acting persona; "other's" by a teammate (bob's for alice, alice's for the others).
Allowed actions answer 200 or 302 and change what they say; refused ones answer 403 (members
of the team) or 404 (outsiders) and change nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import Http404
from django.urls import NoReverseMatch, reverse

from jobs.access import RULES, Access, authorize, get_job
from jobs.models import (
    Asset,
    AvatarJob,
    Batch,
    JobTemplate,
    Membership,
    ShareLink,
    Team,
    TeamInvite,
)
from jobs.services.assets import asset_store
from jobs.services.sharing import share_create
from jobs.services.teams import invite_create
from jobs.views.batches import PLAN_SALT
from tests.helpers import finish, login, make_portrait_bytes, new_job

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast")]

OK, NO = "allowed", "refused"
ROLES = ("admin", "member", "viewer")

# What each role may do, as the issue states it (not read from the code, so the code can be
# wrong). Own-only actions: (own object, other's object). Team actions: one answer.
EXPECTED: dict[str, dict[str, Any]] = {
    "cancel": {"admin": (OK, OK), "member": (OK, NO), "viewer": (NO, NO)},
    "retry": {"admin": (OK, OK), "member": (OK, NO), "viewer": (NO, NO)},
    "rename": {"admin": (OK, OK), "member": (OK, NO), "viewer": (NO, NO)},
    "delete": {"admin": (OK, OK), "member": (OK, NO), "viewer": (NO, NO)},
    "share": {"admin": (OK, OK), "member": (OK, NO), "viewer": (NO, NO)},
    "revoke_share": {"admin": (OK, OK), "member": (OK, NO), "viewer": (NO, NO)},
    "library_rename": {"admin": (OK, OK), "member": (OK, NO), "viewer": (NO, NO)},
    "library_delete": {"admin": (OK, OK), "member": (OK, NO), "viewer": (NO, NO)},
    "create_job": {"admin": OK, "member": OK, "viewer": NO},
    "library_upload": {"admin": OK, "member": OK, "viewer": NO},
    "voiceover_create": {"admin": OK, "member": OK, "viewer": NO},
    "manage_members": {"admin": OK, "member": NO, "viewer": NO},
    "invite": {"admin": OK, "member": NO, "viewer": NO},
    "team_settings": {"admin": OK, "member": NO, "viewer": NO},
    "create_batch": {"admin": OK, "member": OK, "viewer": NO},
    "manage_batch": {"admin": (OK, OK), "member": (OK, NO), "viewer": (NO, NO)},
    # Whoever may save a template may rename or delete any of the team's.
    "manage_template": {"admin": OK, "member": OK, "viewer": NO},
}
READ_ONLY = {"view", "download", "api_tokens"}  # checked by test_isolation and test_api


# --- the objects and requests of each action ---------------------------------------------------


@dataclass
class World:
    team: Team
    users: dict[str, Any]  # admin, member, viewer, outsider
    checked: Any  # the validated portrait and voice-over (tests/conftest.py)
    made: dict[str, Any] = field(default_factory=dict)

    def job(self, creator, **fields) -> AvatarJob:
        portrait = asset_store(team=self.team, user=creator, valid=self.checked[0])
        audio = asset_store(team=self.team, user=creator, valid=self.checked[1])
        return new_job(self.team, creator, portrait, audio, **fields)


@dataclass(frozen=True)
class Call:
    """A request, and how to tell afterwards whether it did its work."""

    url: str
    data: dict[str, Any] = field(default_factory=dict)
    done: Callable[[], bool] = lambda: True
    get: bool = False


def _cancel(w: World, creator) -> Call:
    job = w.job(creator)
    return Call(
        reverse("jobs:job-cancel", args=[job.code]),
        done=lambda: AvatarJob.objects.get(pk=job.pk).status == AvatarJob.Status.CANCELED,
    )


def _retry(w: World, creator) -> Call:
    job = w.job(creator, status=AvatarJob.Status.FAILED, error_code="render_failed")
    before = AvatarJob.objects.count()
    return Call(
        reverse("jobs:job-retry", args=[job.code]),
        done=lambda: AvatarJob.objects.count() == before + 1,
    )


def _job_rename(w: World, creator) -> Call:
    job = finish(w.job(creator))
    return Call(
        reverse("jobs:job-rename", args=[job.code]),
        {"name": "Renamed"},
        done=lambda: AvatarJob.objects.get(pk=job.pk).name == "Renamed",
    )


def _job_delete(w: World, creator) -> Call:
    job = finish(w.job(creator))
    return Call(
        reverse("jobs:job-delete", args=[job.code]),
        done=lambda: not AvatarJob.objects.filter(pk=job.pk).exists(),
    )


def _share(w: World, creator) -> Call:
    job = finish(w.job(creator))
    return Call(
        reverse("jobs:share-create", args=[job.code]),
        {"expires_in": "7"},
        done=lambda: ShareLink.objects.filter(job=job).exists(),
    )


def _revoke(w: World, creator) -> Call:
    # The job is the admin's in every case: whose link it is is what counts.
    job = finish(w.job(w.users["admin"]))
    link = share_create(job=job, by=creator)[0]
    return Call(
        reverse("jobs:share-revoke", args=[link.code]),
        done=lambda: ShareLink.objects.get(pk=link.pk).revoked_at is not None,
    )


def _library_rename(w: World, creator) -> Call:
    asset = asset_store(team=w.team, user=creator, valid=w.checked[0])
    return Call(
        reverse("jobs:asset-rename", args=[asset.code]),
        {"name": "renamed.jpg"},
        done=lambda: Asset.objects.get(pk=asset.pk).name == "renamed.jpg",
    )


def _library_delete(w: World, creator) -> Call:
    asset = asset_store(team=w.team, user=creator, valid=w.checked[0])
    return Call(
        reverse("jobs:asset-delete", args=[asset.code]),
        done=lambda: not Asset.objects.filter(pk=asset.pk).exists(),
    )


def _create_job(w: World, _creator) -> Call:
    job = w.job(w.users["admin"])  # its inputs, picked from the library
    before = AvatarJob.objects.count()
    data = {"portrait_asset": job.portrait.code, "audio_asset": job.audio.code, "mode": "draft"}
    return Call(reverse("jobs:job-new"), data, done=lambda: AvatarJob.objects.count() == before + 1)


def _library_upload(w: World, _creator) -> Call:
    upload = SimpleUploadedFile("face.jpg", make_portrait_bytes(), content_type="image/jpeg")
    return Call(
        reverse("jobs:job-new-check", args=["portrait"]),
        {"portrait": upload},
        done=lambda: Asset.objects.filter(team=w.team).exists(),
    )


def _voiceover_create(_w: World, _creator) -> Call:
    # The writer's form: synthesizing needs eSpeak; the gate is asked before either.
    return Call(reverse("jobs:voiceover-new") + "?for=library", get=True)


def _manage_members(w: World, _creator) -> Call:
    viewer = Membership.objects.get(team=w.team, user=w.users["viewer"])
    return Call(
        reverse("jobs:member-role", args=[w.team.code, viewer.code]),
        {"role": "member"},
        done=lambda: Membership.objects.get(pk=viewer.pk).role == Membership.Role.MEMBER,
    )


def _invite(w: World, _creator) -> Call:
    invite = invite_create(team=w.team, by=w.users["admin"])[0]
    return Call(
        reverse("jobs:invite-revoke", args=[w.team.code, invite.code]),
        done=lambda: not TeamInvite.objects.filter(pk=invite.pk, used_at__isnull=True).exists(),
    )


def _team_settings(w: World, _creator) -> Call:
    return Call(
        reverse("jobs:team-settings", args=[w.team.code]),
        {"draft": "60"},
        done=lambda: Team.objects.get(pk=w.team.pk).quota_draft_seconds is not None,
    )


def _create_batch(w: World, _creator) -> Call:
    """The confirmation of a checked batch (its signed plan), which makes the jobs."""
    job = w.job(w.users["admin"])
    plan = [
        {"row": 1, "name": "Batch row", "mode": "draft", "prompt": "", "script": "",
         "portrait": str(job.portrait.code), "audio": str(job.audio.code), "voice": "",
         "speed": 1.0}
    ]  # fmt: skip
    token = signing.dumps({"code": str(uuid.uuid4()), "name": "B", "plan": plan}, salt=PLAN_SALT)
    return Call(
        reverse("jobs:batch-confirm"),
        {"plan": token},
        done=lambda: Batch.objects.filter(team=w.team).exists(),
    )


def _manage_batch(w: World, creator) -> Call:
    job = w.job(creator)
    batch = Batch.objects.create(team=w.team, created_by=creator, name="B")
    AvatarJob.objects.filter(pk=job.pk).update(batch=batch, batch_row=1)
    return Call(
        reverse("jobs:batch-cancel", args=[batch.code]),
        done=lambda: AvatarJob.objects.get(pk=job.pk).status == AvatarJob.Status.CANCELED,
    )


def _manage_template(w: World, _creator) -> Call:
    template = JobTemplate.objects.create(team=w.team, created_by=w.users["admin"], name="T")
    return Call(
        reverse("jobs:template-rename", args=[template.code]),
        {"name": "Renamed"},
        done=lambda: JobTemplate.objects.get(pk=template.pk).name == "Renamed",
    )


CALLS: dict[str, Callable[[World, Any], Call]] = {
    "cancel": _cancel,
    "retry": _retry,
    "rename": _job_rename,
    "delete": _job_delete,
    "share": _share,
    "revoke_share": _revoke,
    "library_rename": _library_rename,
    "library_delete": _library_delete,
    "create_job": _create_job,
    "library_upload": _library_upload,
    "voiceover_create": _voiceover_create,
    "manage_members": _manage_members,
    "invite": _invite,
    "team_settings": _team_settings,
    "create_batch": _create_batch,
    "manage_batch": _manage_batch,
    "manage_template": _manage_template,
}

# Team actions of the current team: an outsider acts in their own team, so no 404 to check.
CURRENT_TEAM = {"create_job", "library_upload", "voiceover_create", "create_batch"}


def _cases() -> list[Any]:
    cases = []
    for action, by_role in EXPECTED.items():
        for role in ROLES:
            expected = by_role[role]
            if isinstance(expected, tuple):
                for whose, outcome in zip(("own", "other's"), expected, strict=True):
                    cases.append(
                        pytest.param(action, role, whose, outcome, id=f"{action}-{role}-{whose}")
                    )
            else:
                cases.append(pytest.param(action, role, "team", expected, id=f"{action}-{role}"))
        if action not in CURRENT_TEAM:
            cases.append(
                pytest.param(action, "outsider", "other's", "hidden", id=f"{action}-outsider")
            )
    return cases


@pytest.fixture
def world(team, owner, teammate, viewer, outsider, checked) -> World:
    users = {"admin": owner, "member": teammate, "viewer": viewer, "outsider": outsider}
    return World(team, users, checked)


def _creator(world: World, role: str, whose: str):
    if whose == "own":
        return world.users[role]
    return world.users["member" if role == "admin" else "admin"]


@pytest.mark.parametrize(("action", "role", "whose", "outcome"), _cases())
def test_role_matrix(client, world, action, role, whose, outcome):
    try:
        call = CALLS[action](world, _creator(world, role, whose))
    except NoReverseMatch:
        pytest.skip(f"no view for {action} yet")
    login(client, world.users[role], None if role == "outsider" else world.team)
    response = client.get(call.url) if call.get else client.post(call.url, call.data)
    if outcome == OK:
        assert response.status_code in (200, 201, 302), response.content[:300]
        assert call.done(), f"{role} {action} answered {response.status_code} but did nothing"
    else:
        assert response.status_code == (404 if outcome == "hidden" else 403)
        if not call.get:
            assert not call.done(), f"{role} {action} was refused, yet it happened"


def test_the_expected_table_covers_every_action_of_the_gate():
    assert set(EXPECTED) | READ_ONLY == set(RULES)


# --- what a refusal says, and the gate's API for views still to come ---------------------------


def test_a_member_refused_on_a_teammates_job_is_told_who_can(client, world):
    job = world.job(world.users["admin"])
    login(client, world.users["member"], world.team)
    response = client.post(reverse("jobs:job-cancel", args=[job.code]))
    assert response.status_code == 403
    assert "Only the team&#x27;s admins and the job&#x27;s creator can cancel it." in (
        response.content.decode()
    )


def test_a_viewer_is_told_their_role_only_views(client, world):
    job = world.job(world.users["viewer"])
    login(client, world.users["viewer"], world.team)
    response = client.post(reverse("jobs:job-cancel", args=[job.code]))
    assert response.status_code == 403
    assert "(viewer) can only view and download" in response.content.decode()


def test_get_job_with_an_action_gates_delete_for_the_views_to_come(world):
    job = world.job(world.users["admin"])
    assert get_job(world.users["admin"], job.code, action="delete")[0] == job
    with pytest.raises(PermissionDenied, match="job's creator can delete it"):
        get_job(world.users["member"], job.code, action="delete")
    with pytest.raises(Http404):
        get_job(world.users["outsider"], job.code, action="delete")
    own = world.job(world.users["member"])
    _, access = get_job(world.users["member"], own.code, action="rename")
    authorize(access, "rename", own)  # no exception: their own job
    assert isinstance(access, Access)


# --- the page shows the table, and no button the gate would refuse -----------------------------


def test_the_team_page_shows_the_roles_table(client, world):
    login(client, world.users["viewer"], world.team)
    body = client.get(reverse("jobs:team-detail", args=[world.team.code])).content.decode()
    assert "What each role can do" in body
    assert "Cancel a queued job</th><td>Yes</td><td>Their own</td><td>No</td>" in body


def test_a_member_sees_cancel_only_on_their_own_jobs(client, world):
    mine, theirs = world.job(world.users["member"]), world.job(world.users["admin"])
    login(client, world.users["member"], world.team)
    assert 'id="cancel-job"' in client.get(mine.get_absolute_url()).content.decode()
    assert 'id="cancel-job"' not in client.get(theirs.get_absolute_url()).content.decode()


def test_a_member_sees_share_and_revoke_only_on_their_own(client, world):
    theirs = finish(world.job(world.users["admin"]))
    admins_link = share_create(job=theirs, by=world.users["admin"])[0]
    own_link = share_create(job=theirs, by=world.users["member"])[0]
    login(client, world.users["member"], world.team)
    body = client.get(theirs.get_absolute_url()).content.decode()
    assert "Create share link" not in body
    assert reverse("jobs:share-revoke", args=[own_link.code]) in body
    assert reverse("jobs:share-revoke", args=[admins_link.code]) not in body


def test_a_member_sees_rename_and_delete_only_on_files_they_uploaded(client, world):
    theirs = asset_store(team=world.team, user=world.users["admin"], valid=world.checked[0])
    mine = asset_store(team=world.team, user=world.users["member"], valid=world.checked[1])
    login(client, world.users["member"], world.team)
    body = client.get(reverse("jobs:library")).content.decode()
    assert reverse("jobs:asset-rename", args=[mine.code]) in body
    assert reverse("jobs:asset-delete", args=[mine.code]) in body
    assert reverse("jobs:asset-rename", args=[theirs.code]) not in body
    assert reverse("jobs:asset-delete", args=[theirs.code]) not in body
