"""Access that ends (issue 13): API video links expire and die with their token or its owner's
membership; removed or demoted members lose their API tokens for good; media is cached only
privately and briefly; absurd input (huge ranges, HEAD, bad settings, no PUBLIC_BASE_URL) gets
a clear answer, never a 500; the queue place counts only the team's own jobs."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.core import mail, signing
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse

from avatarsite.env import Env
from jobs import links
from jobs.cards import card_jobs
from jobs.models import ApiToken, AvatarJob, Membership, Team
from jobs.services.api_tokens import api_token_create
from jobs.services.assets import asset_store
from jobs.services.jobs import job_notify
from jobs.services.sharing import share_create
from jobs.services.teams import invite_accept, invite_create, member_remove, member_set_role
from tests.helpers import finish, login, new_job

pytestmark = pytest.mark.django_db

CREATE = "/kling/v1/videos/avatar/image2video"
HUGE = "9" * 5000  # int() of this raises ValueError in Python 3.11: once a 500


@pytest.fixture(autouse=True)
def fast_passwords(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def api_token_for(user: Any, team: Team) -> tuple[ApiToken, str]:
    return api_token_create(user=user, team=team, name="script")


def listed_link(client: Any, raw: str, job: AvatarJob) -> str:
    """The video link as the API lists it to the holder of `raw`, as a path."""
    reply = client.get(f"{CREATE}/{job.code}", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert reply.status_code == 200, reply.content
    (video,) = reply.json()["data"]["task_result"]["videos"]
    return video["url"].removeprefix("http://testserver")


def assert_kling_error(reply: Any, status: int, code: int, words: str) -> None:
    assert reply.status_code == status, reply.content
    body = reply.json()
    assert body["code"] == code and body["data"] is None and body["request_id"], body
    assert words in body["message"], body["message"]


# --- class 3: API video links end --------------------------------------------------------------


def test_a_listed_link_works_then_expires_after_a_day(client, teammate, team, done, monkeypatch):
    _, raw = api_token_for(teammate, team)
    path = listed_link(client, raw, done)
    assert client.get(path).status_code == 200
    # The same link, as if listed a day and a second ago.
    old = int(time.time()) - int(links.VIDEO_LINK_MAX_AGE.total_seconds()) - 1
    monkeypatch.setattr(signing.TimestampSigner, "timestamp", lambda self: signing.b62_encode(old))
    expired = listed_link(client, raw, done)
    monkeypatch.undo()
    assert_kling_error(client.get(expired), 403, 1103, "expired")
    assert client.get(path).status_code == 200  # a fresh listing gives a fresh link


def test_a_forged_or_reused_link_is_404(client, teammate, team, done, queued):
    _, raw = api_token_for(teammate, team)
    path = listed_link(client, raw, done)
    code, signature = path.split("/")[3:5]
    assert_kling_error(client.get(path.replace(signature, "0" * 32)), 404, 1203, "not valid")
    # A signature made for one job does not open another.
    other = finish(queued)
    assert_kling_error(client.get(path.replace(code, str(other.code))), 404, 1203, "not valid")


def test_a_revoked_token_takes_its_links_with_it(client, teammate, team, done):
    token, raw = api_token_for(teammate, team)
    path = listed_link(client, raw, done)
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=done.created)
    assert_kling_error(client.get(path), 403, 1103, "revoked")


def test_a_removed_member_loses_tokens_and_links_for_good(client, teammate, team, owner, done):
    token, raw = api_token_for(teammate, team)
    path = listed_link(client, raw, done)
    member_remove(membership=Membership.objects.get(user=teammate, team=team))
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert_kling_error(client.get(path), 403, 1103, "no longer works")
    # Invited back: the old token and its links stay dead.
    _, invite = invite_create(team=team, by=owner)
    invite_accept(token=invite, user=teammate)
    assert client.get(path).status_code == 403
    reply = client.get(f"{CREATE}/{done.code}", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert reply.status_code == 401 and "revoked" in reply.json()["message"]


def test_a_member_made_viewer_loses_tokens_for_good(client, teammate, team, done):
    token, raw = api_token_for(teammate, team)
    path = listed_link(client, raw, done)
    membership = Membership.objects.get(user=teammate, team=team)
    member_set_role(membership=membership, role=Membership.Role.VIEWER)
    assert_kling_error(client.get(path), 403, 1103, "")
    member_set_role(membership=membership, role=Membership.Role.MEMBER)
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert client.get(path).status_code == 403


def test_a_deactivated_owner_s_links_stop(client, teammate, team, done):
    _, raw = api_token_for(teammate, team)
    path = listed_link(client, raw, done)
    teammate.is_active = False
    teammate.save()
    assert_kling_error(client.get(path), 403, 1103, "")


def test_another_team_s_token_cannot_sign_for_this_job(client, outsider, done):
    other_team = Team.objects.get(memberships__user=outsider)
    token, _ = api_token_for(outsider, other_team)
    path = links.video_url(done, token=token, base_url="")
    assert client.get(path).status_code == 403


def test_media_is_cached_privately_and_briefly(client, owner, teammate, team, done):
    _, raw = api_token_for(teammate, team)
    login(client, owner)
    for path in (
        listed_link(client, raw, done),
        reverse("jobs:job-video", args=[done.code]),
        reverse("jobs:job-poster", args=[done.code]),
        reverse("jobs:asset-file", args=[done.portrait.code]),
        reverse("jobs:asset-thumb", args=[done.portrait.code]),
    ):
        reply = client.get(path)
        assert reply.status_code == 200, path
        cache = reply["Cache-Control"]
        assert cache.startswith("private, max-age=") and "public" not in cache, (path, cache)
        assert int(cache.rsplit("=", 1)[1]) <= 600, (path, cache)
    _, share = share_create(job=done, by=owner)
    assert "no-store" in client.get(f"/s/{share}/video.mp4")["Cache-Control"]


# --- class 5: bad input never reaches a 500 ----------------------------------------------------


@pytest.fixture
def media_paths(client, teammate, team, owner, done) -> dict[str, str]:
    _, raw = api_token_for(teammate, team)
    _, share = share_create(job=done, by=owner)
    api = listed_link(client, raw, done)
    login(client, owner)
    return {
        "share": f"/s/{share}/video.mp4",
        "api": api,
        "job": reverse("jobs:job-video", args=[done.code]),
    }


@pytest.mark.parametrize("where", ["share", "api", "job"])
@pytest.mark.parametrize(
    ("header", "status", "content_range"),
    [
        (f"bytes={HUGE}-", 416, "bytes */76"),  # starts past any end
        (f"bytes={HUGE}-{HUGE}", 416, "bytes */76"),
        (f"bytes=0-{HUGE}", 206, "bytes 0-75/76"),  # ends past the end: up to the end
        (f"bytes=-{HUGE}", 206, "bytes 0-75/76"),  # more than the whole: the whole
        (f"bytes=00000{'0' * 5000}10-19", 206, "bytes 10-19/76"),  # leading zeros are fine
        ("bytes=abc-", 200, None),  # malformed: ignored, the whole file
        ("bytes=0-1,5-6", 200, None),  # several ranges: ignored
        ("bytes=٠-٩", 200, None),  # not ASCII digits
    ],
)
def test_absurd_ranges_get_416_or_are_ignored(
    client, media_paths, where, header, status, content_range
):
    reply = client.get(media_paths[where], HTTP_RANGE=header)
    assert reply.status_code == status
    if content_range:
        assert reply["Content-Range"] == content_range


@pytest.mark.parametrize("where", ["share", "api", "job"])
def test_head_answers_the_headers_without_a_body(client, media_paths, where):
    got, head = client.get(media_paths[where]), client.head(media_paths[where])
    assert head.status_code == 200
    for name in ("Content-Type", "Content-Length", "Accept-Ranges", "Cache-Control"):
        assert head[name] == got[name], name
    assert head.content == b""
    ranged = client.head(media_paths[where], HTTP_RANGE="bytes=0-9")
    assert ranged.status_code == 206 and ranged["Content-Length"] == "10"


def test_head_works_on_every_media_view(client, owner, done):
    login(client, owner)
    _, share = share_create(job=done, by=owner)
    for path in (
        f"/s/{share}/poster.jpg",
        reverse("jobs:job-poster", args=[done.code]),
        reverse("jobs:asset-file", args=[done.portrait.code]),
        reverse("jobs:asset-thumb", args=[done.portrait.code]),
    ):
        assert client.head(path).status_code == 200, path


def test_a_bad_allowlist_entry_is_named_at_start_up():
    env = Env({"PRIVATE_URL_ALLOWLIST": "10.0.0.0/8, intranet"})
    with pytest.raises(ImproperlyConfigured, match="PRIVATE_URL_ALLOWLIST: 'intranet'"):
        env.networks("PRIVATE_URL_ALLOWLIST")
    parsed = Env({"PRIVATE_URL_ALLOWLIST": "10.1.2.3/8, ::1"}).networks("PRIVATE_URL_ALLOWLIST")
    assert [str(n) for n in parsed] == ["10.0.0.0/8", "::1/128"]


def test_a_callback_without_public_base_url_is_refused_with_1201(client, teammate, team, settings):
    settings.PUBLIC_BASE_URL = ""
    _, raw = api_token_for(teammate, team)
    body = {"image": "AAAA", "sound_file": "AAAA", "mode": "draft"}
    body["callback_url"] = "https://93.184.216.34/hook"  # public, and no DNS needed
    reply = client.post(
        CREATE,
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert_kling_error(reply, 400, 1201, "callback_url: ")
    assert "PUBLIC_BASE_URL" in reply.json()["message"]
    assert not AvatarJob.objects.exists()


def _notified(team: Team, owner: Any, portrait: Any, audio: Any) -> str:
    job = finish(new_job(team, owner, portrait, audio))
    AvatarJob.objects.filter(pk=job.pk).update(notify_by_email=True)
    assert job_notify(job_id=job.pk)
    return mail.outbox[-1].body


def test_emails_carry_no_loopback_link(settings, team, owner, portrait, audio, caplog):
    settings.PUBLIC_BASE_URL = ""
    body = _notified(team, owner, portrait, audio)
    assert "127.0.0.1" not in body and "/jobs/" not in body and "is ready" in body
    assert "PUBLIC_BASE_URL is not set" in caplog.text
    settings.PUBLIC_BASE_URL = "https://studio.example.com"
    assert "https://studio.example.com/jobs/" in _notified(team, owner, portrait, audio)


# --- class 6: the queue place is the team's own ------------------------------------------------


def test_the_queue_place_counts_only_the_team_s_own_jobs(
    client, owner, team, outsider, portrait, audio, checked
):
    other_team = Team.objects.get(memberships__user=outsider)
    other_portrait = asset_store(team=other_team, user=outsider, valid=checked[0])
    other_audio = asset_store(team=other_team, user=outsider, valid=checked[1])
    for _ in range(3):  # another team's jobs, queued first, on the same engine
        new_job(other_team, outsider, other_portrait, other_audio)
    first = new_job(team, owner, portrait, audio)
    second = new_job(team, owner, portrait, audio)
    ahead = dict(card_jobs(team).values_list("code", "queue_ahead"))
    assert ahead == {first.code: 0, second.code: 1}
    login(client, owner)
    page = client.get(second.get_absolute_url()).content.decode()
    assert "2nd in line" in page and "5th" not in page
    cards = client.get(reverse("jobs:dashboard")).content.decode()
    assert "Next in line" in cards and "4th" not in cards and "5th" not in cards
