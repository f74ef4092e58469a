"""The Kling-compatible API: the seed requests run to `succeed` (draft in a real worker, std
against the Kling simulator), Kling's envelope and codes for every refusal, tasks by id and by
the caller's id, permanent video links, tokens, and callbacks out in order with retries."""

from __future__ import annotations

import ast
import json
import time
from datetime import timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import requests
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from jobs.api.callbacks import MAX_ATTEMPTS, api_callback_if_changed, deliver, schedule_name
from jobs.kling.simulator import KlingSimulator
from jobs.media.audio import validate_audio
from jobs.models import ApiToken, Asset, AvatarJob, Membership, Team, hash_token
from jobs.services.api_tokens import api_token_create
from jobs.services.assets import asset_store
from jobs.services.jobs import job_advance, job_create
from jobs.services.quotas import quota_set
from jobs.services.teams import team_create
from tests.api_servers import LoopbackServer
from tests.helpers import (
    Worker,
    b64,
    fast_config,
    make_audio_file,
    make_portrait_bytes,
    simulated_kling,
    subprocess_env,
    wait_for,
)

pytestmark = pytest.mark.django_db

CREATE = "/kling/v1/videos/avatar/image2video"
# The seed documents live in shared/, beside the repository (as in CI's checkout).
SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
SEED_AUDIO_ID = "825455158141661278"


# --- helpers -------------------------------------------------------------------------------


def auth(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def post(client: Any, token: str, body: Any, path: str = CREATE) -> Any:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(path, data=data, content_type="application/json", **auth(token))


def get(client: Any, token: str, path: str) -> Any:
    return client.get(path, **auth(token))


def seed_body(name: str) -> dict[str, Any]:
    """The JSON body of a seed document's curl example, exactly as written there."""
    if not SEEDS.is_dir():
        pytest.skip(f"the seed documents are not at {SEEDS}")
    text = (SEEDS / name).read_text()
    start = text.index("--data", text.index("curl"))
    start = text.index("{", start)
    depth = 0
    for end in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0:
            return json.loads(text[start : end + 1])
    raise AssertionError(f"no JSON body in {name}")


# Where the studio says it is, in tests that need PUBLIC_BASE_URL: nothing listens there.
STUDIO = "http://127.0.0.1:8000"


@pytest.fixture(autouse=True)
def fast_passwords(settings) -> None:
    """The personas' passwords are never checked here (force_login): skip PBKDF2's 0.45 s each."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def token(owner, team) -> str:
    return api_token_create(user=owner, team=team, name="script")[1]


@pytest.fixture(scope="session")
def files(tmp_path_factory) -> dict[str, bytes]:
    """Small valid inputs (and a too-short voice-over), made once: ffmpeg is the slow part."""
    tmp = tmp_path_factory.mktemp("api-media")
    return {
        "portrait": make_portrait_bytes(),
        "png": make_portrait_bytes(fmt="PNG"),
        "voice": make_audio_file(tmp / "voice.mp3", 3.0).read_bytes(),
        "wav": make_audio_file(tmp / "voice.wav", 2.5).read_bytes(),
        "tts": make_audio_file(tmp / "tts.wav", 2.5).read_bytes(),
        "short": make_audio_file(tmp / "short.mp3", 1.0).read_bytes(),
    }


def draft_body(files: dict[str, bytes], **extra: Any) -> dict[str, Any]:
    body = {"image": b64(files["portrait"]), "sound_file": b64(files["voice"]), "mode": "draft"}
    return body | extra


def step(job: AvatarJob) -> AvatarJob:
    """One worker pass on the job, as if its next attempt were due now."""
    AvatarJob.objects.filter(pk=job.pk).exclude(status__in=AvatarJob.TERMINAL).update(
        next_attempt_at=timezone.now()
    )
    job_advance(job_id=job.pk)
    job.refresh_from_db()
    return job


@pytest.fixture
def sim(settings):
    with simulated_kling(settings, fast_config(max_concurrency=5), http_timeout=2) as simulator:
        yield simulator


# --- the seed requests, end to end -----------------------------------------------------------


def _seed_requests(files: LoopbackServer, portrait: bytes, voice: bytes) -> list[dict[str, Any]]:
    """Seed 000 as written (audio_id of a voice the team has) and seed 004 as written, with the
    image and sound URLs on loopback. Seed 004's example sends only `image`, which Kling refuses
    (it needs exactly one of audio_id and sound_file), so it gets the sound_file its text
    describes."""
    image_url = files.serve("/uploads/portrait.jpg", portrait, "image/jpeg")
    sound_url = files.serve("/media/voice", voice, "audio/mpeg")  # no extension: Content-Type
    seed000 = seed_body("000_7d8f1631c514b890.txt")
    assert seed000["audio_id"] == SEED_AUDIO_ID and seed000["mode"] == "std"
    seed000["image"] = image_url
    seed004 = seed_body("004_cb7a16c22de00c37.txt")
    assert seed004 == {"image": "example"}
    seed004 = {"image": image_url, "sound_file": sound_url}
    return [seed000, seed004]


def _team_tts_voice(team: Team, owner: Any, wav: bytes) -> Asset:
    """A voice-over the team made with Kling's text-to-speech, known to Kling by the seed's id.

    Made 26 days ago: past the engine's 25-day margin, so Kling (the simulator, which never
    issued this id) gets our stored copy, as it would a week before the real id expires.
    """
    valid = validate_audio(ContentFile(wav, name="tts.wav"))
    asset = asset_store(team=team, user=owner, valid=valid)
    asset.kling_audio_id = SEED_AUDIO_ID
    asset.kling_audio_made_at = timezone.now() - timedelta(days=26)
    asset.save()
    return asset


def _run_seeds(live_server, token, bodies, *, timeout: float = 90) -> list[dict[str, Any]]:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    task_ids = []
    for body in bodies:
        reply = session.post(f"{live_server.url}{CREATE}", json=body, timeout=60)
        assert reply.status_code == 200, reply.text
        envelope = reply.json()
        assert envelope["code"] == 0 and envelope["message"] == "SUCCEED"
        assert envelope["data"]["task_status"] == "submitted"
        task_ids.append(envelope["data"]["task_id"])

    def finished() -> list[dict[str, Any]] | None:
        tasks = [
            session.get(f"{live_server.url}{CREATE}/{task_id}", timeout=10).json()["data"]
            for task_id in task_ids
        ]
        return tasks if all(t["task_status"] in ("succeed", "failed") for t in tasks) else None

    tasks = wait_for(finished, timeout=timeout, interval=0.5)
    for task in tasks:
        assert task["task_status"] == "succeed", task
        (video,) = task["task_result"]["videos"]
        assert float(video["duration"]) > 0
        # Our stored copy, fetched with no session and no token.
        download = requests.get(video["url"], timeout=10)
        assert download.status_code == 200
        assert download.headers["Content-Type"] == "video/mp4"
        assert download.content[4:8] == b"ftyp"
    return tasks


@pytest.mark.slow
def test_seed_requests_run_to_succeed_as_drafts(
    transactional_db, live_server, media_root, tmp_path, settings, owner, team, token, files
):
    """The two seed requests with mode draft: rendered for real by a qcluster worker."""
    settings.ALLOW_PRIVATE_URLS = True
    _team_tts_voice(team, owner, files["tts"])
    log = tmp_path / "worker.log"
    with Worker(subprocess_env(media_root), log), LoopbackServer() as server:
        bodies = [
            body | {"mode": "draft"}
            for body in _seed_requests(server, files["portrait"], files["voice"])
        ]
        tasks = _run_seeds(live_server, token, bodies)
    assert [t["final_unit_deduction"] for t in tasks] == ["0", "0"]
    jobs = AvatarJob.objects.filter(api_token__isnull=False).order_by("created")
    assert [j.mode for j in jobs] == ["draft", "draft"]
    assert jobs[0].audio.kling_audio_id == SEED_AUDIO_ID  # the team's own copy of that voice


@pytest.mark.slow
def test_seed_requests_run_to_succeed_on_std_against_the_kling_simulator(
    transactional_db, live_server, media_root, tmp_path, settings, owner, team, token, files
):
    """The two seed requests as they are (mode std, Kling's default): sent to Kling (the
    simulator) by a qcluster worker, results downloaded into our storage."""
    settings.ALLOW_PRIVATE_URLS = True
    _team_tts_voice(team, owner, files["tts"])
    with KlingSimulator(fast_config(max_concurrency=5)) as sim:
        settings.KLING_BASE_URL, settings.KLING_API_KEY = sim.base_url, sim.config.api_key
        env = subprocess_env(
            media_root,
            KLING_BASE_URL=sim.base_url,
            KLING_API_KEY=sim.config.api_key,
            KLING_POLL_SECONDS="1",
            KLING_HTTP_TIMEOUT="5",
            PUBLIC_BASE_URL="",
        )
        with Worker(env, tmp_path / "worker.log"), LoopbackServer() as server:
            tasks = _run_seeds(
                live_server, token, _seed_requests(server, files["portrait"], files["voice"])
            )
        stats = sim.snapshot()
    assert stats["tasks_created"] == 2
    assert all(Decimal(t["final_unit_deduction"]) > 0 for t in tasks)
    jobs = AvatarJob.objects.filter(api_token__isnull=False)
    assert {j.mode for j in jobs} == {"std"} and all(j.task_id for j in jobs)


# --- create ----------------------------------------------------------------------------------


def test_create_queues_an_ordinary_job_marked_with_its_token(client, owner, team, token, files):
    reply = post(client, token, draft_body(files, prompt="  smile  ", external_task_id="ext-1"))
    assert reply.status_code == 200, reply.content
    envelope = reply.json()
    assert envelope["code"] == 0 and envelope["message"] == "SUCCEED" and envelope["request_id"]
    data = envelope["data"]
    assert data["task_status"] == "submitted"
    assert data["task_info"] == {"external_task_id": "ext-1"}
    assert abs(data["created_at"] / 1000 - time.time()) < 60  # milliseconds
    job = AvatarJob.objects.get(code=data["task_id"])
    assert job.team == team and job.created_by == owner and job.mode == "draft"
    assert job.api_token.name == "script" and job.client_external_id == "ext-1"
    assert job.prompt == "smile" and job.status == AvatarJob.Status.QUEUED
    assert job.external_task_id == str(job.code)  # what Kling would see is ours, not theirs
    # The inputs are in the team's library like uploads, validated the same way.
    assert job.portrait.format == "jpeg" and job.audio.format == "mp3"
    assert reply["X-Request-Id"] == envelope["request_id"]


def test_the_same_api_answers_under_v1_too(client, token, files):
    reply = post(client, token, draft_body(files), path="/v1/videos/avatar/image2video")
    assert reply.status_code == 200
    task_id = reply.json()["data"]["task_id"]
    assert get(client, token, f"/v1/videos/avatar/image2video/{task_id}").status_code == 200


def test_png_and_wav_inputs_are_accepted(client, token, files):
    reply = post(
        client, token, draft_body(files, image=b64(files["png"]), sound_file=b64(files["wav"]))
    )
    assert reply.status_code == 200, reply.content
    job = AvatarJob.objects.get(code=reply.json()["data"]["task_id"])
    assert (job.portrait.format, job.audio.format) == ("png", "wav")


def test_a_repeated_external_task_id_returns_the_existing_task(client, team, token, files):
    first = post(client, token, draft_body(files, external_task_id="order-7")).json()["data"]
    # Even with other inputs (a retry with a fresh prompt): one task per id and team.
    again = post(client, token, draft_body(files, external_task_id="order-7", prompt="x"))
    assert again.status_code == 200
    assert again.json()["data"]["task_id"] == first["task_id"]
    assert AvatarJob.objects.filter(team=team).count() == 1


def test_external_ids_are_unique_per_team_not_across_teams(client, token, outsider, files):
    outsider_team = Team.objects.get(memberships__user=outsider)
    other = api_token_create(user=outsider, team=outsider_team)[1]
    mine = post(client, token, draft_body(files, external_task_id="same")).json()["data"]
    theirs = post(client, other, draft_body(files, external_task_id="same")).json()["data"]
    assert mine["task_id"] != theirs["task_id"]


def test_a_known_audio_id_uses_the_teams_stored_voice(client, owner, team, token, files):
    voice = _team_tts_voice(team, owner, files["tts"])
    body = {"image": b64(files["portrait"]), "audio_id": SEED_AUDIO_ID, "mode": "draft"}
    reply = post(client, token, body)
    assert reply.status_code == 200, reply.content
    job = AvatarJob.objects.get(code=reply.json()["data"]["task_id"])
    assert job.audio == voice and job.kling_audio_id == ""


def test_an_unknown_audio_id_goes_to_kling_for_std(client, sim, token, files):
    body = {"image": b64(files["portrait"]), "audio_id": "9876543210", "mode": "std"}
    reply = post(client, token, body)
    assert reply.status_code == 200, reply.content
    job = AvatarJob.objects.get(code=reply.json()["data"]["task_id"])
    assert job.audio is None and job.kling_audio_id == "9876543210"


def test_the_quota_refusal_is_1102_and_says_what_is_left(client, team, token, files):
    quota_set(team=team, mode="draft", seconds=2)
    reply = post(client, token, draft_body(files))
    assert reply.status_code == 429
    body = reply.json()
    assert body["code"] == 1102 and body["data"] is None
    assert "2 s of draft video left" in body["message"]
    assert not AvatarJob.objects.exists()


# --- every refusal: Kling's code, HTTP status, and the field named first ---------------------


def _too_small() -> str:
    return b64(make_portrait_bytes((200, 200)))


REFUSALS: list[tuple[str, Any, int, str, str]] = [
    # (case, body (dict: merged over a valid draft body; str: sent raw), code, field, words)
    ("not json", "{nope", 1200, "body", "not valid JSON"),
    ("json array", "[1, 2]", 1200, "body", "JSON object"),
    ("empty body", "", 1200, "body", "empty"),
    ("no image", {"image": None}, 1201, "image", "required"),
    ("image a number", {"image": 12}, 1201, "image", "must be a string, not a number"),
    ("image neither", {"image": "not base64!"}, 1201, "image", "neither an http(s) URL"),
    ("image junk", {"image": "example"}, 1201, "image", "not a JPEG or PNG"),
    ("image data url", {"image": "data:image/png;base64,AAAA"}, 1201, "image", "bare base64"),
    ("image ftp", {"image": "ftp://example.com/a.jpg"}, 1201, "image", "only http"),
    ("image too small", {"image": _too_small}, 1201, "image", "at least 300 px"),
    ("image too big", {"image": "A" * 15_500_000}, 1201, "image", "the limit is 10 MB"),
    ("both audios", {"audio_id": "123"}, 1201, "audio_id, sound_file", "both were given"),
    ("no audio", {"sound_file": ""}, 1201, "audio_id, sound_file", "neither was given"),
    ("sound junk", {"sound_file": b64(b"hello there")}, 1201, "sound_file", "not audio"),
    ("prompt long", {"prompt": "x" * 2501}, 1201, "prompt", "the limit is 2,500"),
    ("prompt number", {"prompt": 5}, 1201, "prompt", "must be a string"),
    ("mode unknown", {"mode": "turbo"}, 1201, "mode", "use std, pro or draft"),
    ("mode std no key", {"mode": "std"}, 1201, "mode", "choose draft"),
    ("callback junk", {"callback_url": "not a url"}, 1201, "callback_url", "http"),
    ("external long", {"external_task_id": "x" * 201}, 1201, "external_task_id", "limit is 200"),
    ("watermark", {"watermark_info": "yes"}, 1201, "watermark_info", '{"enabled": false}'),
    ("draft audio_id", {"sound_file": None, "audio_id": "4242424"}, 1201, "audio_id", "sound_file"),
    ("audio_id shape", {"sound_file": None, "audio_id": "id 42!"}, 1201, "audio_id", "not a Kling"),
]


@pytest.mark.parametrize(
    ("body", "code", "field", "words"),
    [r[1:] for r in REFUSALS],
    ids=[r[0] for r in REFUSALS],
)
def test_each_refusal_answers_klings_code_and_names_the_field(
    client, token, files, settings, body, code, field, words
):
    settings.KLING_API_KEY = settings.KLING_ACCESS_KEY = settings.KLING_SECRET_KEY = ""
    if isinstance(body, dict):
        body = draft_body(files) | {k: v() if callable(v) else v for k, v in body.items()}
    reply = post(client, token, body)
    answer = reply.json()
    assert reply.status_code == 400, answer
    assert answer["code"] == code and answer["data"] is None and answer["request_id"]
    assert answer["message"].startswith(f"{field}:"), answer["message"]
    assert words in answer["message"], answer["message"]
    assert not AvatarJob.objects.exists()


def test_a_too_short_voice_over_is_refused_with_the_forms_message(client, token, files):
    answer = post(client, token, draft_body(files, sound_file=b64(files["short"]))).json()
    assert answer["code"] == 1201
    assert answer["message"].startswith("sound_file: Voice-over is 1.0")
    assert "at least 2 seconds" in answer["message"]


def test_wrong_methods_answer_1202_with_allow(client, token):
    reply = client.delete(CREATE, **auth(token))
    assert reply.status_code == 405 and reply.json()["code"] == 1202
    assert reply["Allow"] == "POST, GET"
    reply = client.post(f"{CREATE}/abc", **auth(token))
    assert reply.status_code == 405 and reply["Allow"] == "GET"


def test_unknown_api_paths_answer_1203_in_json(client, token):
    reply = get(client, token, "/kling/v1/videos/nothing-here")
    assert reply.status_code == 404 and reply.json()["code"] == 1203


# --- queries ---------------------------------------------------------------------------------


def test_a_task_is_found_by_task_id_and_by_external_task_id(client, token, files):
    task_id = post(client, token, draft_body(files, external_task_id="mine-1")).json()["data"][
        "task_id"
    ]
    by_id = get(client, token, f"{CREATE}/{task_id}").json()["data"]
    by_external = get(client, token, f"{CREATE}/mine-1").json()["data"]
    assert by_id == by_external
    assert by_id["task_status"] == "submitted" and by_id["task_status_msg"] == ""
    assert by_id["task_result"] == {"videos": []} and by_id["final_unit_deduction"] == "0"
    reply = get(client, token, f"{CREATE}/nobody")
    assert reply.status_code == 404 and reply.json()["code"] == 1203
    assert reply.json()["message"].startswith("task_id:")


def test_statuses_read_as_klings(client, token, files):
    task_id = post(client, token, draft_body(files)).json()["data"]["task_id"]
    job = AvatarJob.objects.get(code=task_id)
    expected = {
        "queued": "submitted",
        "submitting": "submitted",
        "submitted": "processing",
        "processing": "processing",
        "downloading": "processing",
        "failed": "failed",
        "canceled": "failed",
    }
    for status, kling in expected.items():
        AvatarJob.objects.filter(pk=job.pk).update(status=status, error_message="")
        data = get(client, token, f"{CREATE}/{task_id}").json()["data"]
        assert data["task_status"] == kling, status
    AvatarJob.objects.filter(pk=job.pk).update(status="failed", error_message="Kling said no.")
    assert get(client, token, f"{CREATE}/{task_id}").json()["data"]["task_status_msg"] == (
        "Kling said no."
    )


def test_a_finished_task_links_to_our_copy_which_needs_no_session(client, token, files):
    task_id = post(client, token, draft_body(files)).json()["data"]["task_id"]
    job = step(AvatarJob.objects.get(code=task_id))  # render the draft here
    assert job.status == AvatarJob.Status.SUCCEEDED, job.error_message
    data = get(client, token, f"{CREATE}/{task_id}").json()["data"]
    assert data["task_status"] == "succeed"
    (video,) = data["task_result"]["videos"]
    assert video["id"] == task_id and float(video["duration"]) == pytest.approx(job.duration)
    assert video["url"].startswith("http://testserver/kling/files/")
    client.logout()
    path = video["url"].removeprefix("http://testserver")
    reply = client.get(path)  # no token, no session
    assert reply.status_code == 200 and reply["Content-Type"] == "video/mp4"
    ranged = client.get(path, HTTP_RANGE="bytes=0-99")
    assert ranged.status_code == 206 and ranged["Content-Length"] == "100"
    forged = path.replace(path.split("/")[-2], "0" * 32)
    assert client.get(forged).status_code == 404


def test_public_base_url_wins_for_links(client, token, files, settings):
    settings.PUBLIC_BASE_URL = "https://studio.example.com"
    task_id = post(client, token, draft_body(files)).json()["data"]["task_id"]
    step(AvatarJob.objects.get(code=task_id))
    data = get(client, token, f"{CREATE}/{task_id}").json()["data"]
    assert data["task_result"]["videos"][0]["url"].startswith("https://studio.example.com/kling/")


def test_the_list_is_the_teams_newest_first_in_pages(client, owner, team, token, files):
    ids = [post(client, token, draft_body(files)).json()["data"]["task_id"] for _ in range(3)]
    # A job made in the studio is one of the team's tasks too.
    job = AvatarJob.objects.get(code=ids[0])
    studio_job = job_create(team=team, user=owner, portrait=job.portrait, audio=job.audio)
    everything = get(client, token, CREATE).json()["data"]
    assert [t["task_id"] for t in everything] == [str(studio_job.code), *reversed(ids)]
    page2 = get(client, token, f"{CREATE}?pageNum=2&pageSize=3").json()["data"]
    assert [t["task_id"] for t in page2] == [ids[0]]
    assert get(client, token, f"{CREATE}?pageNum=3&pageSize=3").json()["data"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("pageNum=0", "pageNum"),
        ("pageNum=1001", "pageNum"),
        ("pageNum=abc", "pageNum"),
        ("pageNum=-1", "pageNum"),
        ("pageSize=0", "pageSize"),
        ("pageSize=", "pageSize"),
        ("pageSize=501", "pageSize"),
        ("pageSize=2.5", "pageSize"),
    ],
)
def test_page_parameters_out_of_range_are_refused(client, token, query, field):
    reply = get(client, token, f"{CREATE}?{query}")
    assert reply.status_code == 400
    assert reply.json()["code"] == 1201 and reply.json()["message"].startswith(f"{field}:")


def test_listing_cost_does_not_grow_with_the_page(
    client, token, files, django_assert_max_num_queries
):
    for _ in range(4):
        post(client, token, draft_body(files))
    with django_assert_max_num_queries(6):
        assert len(get(client, token, f"{CREATE}?pageSize=500").json()["data"]) == 4


# --- tokens: the command, the page -----------------------------------------------------------


def test_create_api_token_prints_a_working_token_last(client, owner, team, files):
    out = StringIO()
    call_command("create_api_token", "alice", "--name", "render farm", stdout=out)
    lines = out.getvalue().strip().splitlines()
    raw = lines[-1]
    assert raw.startswith("avs_") and len(raw) > 30 and "render farm" in lines[0]
    stored = ApiToken.objects.get()
    assert stored.team == team and stored.token_hash != raw and raw not in stored.prefix
    assert post(client, raw, draft_body(files)).status_code == 200


def test_create_api_token_for_another_team_and_its_errors(owner, teammate, viewer, team):
    other = team_create(name="Marketing", user=owner)
    out = StringIO()
    call_command("create_api_token", "alice", "--team", other.slug, stdout=out)
    assert ApiToken.objects.get().team == other
    with pytest.raises(Exception, match="no account"):
        call_command("create_api_token", "nobody", stdout=StringIO())
    with pytest.raises(Exception, match="not in a team"):
        call_command("create_api_token", "bob", "--team", other.slug, stdout=StringIO())
    with pytest.raises(Exception, match="can make jobs"):
        call_command("create_api_token", "vera", "--team", team.slug, stdout=StringIO())


def test_the_tokens_page_shows_a_new_token_once(client, owner, team):
    client.force_login(owner)
    assert client.get(reverse("api:tokens")).status_code == 200
    reply = client.post(reverse("api:tokens"), {"name": "ComfyUI"})
    assert reply.status_code == 201 and reply["Cache-Control"] == "no-store"
    token = ApiToken.objects.get()
    raw = reply.context["new_token"]
    assert raw.encode() in reply.content and token.token_hash == hash_token(raw)
    again = client.get(reverse("api:tokens"))
    assert raw.encode() not in again.content and token.prefix.encode() in again.content
    assert b"ComfyUI" in again.content and b"Never" in again.content


def test_last_used_is_recorded_at_most_once_a_minute(client, token):
    api_token = ApiToken.objects.get()
    assert api_token.last_used_at is None
    get(client, token, CREATE)
    first = ApiToken.objects.get().last_used_at
    assert first is not None
    get(client, token, CREATE)
    assert ApiToken.objects.get().last_used_at == first
    ApiToken.objects.update(last_used_at=first - timedelta(minutes=2))
    get(client, token, CREATE)
    assert ApiToken.objects.get().last_used_at > first


def test_viewers_cannot_create_tokens(client, viewer, team):
    client.force_login(viewer)
    session = client.session
    session["team"] = str(team.code)
    session.save()
    page = client.get(reverse("api:tokens"))
    assert page.status_code == 200 and b"Create token" not in page.content
    assert client.post(reverse("api:tokens"), {"name": "x"}).status_code == 403
    assert not ApiToken.objects.exists()


def test_owners_and_admins_revoke_others_get_404(client, owner, teammate, outsider, team):
    mine, _ = api_token_create(user=teammate, team=team, name="bob's")
    url = reverse("api:token-revoke", args=[mine.code])
    client.force_login(outsider)
    assert client.post(url).status_code == 404
    other_member = Membership.objects.create(user=outsider, team=team, role=Membership.Role.MEMBER)
    assert client.post(url).status_code == 404  # a member, but not the owner nor an admin
    other_member.delete()
    client.force_login(owner)  # the team's admin
    session = client.session
    session["team"] = str(team.code)
    session.save()
    assert b"bob&#x27;s" in client.get(reverse("api:tokens")).content
    assert client.post(url).status_code == 302
    assert ApiToken.objects.get().revoked_at is not None


def test_the_docs_page_uses_this_servers_address(client, owner, settings):
    client.force_login(owner)
    page = client.get(reverse("api:docs"))
    assert page.status_code == 200
    assert b"http://testserver/kling/v1/videos/avatar/image2video" in page.content
    settings.PUBLIC_BASE_URL = "https://studio.example.com"
    page = client.get(reverse("api:docs"))
    assert b"https://studio.example.com/kling/v1/videos/avatar/image2video" in page.content
    assert client.get(reverse("api:openapi")).json()["servers"][0]["url"] == (
        "https://studio.example.com/kling"
    )


def test_portal_pages_need_a_login(client):
    for name in ("api:tokens", "api:docs"):
        reply = client.get(reverse(name))
        assert reply.status_code == 302 and "/accounts/login/" in reply["Location"]


# --- callbacks out ---------------------------------------------------------------------------


def test_callbacks_report_each_status_once_in_order(client, sim, token, files, settings):
    settings.ALLOW_PRIVATE_URLS = True
    settings.PUBLIC_BASE_URL = STUDIO  # callbacks are refused without it
    with LoopbackServer() as receiver:
        body = draft_body(files, mode="std", callback_url=f"{receiver.url}/hook")
        task_id = post(client, token, body).json()["data"]["task_id"]
        job = AvatarJob.objects.get(code=task_id)
        deliver(job.pk)  # what a worker does with the task the create enqueued
        deadline = time.monotonic() + 20
        while not job.is_terminal and time.monotonic() < deadline:
            job = step(job)
            deliver(job.pk)
            deliver(job.pk)  # a duplicate wake-up tells nothing twice
            time.sleep(0.05)
        assert job.status == AvatarJob.Status.SUCCEEDED, job.error_message
        bodies = [hit.json() for hit in receiver.posts("/hook")]
    assert [b["task_status"] for b in bodies] == ["submitted", "processing", "succeed"]
    assert {b["task_id"] for b in bodies} == {task_id}
    last = bodies[-1]
    assert "code" not in last  # the bare task object, as Kling sends it
    assert last["task_result"]["videos"][0]["url"].startswith(f"{STUDIO}/kling/files/")
    assert Decimal(last["final_unit_deduction"]) > 0
    assert AvatarJob.objects.get(pk=job.pk).client_callback_status == "succeed"


def test_a_failing_receiver_is_retried_with_growing_backoff(client, token, files, settings):
    settings.ALLOW_PRIVATE_URLS = True
    settings.PUBLIC_BASE_URL = STUDIO  # callbacks are refused without it
    with LoopbackServer() as receiver:
        receiver.post_statuses = [500, 503]
        body = draft_body(files, callback_url=f"{receiver.url}/hook")
        job = AvatarJob.objects.get(code=post(client, token, body).json()["data"]["task_id"])
        assert deliver(job.pk) == "retry"
        delays = []
        for expected in ("retry", "sent"):
            schedule = Schedule.objects.get(name=schedule_name(job.pk))
            delays.append((schedule.next_run - timezone.now()).total_seconds())
            # While the retry waits out its backoff, new wake-ups do not send again.
            assert api_callback_if_changed(job_id=job.pk) is False
            schedule.delete()  # what django-q2's scheduler does with a ONCE schedule it runs
            assert deliver(**ast.literal_eval(schedule.kwargs)) == expected
        hits = receiver.posts("/hook")
    assert len(hits) == 3 and hits[0].body == hits[2].body
    assert 9 < delays[0] < 13 and 19 < delays[1] < 25  # 10 s, then 20 s (with jitter)
    assert not Schedule.objects.filter(name=schedule_name(job.pk)).exists()
    assert AvatarJob.objects.get(pk=job.pk).client_callback_status == "submitted"


def test_a_receiver_that_never_answers_is_given_up_on(client, token, files, settings):
    settings.ALLOW_PRIVATE_URLS = True
    settings.PUBLIC_BASE_URL = STUDIO  # callbacks are refused without it
    with LoopbackServer() as receiver:
        receiver.post_statuses = [500] * 20
        body = draft_body(files, callback_url=f"{receiver.url}/hook")
        job = AvatarJob.objects.get(code=post(client, token, body).json()["data"]["task_id"])
        assert deliver(job.pk, attempt=MAX_ATTEMPTS) == "abandoned"
    assert AvatarJob.objects.get(pk=job.pk).client_callback_status == "submitted"
    assert not Schedule.objects.filter(name=schedule_name(job.pk)).exists()


def test_callbacks_do_not_follow_redirects(client, token, files, settings):
    settings.ALLOW_PRIVATE_URLS = True
    settings.PUBLIC_BASE_URL = STUDIO  # callbacks are refused without it
    with LoopbackServer() as receiver:
        receiver.redirect("/hook", f"{receiver.url}/elsewhere", status=307)
        body = draft_body(files, callback_url=f"{receiver.url}/hook")
        job = AvatarJob.objects.get(code=post(client, token, body).json()["data"]["task_id"])
        assert deliver(job.pk) == "retry"
        assert receiver.requests_to("/elsewhere") == []


@pytest.mark.slow
def test_a_worker_sends_callbacks_in_order_and_the_link_works(
    transactional_db, live_server, media_root, tmp_path, settings, token, files
):
    """Drafts through a real qcluster: the receiver hears about each status once, in order,
    ending with `succeed` and a link to our copy that works."""
    settings.ALLOW_PRIVATE_URLS = True
    settings.PUBLIC_BASE_URL = live_server.url  # the server the create goes to, as the worker
    env = subprocess_env(media_root, ALLOW_PRIVATE_URLS="1", PUBLIC_BASE_URL=live_server.url)
    with Worker(env, tmp_path / "worker.log"), LoopbackServer() as receiver:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        task_ids = []
        for n in range(2):
            body = draft_body(files, callback_url=f"{receiver.url}/hook/{n}")
            reply = session.post(f"{live_server.url}{CREATE}", json=body, timeout=30)
            task_ids.append(reply.json()["data"]["task_id"])

        def all_done() -> bool:
            return all(
                any(h.json()["task_status"] == "succeed" for h in receiver.posts(f"/hook/{n}"))
                for n in range(2)
            )

        wait_for(all_done, timeout=60, interval=0.2)
        time.sleep(1.5)  # room for a stray duplicate to show up, if there were one
        per_task = [[h.json() for h in receiver.posts(f"/hook/{n}")] for n in range(2)]
    order = ["submitted", "processing", "succeed"]
    for task_id, bodies in zip(task_ids, per_task, strict=True):
        statuses = [b["task_status"] for b in bodies]
        assert statuses == sorted(set(statuses), key=order.index), statuses  # once each, in order
        assert statuses[-1] == "succeed" and {b["task_id"] for b in bodies} == {task_id}
        url = bodies[-1]["task_result"]["videos"][0]["url"]
        assert url.startswith(live_server.url)
        assert requests.get(url, timeout=10).content[4:8] == b"ftyp"
