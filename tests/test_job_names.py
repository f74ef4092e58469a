"""Named jobs (issue 12): a name from the form, the command or the API, else a default from
the prompt, the script or the portrait; cards and the job page show it with the prompt's first
line and the job's source; admins and creators rename and delete jobs; share pages and the admin
never show the portrait's file name."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from jobs.media.prompts import validate_prompt
from jobs.models import Asset, AvatarJob, Membership, ShareLink
from jobs.services.api_tokens import api_token_create
from jobs.services.jobs import default_job_name, job_create
from jobs.services.sharing import share_create
from tests.helpers import HTMX, b64, finish, login, new_job

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast")]

CREATE = "/kling/v1/videos/avatar/image2video"
DEC_2 = datetime(2026, 12, 2, 15, 30, tzinfo=ZoneInfo("UTC"))


# --- the default name ------------------------------------------------------------------------


def test_default_name_is_the_prompts_first_words_cut_on_a_word():
    prompt = "Smiles warmly, nods twice while talking, then a slow zoom in on the eyes"
    name = default_job_name(prompt=prompt, script="", portrait_name="face.jpg", created=DEC_2)
    assert name == "Smiles warmly, nods twice while talking…"
    long_words = "Extraordinarily enthusiastic presentation, characteristically overwhelming"
    name = default_job_name(prompt=long_words, script="", portrait_name="f.jpg", created=DEC_2)
    assert len(name) <= 60 and name.endswith("…")
    assert long_words.startswith(name[:-1])  # whole words only
    assert default_job_name(
        prompt="wave  hello\n", script="", portrait_name="f", created=DEC_2
    ) == ("wave hello")


def test_default_name_falls_back_to_the_script_then_the_portrait_and_day():
    script = "Hello and welcome to our quarterly update for the whole team"
    name = default_job_name(prompt="  ", script=script, portrait_name="face.jpg", created=DEC_2)
    assert name == "Hello and welcome to our quarterly…"
    name = default_job_name(prompt="", script="", portrait_name="portrait.jpg", created=DEC_2)
    assert name == "portrait · 2 Dec"


def test_job_create_names_jobs_from_the_voiceovers_script(team, owner, portrait, audio):
    Asset.objects.filter(pk=audio.pk).update(script="Good morning from the studio")
    audio.refresh_from_db()
    job = job_create(team=team, user=owner, portrait=portrait, audio=audio)
    assert job.name == "Good morning from the studio"
    assert job.source == AvatarJob.Source.WEB
    plain = job_create(team=team, user=owner, portrait=portrait, audio=audio, prompt="")
    Asset.objects.filter(pk=audio.pk).update(script="")
    assert plain.name == "Good morning from the studio"
    job = job_create(team=team, user=owner, portrait=portrait, audio=Asset.objects.get(pk=audio.pk))
    assert re.fullmatch(r"face · \d{1,2} [A-Z][a-z]{2}", job.name), job.name


# --- a name through the form, the command and the API --------------------------------------


def test_the_form_takes_a_name_and_refuses_a_too_long_one(client, owner, team, portrait, audio):
    login(client, owner)
    data = {"portrait_asset": portrait.code, "audio_asset": audio.code, "mode": "draft"}
    response = client.post(reverse("jobs:job-new"), {**data, "name": "  Launch teaser  "})
    assert response.status_code == 302
    assert AvatarJob.objects.get().name == "Launch teaser"
    response = client.post(reverse("jobs:job-new"), {**data, "name": "x" * 121})
    assert response.status_code == 200
    assert (
        "The name is 121 characters long: shorten it to 120 or fewer." in response.content.decode()
    )
    assert AvatarJob.objects.count() == 1
    client.post(reverse("jobs:job-new"), {**data, "prompt": "say hi to the team"})
    assert AvatarJob.objects.filter(name="say hi to the team", source="web").exists()


def test_the_command_takes_a_name(owner, portrait_path, audio_path):
    args = ["--user", "alice", "--image", str(portrait_path), "--audio", str(audio_path)]
    call_command("generate_avatar", *args, "--name", "From the shell")
    job = AvatarJob.objects.get()
    assert (job.name, job.source) == ("From the shell", AvatarJob.Source.COMMAND)
    call_command("generate_avatar", *args, "--prompt", "nod along")
    assert AvatarJob.objects.filter(name="nod along", source="command").exists()


def test_the_api_takes_a_name_apart_from_external_task_id(client, owner, team, checked):
    _, raw = api_token_create(user=owner, team=team, name="script")
    body = {
        "image": b64(checked[0].content),
        "sound_file": b64(checked[1].content),
        "mode": "draft",
        "external_task_id": "ext-7",
        "name": "Made by the API",
    }
    reply = client.post(
        CREATE,
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert reply.json()["code"] == 0, reply.content
    job = AvatarJob.objects.get()
    assert (job.name, job.client_external_id, job.source) == ("Made by the API", "ext-7", "api")
    body.update(external_task_id="ext-8", name="n" * 121)
    reply = client.post(
        CREATE,
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert reply.json()["code"] != 0 and "name" in reply.json()["message"]
    document = client.get(reverse("api:openapi")).json()
    create = json.dumps(document)
    assert "external_task_id is" in create and '"maxLength": 120' in create


# --- cards --------------------------------------------------------------------------------


def _api_job(team, owner, portrait, audio, token_name: str) -> AvatarJob:
    token, _ = api_token_create(user=owner, team=team, name=token_name)
    job = new_job(team, owner, portrait, audio, prompt="from a script")
    AvatarJob.objects.filter(pk=job.pk).update(api_token=token, source=AvatarJob.Source.API)
    return job


def test_cards_show_name_prompt_line_and_source(client, owner, team, portrait, audio):
    job_create(
        team=team,
        user=owner,
        portrait=portrait,
        audio=audio,
        prompt=validate_prompt("First line of the prompt\nsecond line"),
        name="Quarterly update",
    )
    _api_job(team, owner, portrait, audio, "ComfyUI")
    AvatarJob.objects.create(
        team=team, portrait=portrait, audio=audio, name="Shell job", source="command"
    )
    login(client, owner)
    for url in ["/", "/?q=o"]:  # the SQL page and the ORM's filtered page
        page = client.get(url).content.decode()
        assert ">Quarterly update</a></h3>" in page, url
        assert "First line of the prompt" in page and "second line" not in page
        assert "API · ComfyUI" in page and ">command<" in page and ">web<" in page
        assert ">face.jpg</a>" not in page
    detail = client.get(AvatarJob.objects.get(name="Quarterly update").get_absolute_url())
    assert "<h1>Quarterly update</h1>" in detail.content.decode()


def test_cards_take_the_same_queries_for_many_jobs(
    client, owner, team, portrait, audio, django_assert_max_num_queries
):
    _api_job(team, owner, portrait, audio, "one")
    login(client, owner)
    counts = {}
    for url in ["/", "/?q=script"]:
        with CaptureQueriesContext(connection) as few:
            assert client.get(url).status_code == 200
        counts[url] = len(few)
    for n in range(8):
        _api_job(team, owner, portrait, audio, f"token {n}")
        new_job(team, owner, portrait, audio, prompt=f"web job {n}")
    for url, count in counts.items():
        with django_assert_max_num_queries(count):
            page = client.get(url).content.decode()
        assert "API · token 7" in page, url


# --- rename and delete: who may ---------------------------------------------------------


@pytest.fixture
def member_job(team, teammate, portrait, audio) -> AvatarJob:
    return finish(new_job(team, teammate, portrait, audio, prompt="bob's job"))


@pytest.fixture
def other_member(django_user_model, team):
    user = django_user_model.objects.create_user("carol", "carol@example.com", "carol-pass-1")
    Membership.objects.create(user=user, team=team, role=Membership.Role.MEMBER)
    return user


@pytest.mark.parametrize(
    ("who", "expected"),
    [("owner", 302), ("teammate", 302), ("other_member", 403), ("viewer", 403), ("outsider", 404)],
)
def test_who_may_rename(client, request, team, member_job, who, expected):
    user = request.getfixturevalue(who)
    login(client, user, None if who == "outsider" else team)
    url = reverse("jobs:job-rename", args=[member_job.code])
    assert client.post(url, {"name": " New name "}).status_code == expected
    member_job.refresh_from_db()
    assert member_job.name == ("New name" if expected == 302 else "bob's job")


@pytest.mark.parametrize(
    ("who", "expected"),
    [("owner", 302), ("teammate", 302), ("other_member", 403), ("viewer", 403), ("outsider", 404)],
)
def test_who_may_delete(client, request, team, member_job, who, expected):
    user = request.getfixturevalue(who)
    login(client, user, None if who == "outsider" else team)
    url = reverse("jobs:job-delete", args=[member_job.code])
    assert client.get(url).status_code == (200 if expected == 302 else expected)
    assert client.post(url).status_code == expected
    assert AvatarJob.objects.filter(pk=member_job.pk).exists() == (expected != 302)


def test_the_job_page_offers_rename_and_delete_to_those_who_may(
    client, team, member_job, other_member, teammate
):
    login(client, teammate, team)
    page = client.get(member_job.get_absolute_url()).content.decode()
    assert 'id="rename-job"' in page and 'id="delete-job"' in page
    login(client, other_member, team)
    page = client.get(member_job.get_absolute_url()).content.decode()
    assert 'id="rename-job"' not in page and 'id="delete-job"' not in page


def test_rename_validates_and_answers_htmx_with_the_heading(client, owner, done):
    login(client, owner)
    url = reverse("jobs:job-rename", args=[done.code])
    response = client.post(url, {"name": "   "}, follow=True)
    assert "The name is empty: give the job a name." in response.content.decode()
    response = client.post(url, {"name": "y" * 121}, headers=HTMX)
    body = response.content.decode()
    assert response.status_code == 200 and "shorten it to 120 or fewer" in body
    assert 'id="job-name"' in body and "<html" not in body
    response = client.post(url, {"name": "Via htmx"}, headers=HTMX)
    assert "<h1>Via htmx</h1>" in response.content.decode()
    done.refresh_from_db()
    assert done.name == "Via htmx"
    # The dashboard's cached card is drawn again with the new name.
    assert ">Via htmx</a></h3>" in client.get("/").content.decode()


def test_delete_removes_result_files_and_share_links_not_library_files(
    client, owner, done, media_root, django_capture_on_commit_callbacks
):
    _, token = share_create(job=done, by=owner, allow_download=True)
    files = [Path(done.video.path), Path(done.poster.path)]
    assert all(f.exists() for f in files)
    inputs = [Path(done.portrait.file.path), Path(done.audio.file.path)]
    login(client, owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("jobs:job-delete", args=[done.code]))
    assert response.status_code == 302 and response["Location"] == reverse("jobs:dashboard")
    assert not AvatarJob.objects.filter(pk=done.pk).exists()
    assert not any(f.exists() for f in files)
    assert not list((media_root / "results").rglob("*.*"))
    assert all(f.exists() for f in inputs) and Asset.objects.count() == 2
    assert ShareLink.objects.count() == 0
    assert client.get(reverse("share-page", args=[token])).status_code == 404


def test_a_queued_job_is_canceled_and_deleted_a_running_one_is_refused(client, owner, queued):
    login(client, owner)
    url = reverse("jobs:job-delete", args=[queued.code])
    assert "canceled first" in client.get(url).content.decode()
    assert client.post(url).status_code == 302
    assert not AvatarJob.objects.filter(pk=queued.pk).exists()

    running = new_job(queued.team, owner, queued.portrait, queued.audio, status="processing")
    url = reverse("jobs:job-delete", args=[running.code])
    assert "cannot be stopped now" in client.get(url).content.decode()
    response = client.post(url, follow=True)
    assert "cannot be stopped now: wait until it is done or has failed" in (
        response.content.decode()
    )
    assert AvatarJob.objects.filter(pk=running.pk, status="processing").exists()


# --- the share page and the admin ------------------------------------------------------


def test_share_page_title_and_download_name_come_from_the_job_name(client, owner, done):
    AvatarJob.objects.filter(pk=done.pk).update(name="Our Launch: Take 2!")
    done.refresh_from_db()
    _, token = share_create(job=done, by=owner, allow_download=True)
    page = client.get(reverse("share-page", args=[token])).content.decode()
    assert "<title>Our Launch: Take 2!</title>" in page
    assert '<meta property="og:title" content="Our Launch: Take 2!">' in page
    assert "face.jpg" not in page
    video = client.get(reverse("share-video", args=[token]) + "?download=1")
    assert 'filename="our-launch-take-2.mp4"' in video["Content-Disposition"]


def test_admin_lists_names_and_its_file_links_work(admin_client, done):
    AvatarJob.objects.filter(pk=done.pk).update(name="Admin sees me")
    listing = admin_client.get(reverse("admin:jobs_avatarjob_changelist") + "?q=sees")
    assert "Admin sees me" in listing.content.decode()
    page = admin_client.get(reverse("admin:jobs_avatarjob_change", args=[done.pk]))
    links = re.findall(r'href="([^"]+\.(?:mp4|jpg))"', page.content.decode())
    assert len(links) == 2, links
    for link in links:
        response = admin_client.get(link)
        assert response.status_code == 200, link
        assert b"".join(response.streaming_content if response.streaming else [response.content])
