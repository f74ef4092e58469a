"""Batches over the API (POST /api/batches, GET /api/batches/<id> and its report and videos):
checked like the page (bad rows refused with each row's reason and nothing made), made like
the command, followed to the end with the draft engine; the API's tokens, envelope and codes;
another team's batch hidden; the route's body cap."""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import jwt
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from jobs.models import Asset, AvatarJob, Batch, JobTemplate, Membership
from jobs.services.api_tokens import api_key_pair_create, api_token_create, api_token_revoke
from jobs.services.batch_jobs import batch_prepare
from jobs.services.jobs import job_advance
from jobs.services.teams import team_create
from jobs.voices import VOICES
from tests.helpers import make_audio_file, make_portrait_bytes

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast")]

BATCHES = "/api/batches"
HEADER = "name,portrait,audio,script,mode"


def bearer(value: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {value}"}


@pytest.fixture
def token(owner, team) -> str:
    return api_token_create(user=owner, team=team, name="script")[1]


@pytest.fixture(scope="session")
def voice_bytes(tmp_path_factory) -> bytes:
    return make_audio_file(tmp_path_factory.mktemp("batch-api") / "v.mp3", 3.0).read_bytes()


@pytest.fixture
def zip_bytes(voice_bytes: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("faces/face.jpg", make_portrait_bytes())
        z.writestr("tiny.jpg", make_portrait_bytes((200, 200)))
        z.writestr("voice.mp3", voice_bytes)
    return out.getvalue()


def rows(*lines: str, header: str = HEADER) -> str:
    return "\n".join([header, *lines]) + "\n"


def post_form(client, token: str, csv_text: str, zip_data: bytes | None = None, **fields):
    data: dict[str, Any] = {"csv": SimpleUploadedFile("rows.csv", csv_text.encode()), **fields}
    if zip_data is not None:
        data["zip"] = SimpleUploadedFile("files.zip", zip_data, "application/zip")
    return client.post(BATCHES, data, **bearer(token))


def post_json(client, token: str, body: Any):
    return client.post(BATCHES, json.dumps(body), content_type="application/json", **bearer(token))


def advance_all(batch: Batch) -> None:
    """Run every row's job as the worker would (the draft rendered here) until it is final."""
    for _ in range(5):
        active = list(batch.jobs.exclude(status__in=AvatarJob.TERMINAL))
        if not active:
            return
        for job in active:
            AvatarJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
            job_advance(job_id=job.pk)
    raise AssertionError("the batch's jobs did not finish")


def test_a_good_batch_is_created_and_followed_to_done(client, token, zip_bytes):
    csv_text = rows("Hello Ana,face.jpg,voice.mp3,,draft", "Hello Ben,faces/face.jpg,voice.mp3,,")
    reply = post_form(client, token, csv_text, zip_bytes, name="Welcome pack")
    assert reply.status_code == 200, reply.content
    body = reply.json()
    assert body["code"] == 0
    data = body["data"]
    batch = Batch.objects.get()
    assert data["batch_id"] == str(batch.code) and data["name"] == "Welcome pack"
    assert batch.source == "api" and batch.jobs.count() == 2
    assert (data["total"], data["queued"], data["done"], data["finished"]) == (2, 2, 0, False)
    assert data["dropped_rows"] == []
    assert [r["status"] for r in data["rows"]] == ["queued", "queued"]
    assert data["links"]["self"] == f"http://testserver/api/batches/{batch.code}"
    assert data["links"]["page"] == f"http://testserver{batch.get_absolute_url()}"
    # The ZIP's portrait is stored once, though two rows name it (by path and by name).
    assert Asset.objects.filter(kind=Asset.Kind.PORTRAIT).count() == 1

    advance_all(batch)
    polled = client.get(data["links"]["self"], **bearer(token)).json()["data"]
    assert (polled["done"], polled["failed"], polled["finished"]) == (2, 0, True)
    assert [(r["row"], r["name"], r["status"]) for r in polled["rows"]] == [
        (1, "Hello Ana", "done"),
        (2, "Hello Ben", "done"),
    ]
    first = polled["rows"][0]
    assert first["reason"] == "" and first["task_id"] == str(batch.jobs.get(batch_row=1).code)
    video = client.get(first["video_url"].removeprefix("http://testserver"))  # no token needed
    assert video.status_code == 200 and video["Content-Type"] == "video/mp4"

    report = client.get(polled["links"]["report"], **bearer(token))
    assert report.status_code == 200 and report["Content-Type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(report.content.decode())))
    assert lines[0] == ["row", "name", "status", "reason", "video", "share"]
    assert lines[1][:3] == ["1", "Hello Ana", "succeeded"] and "/kling/files/" in lines[1][4]
    assert lines[1][5] == ""  # share links are made on the batch page, shown once
    videos = client.get(polled["links"]["videos"], **bearer(token))
    assert videos.status_code == 200 and videos["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(videos.streaming_content)))
    assert archive.namelist() == ["001-hello-ana.mp4", "002-hello-ben.mp4"]
    assert archive.testzip() is None


def test_json_body_with_library_files_and_a_template(client, token, team, owner, portrait, audio):
    JobTemplate.objects.create(
        team=team,
        created_by=owner,
        name="Welcome",
        portrait=portrait,
        script="Hello {first_name}, and welcome to the team. We are glad you are here.",
        voice_id=VOICES[0].id,
        prompt="smile at {first_name}",
        mode="draft",
    )
    csv_text = "name,first_name,prompt\nFor Ana,Ana,\nFor Ben,Ben,nod\n"
    reply = post_json(client, token, {"csv": csv_text, "template": "Welcome"})
    assert reply.status_code == 200, reply.content
    made = reply.json()["data"]
    # The scripts are spoken by the worker: until then the batch has no rows to show.
    assert (made["state"], made["rows"], made["total"]) == ("preparing", [], 2)
    assert (made["voiceovers_needed"], made["voiceovers_made"]) == (2, 0)
    assert batch_prepare(Batch.objects.get().pk) == "ready"
    polled = client.get(made["links"]["self"], **bearer(token)).json()["data"]
    assert polled["state"] == "ready" and polled["voiceovers_made"] == 2
    assert [r["status"] for r in polled["rows"]] == ["queued", "queued"]
    ana, ben = Batch.objects.get().jobs.order_by("batch_row")
    assert ana.portrait == portrait and ana.audio.script.startswith("Hello Ana, and welcome")
    assert ana.prompt == "smile at Ana"
    assert ben.audio.script.startswith("Hello Ben") and ben.prompt == "nod"


def test_bad_rows_are_refused_with_each_reason_and_nothing_is_made(
    client, token, zip_bytes, media_root
):
    csv_text = rows(
        "Good,face.jpg,voice.mp3,,draft",
        "Missing,nothere.jpg,voice.mp3,,draft",
        "Small,tiny.jpg,voice.mp3,,draft",
        "Turbo,face.jpg,voice.mp3,,turbo",
        "Good,face.jpg,voice.mp3,,draft",
    )
    reply = post_form(client, token, csv_text, zip_bytes)
    assert reply.status_code == 400
    body = reply.json()
    assert body["code"] == 1201
    assert body["message"].startswith("csv: nothing was created: 4 of 5 rows have problems")
    assert "drop_bad_rows=true" in body["message"]
    data = body["data"]
    assert data["created"] is False and data["problems"] == []
    reasons = {row["row"]: (row["name"], " ".join(row["problems"])) for row in data["rows"]}
    assert sorted(reasons) == [2, 3, 4, 5]
    assert reasons[2][0] == "Missing" and "“nothere.jpg” is neither in the ZIP" in reasons[2][1]
    assert "at least 300" in reasons[3][1]
    assert reasons[4][1].startswith("mode:") and "turbo" in reasons[4][1]
    assert "is also row 1's name" in reasons[5][1]
    assert Batch.objects.count() == 0 and AvatarJob.objects.count() == 0
    assert Asset.objects.count() == 0
    assert [p for p in Path(media_root).rglob("*") if p.is_file()] == []


def test_bad_rows_left_out_on_request(client, token, zip_bytes):
    csv_text = rows("One,face.jpg,voice.mp3,,draft", "Two,nothere.jpg,voice.mp3,,draft")
    reply = post_form(client, token, csv_text, zip_bytes, drop_bad_rows="true")
    assert reply.status_code == 200, reply.content
    data = reply.json()["data"]
    assert data["total"] == 1 and [r["name"] for r in data["rows"]] == ["One"]
    assert [(r["row"], r["name"]) for r in data["dropped_rows"]] == [(2, "Two")]
    assert "neither in the ZIP" in data["dropped_rows"][0]["problems"][0]
    # Every row bad: nothing to make, even when told to leave the bad ones out.
    reply = post_form(client, token, rows("Two,nothere.jpg,voice.mp3,,draft"), zip_bytes,
                      drop_bad_rows="1")  # fmt: skip
    assert reply.status_code == 400 and "no row passes" in reply.json()["message"]
    assert Batch.objects.count() == 1


def test_spreadsheet_problems_are_listed(client, token):
    reply = post_json(client, token, {"csv": "name,photo\nx,y\n"})
    assert reply.status_code == 400
    data = reply.json()["data"]
    assert any("no “portrait” column" in p for p in data["problems"])
    assert data["rows"][0]["problems"][0].startswith("portrait: empty")  # rows are checked too
    assert Batch.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({}, "csv", "is required"),
        ({"csv": ""}, "csv", "is required"),
        ({"csv": 12}, "csv", "must be a string of CSV text, not a number"),
        ({"csv": "a,b\n", "zip": "UEsDB..."}, "zip", "multipart/form-data"),
        ({"csv": "a,b\n", "drop_bad_rows": "yes"}, "drop_bad_rows", "true or false"),
        ({"csv": "a,b\n", "template": "Nope"}, "template", "no template named 'Nope'"),
        ({"csv": "a,b\n", "archive": "x"}, "'archive'", "is not a parameter of a batch"),
        ({"csv": "a,b\n", "name": "x" * 500}, "name", "the limit is 120"),
        ({"csv": "x" * (2 * 1024 * 1024 + 1)}, "csv", "larger than 2 MB"),
    ],
    ids=["none", "empty", "number", "zip-in-json", "drop", "template", "unknown", "name", "big"],
)
def test_bad_json_parameters_are_named(client, token, body, field, words):
    reply = post_json(client, token, body)
    assert reply.status_code == 400
    answer = reply.json()
    assert answer["code"] == 1201 and answer["message"].startswith(f"{field}: "), answer
    assert words in answer["message"]
    assert Batch.objects.count() == 0


def test_bad_forms_and_bodies_are_named(client, token):
    reply = client.post(BATCHES, **bearer(token))  # an empty form
    assert reply.status_code == 400 and reply.json()["message"].startswith("csv: is required")
    reply = client.post(BATCHES, "a,b", content_type="text/csv", **bearer(token))
    assert reply.status_code == 400 and "is not accepted here" in reply.json()["message"]
    reply = client.post(BATCHES, {"csv": "a,b\n", "zip": "text"}, **bearer(token))
    assert reply.json()["message"].startswith("zip: must be a file part")
    latin = SimpleUploadedFile("rows.csv", "name,portrait\nJosé,a.jpg\n".encode("latin-1"))
    reply = client.post(BATCHES, {"csv": latin}, **bearer(token))
    assert reply.status_code == 400 and "not UTF-8" in reply.json()["message"]
    reply = client.post(BATCHES, {"csv": "a,b\n", "drop_bad_rows": "maybe"}, **bearer(token))
    assert reply.json()["message"].startswith("drop_bad_rows: must be true or false")
    reply = client.post(BATCHES, {"csv": "a,b\n", "zip": b""}, **bearer(token))
    assert reply.status_code == 400
    assert client.get(BATCHES, **bearer(token)).status_code == 405
    reply = client.post(BATCHES, {"csv": "a,b\n", "csv2": "c"}, **bearer(token))
    assert reply.json()["message"] == "'csv2': is not a parameter of a batch: send csv, zip, " \
        "template, drop_bad_rows, name"  # fmt: skip


def test_not_a_zip_is_refused_with_nothing_made(client, token):
    reply = post_form(client, token, rows("A,a.jpg,b.mp3,,draft"), b"not a zip at all")
    assert reply.status_code == 400
    assert any(p.startswith("ZIP:") for p in reply.json()["data"]["problems"])
    assert Batch.objects.count() == 0


# --- who may ---------------------------------------------------------------------------------


def test_auth_failures_get_klings_codes(client, token, owner, team):
    csv_text = rows("A,a.jpg,b.mp3,,draft")
    reply = client.post(BATCHES, {"csv": csv_text})
    assert reply.status_code == 401 and reply.json()["code"] == 1001
    assert reply["WWW-Authenticate"].startswith("Bearer")
    reply = client.post(BATCHES, {"csv": csv_text}, **bearer("avs_not-a-real-token"))
    assert reply.status_code == 401 and reply.json()["code"] == 1002
    reply = client.post(BATCHES, {"csv": csv_text}, HTTP_AUTHORIZATION="Basic abc")
    assert reply.status_code == 401 and reply.json()["code"] == 1002
    revoked, raw = api_token_create(user=owner, team=team, name="old")
    api_token_revoke(token=revoked)
    reply = client.get(f"{BATCHES}/{'0' * 32}", **bearer(raw))
    assert reply.status_code == 401 and "was revoked" in reply.json()["message"]
    assert Batch.objects.count() == 0


def test_a_key_pairs_jwt_works_and_an_expired_one_does_not(client, owner, team, portrait, audio):
    pair, secret = api_key_pair_create(user=owner, team=team, name="tools")
    now = int(time.time())
    signed = jwt.encode({"iss": pair.access_key, "exp": now + 1800, "nbf": now - 5}, secret)
    csv_text = f"name,portrait,audio\nOne,{portrait.name},{audio.name}\n"
    reply = post_json(client, signed, {"csv": csv_text})
    assert reply.status_code == 200, reply.content
    batch_id = reply.json()["data"]["batch_id"]
    assert client.get(f"{BATCHES}/{batch_id}", **bearer(signed)).status_code == 200
    expired = jwt.encode({"iss": pair.access_key, "exp": now - 60}, secret)
    reply = client.get(f"{BATCHES}/{batch_id}", **bearer(expired))
    assert reply.status_code == 401 and reply.json()["code"] == 1004


def test_a_viewers_token_is_refused(client, teammate, team, portrait, audio):
    _, raw = api_token_create(user=teammate, team=team, name="bob's")
    Membership.objects.filter(user=teammate, team=team).update(role=Membership.Role.VIEWER)
    csv_text = f"name,portrait,audio\nOne,{portrait.name},{audio.name}\n"
    reply = post_json(client, raw, {"csv": csv_text})
    assert reply.status_code == 401 and reply.json()["code"] == 1002
    assert "can no longer make jobs" in reply.json()["message"]
    assert Batch.objects.count() == 0


def test_another_teams_batch_does_not_exist(client, token, owner, outsider, portrait, audio):
    mine = post_json(
        client, token, {"csv": f"name,portrait,audio\nA,{portrait.name},{audio.name}\n"}
    )
    batch_id = mine.json()["data"]["batch_id"]
    theirs = api_token_create(user=outsider, team=outsider.memberships.get().team)[1]
    for path in ("", "/report.csv", "/videos.zip"):
        reply = client.get(f"{BATCHES}/{batch_id}{path}", **bearer(theirs))
        assert reply.status_code == 404 and reply.json()["code"] == 1203, path
        assert "no batch" in reply.json()["message"]
    # A team of the owner's other than the token's: hidden too (the token names one team).
    other = team_create(user=owner, name="Other team")
    other_token = api_token_create(user=owner, team=other)[1]
    assert client.get(f"{BATCHES}/{batch_id}", **bearer(other_token)).status_code == 404
    for ref in ("not-a-uuid", "0" * 32):
        reply = client.get(f"{BATCHES}/{ref}", **bearer(token))
        assert reply.status_code == 404 and reply.json()["code"] == 1203
    reply = client.get(f"{BATCHES}/{batch_id}/elsewhere/", **bearer(token))
    assert reply.status_code == 404 and reply.json()["code"] == 1203
    assert client.get(f"{BATCHES}/{batch_id}/elsewhere/").status_code == 401
    reply = client.post(f"{BATCHES}/", {"csv": "a,b\n"}, **bearer(token))
    assert reply.status_code == 404 and "without a trailing slash" in reply.json()["message"]


def test_the_route_has_its_body_cap(client, token):
    reply = client.post(
        BATCHES,
        data=b"x",
        content_type="multipart/form-data; boundary=x",
        headers={"Content-Length": str(300 * 1024 * 1024)},
        **bearer(token),
    )
    assert reply.status_code == 413
    body = reply.json()
    assert body["code"] == 1200 and "at most 202.2 MB" in body["message"]
    assert "a ZIP of up to 200 MB" in body["message"]
    reply = client.get(
        f"{BATCHES}/{'0' * 32}",
        data=None,
        headers={"Content-Length": str(64 * 1024)},
        **bearer(token),
    )
    assert reply.status_code == 413


def test_the_openapi_document_puts_batches_at_the_root_only():
    from jobs.api.openapi import document

    paths = document("https://studio.example")["paths"]
    ours = [path for path in paths if "batch" in path]
    assert ours == [
        "/api/batches",
        "/api/batches/{batch_id}",
        "/api/batches/{batch_id}/report.csv",
        "/api/batches/{batch_id}/videos.zip",
    ]
    for path in ours:
        assert paths[path]["servers"] == [
            {"url": "https://studio.example", "description": "Batches answer at the root only."}
        ]
    body = paths["/api/batches"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "multipart/form-data"}


def test_a_text_field_sent_as_a_file_and_a_csv_past_the_forms_limit(client, token):
    template = SimpleUploadedFile("t.txt", b"Welcome")
    reply = client.post(BATCHES, {"csv": "a,b\n", "template": template}, **bearer(token))
    assert reply.json()["message"] == "template: must be a text field, not a file part"
    reply = client.post(BATCHES, {"csv": "name,portrait\n" + "x,y\n" * 700_000}, **bearer(token))
    assert reply.status_code == 400 and "send the CSV as a file part" in reply.json()["message"]


def test_a_quota_that_moved_since_the_check_is_1102(client, token, portrait, audio, monkeypatch):
    from django.core.exceptions import ValidationError

    from jobs.services import batch_runs

    def refuse(**kwargs: Any) -> None:
        raise ValidationError("Row 1: 0 s of draft video left. Nothing was queued.", code="quota")

    monkeypatch.setattr(batch_runs, "batch_create", refuse)
    reply = post_json(
        client, token, {"csv": f"name,portrait,audio\nA,{portrait.name},{audio.name}\n"}
    )
    assert reply.status_code == 429 and reply.json()["code"] == 1102
    assert reply.json()["message"].startswith("quota: Row 1: 0 s of draft video left")


def test_the_role_table_is_asked_too(teammate, team):
    """A viewer's token is refused at authentication already; the view asks the gate as well."""
    from jobs.api.batches import _access
    from jobs.api.contract import ApiError

    token, _ = api_token_create(user=teammate, team=team)
    assert _access(token, "create_batch").membership.user == teammate
    Membership.objects.filter(user=teammate, team=team).update(role=Membership.Role.VIEWER)
    with pytest.raises(ApiError) as refused:
        _access(token, "create_batch")
    assert refused.value.code == 1103 and "can only view and download" in refused.value.message
