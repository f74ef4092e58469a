"""Batches from a spreadsheet: checked in full (nothing made on a refusal), created whole,
followed live, cancelled, retried, reported and downloaded; the ZIP read safely."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from jobs.models import Asset, AvatarJob, Batch, JobTemplate
from jobs.services.batch_jobs import batch_create, batch_prepare
from jobs.services.batches import batch_check, batch_store_files
from jobs.voices import VOICES
from tests.helpers import finish, login, make_audio_file, make_portrait_bytes

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast")]

LONG_SCRIPT = "This sentence is far too long to be spoken in time. " * 120  # ~6000 chars


def files_on_disk(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.fixture
def voice_bytes(tmp_path: Path) -> bytes:
    return make_audio_file(tmp_path / "v.mp3", 3.0).read_bytes()


@pytest.fixture
def batch_zip(tmp_path: Path, voice_bytes: bytes) -> Path:
    path = tmp_path / "files.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("faces/face.jpg", make_portrait_bytes())
        z.writestr("tiny.jpg", make_portrait_bytes((200, 200)))
        z.writestr("voice.mp3", voice_bytes)
    return path


def rows_csv(*rows: str, header: str = "name,portrait,audio,script,mode,first_name") -> str:
    return "\n".join([header, *rows]) + "\n"


BAD_ROWS = rows_csv(
    "Good one,face.jpg,voice.mp3,,draft,",
    "Missing file,nothere.jpg,voice.mp3,,draft,",
    "Bad portrait,tiny.jpg,voice.mp3,,draft,",
    'Placeholder,face.jpg,,"Hello {nick}, welcome to the team.",draft,',
    f'Too long,face.jpg,,"{LONG_SCRIPT}",draft,',
    "Good one,face.jpg,voice.mp3,,draft,",
    "Bad mode,face.jpg,voice.mp3,,turbo,",
    "Library,Unknown portrait,voice.mp3,,draft,",
    "Over quota,face.jpg,voice.mp3,,draft,",
)


def post_check(client, csv_text: str, archive: Path | None, **extra):
    data = {"rows": csv_text, **extra}
    if archive is not None:
        data["archive"] = archive.open("rb")
    return client.post(reverse("jobs:batch-new"), data)


def test_bad_rows_are_refused_each_with_its_reason_and_nothing_is_made(
    client, owner, team, batch_zip, media_root
):
    team.quota_draft_seconds = 4  # room for the first good row's 3 s only
    team.save()
    login(client, owner)
    response = post_check(client, BAD_ROWS, batch_zip)
    assert response.status_code == 200
    page = response.content.decode()
    reasons = {
        2: "“nothere.jpg” is neither in the ZIP",
        3: "at least 300",
        4: "{nick} has no column",
        5: "the limit is 300 s",
        6: "is also row 1&#x27;s name",
        7: "Mode &#x27;turbo&#x27; does not exist",
        8: "“Unknown portrait” is neither in the ZIP nor a portrait in the team&#x27;s library",
        9: "over the team&#x27;s draft limit",
    }
    for number, reason in reasons.items():
        row = re.search(rf'<tr id="bad-row-{number}">(.*?)</tr>', page, re.S)
        assert row, f"row {number} not listed"
        assert reason in row.group(1), (number, row.group(1))
    assert 'id="bad-row-1"' not in page
    assert "Choose the ZIP again" in page
    assert AvatarJob.objects.count() == 0 and Batch.objects.count() == 0
    assert Asset.objects.count() == 0
    assert files_on_disk(media_root) == []


def test_fixed_rows_are_confirmed_then_created_together(client, owner, team, batch_zip):
    login(client, owner)
    good = rows_csv(
        "One,face.jpg,voice.mp3,,draft,",
        "Two,faces/face.jpg,voice.mp3,,draft,",
        ',face.jpg,,"Hello {first_name}, and welcome to the team. We are glad you are here."'
        ",draft,Ana",
    )
    response = post_check(client, good, batch_zip, name="Welcome pack")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Confirm the batch" in page and "Queue 3 jobs" in page
    assert 'id="batch-quota"' in page
    assert f"script, read by {VOICES[0].name} ({VOICES[0].id})" in page  # the default voice
    assert re.search(r'<td class="num">about \d+</td>', page)  # a script's length is a guess
    assert AvatarJob.objects.count() == 0
    # The ZIP's files are in the library once (both rows name the same portrait).
    assert Asset.objects.filter(kind=Asset.Kind.PORTRAIT).count() == 1
    token = re.search(r'name="plan" value="([^"]+)"', page).group(1)
    confirmed = client.post(reverse("jobs:batch-confirm"), {"plan": token})
    batch = Batch.objects.get()
    assert confirmed.status_code == 302 and confirmed["Location"] == batch.get_absolute_url()
    # A row speaks a script: the worker makes its voice-over, then queues every row at once.
    assert batch.state == Batch.State.PREPARING and not batch.jobs.exists()
    page = client.get(batch.get_absolute_url()).content.decode()
    assert "0 of 1 voice-over made" in page and "all 3 rows are queued at once" in page
    assert batch_prepare(batch.pk) == "ready"
    batch.refresh_from_db()
    assert batch.state == Batch.State.READY and batch.plan == [] and batch.voiceovers_made == 1
    jobs = list(batch.jobs.order_by("batch_row"))
    assert [j.batch_row for j in jobs] == [1, 2, 3]
    assert [j.name for j in jobs][:2] == ["One", "Two"]
    assert jobs[2].audio.script.startswith("Hello Ana, and welcome")
    assert {j.source for j in jobs} == {AvatarJob.Source.BATCH}
    assert batch.name == "Welcome pack"
    # Confirming twice makes nothing more.
    again = client.post(reverse("jobs:batch-confirm"), {"plan": token})
    assert again.status_code == 302 and Batch.objects.count() == 1
    assert AvatarJob.objects.count() == 3


def test_bad_rows_dropped_on_request(client, owner, team, batch_zip):
    login(client, owner)
    rows = rows_csv("One,face.jpg,voice.mp3,,draft,", "Two,nothere.jpg,voice.mp3,,draft,")
    response = post_check(client, rows, batch_zip, drop_bad="on")
    page = response.content.decode()
    assert "Left out: row 2" in page and "Queue 1 job" in page
    token = re.search(r'name="plan" value="([^"]+)"', page).group(1)
    client.post(reverse("jobs:batch-confirm"), {"plan": token})
    assert [j.name for j in Batch.objects.get().jobs.all()] == ["One"]


def test_forged_plan_is_refused(client, owner):
    login(client, owner)
    response = client.post(reverse("jobs:batch-confirm"), {"plan": "forged"})
    assert response.status_code == 302 and AvatarJob.objects.count() == 0


def test_spreadsheet_level_problems(owner, team):
    check = batch_check(team=team, csv_text="name,photo\nx,y\n")  # photo: filled, unused
    assert any("no “portrait” column" in p for p in check.problems)
    assert any("“photo” is not used" in p for p in check.problems)
    many = rows_csv(*[f"r{i},a.jpg,b.mp3,,draft," for i in range(501)])
    assert any("501 rows" in p for p in batch_check(team=team, csv_text=many).problems)
    assert batch_check(team=team, csv_text="").problems


def test_200_rows_of_library_files_check_in_bounded_queries(
    owner, team, portrait, audio, django_assert_max_num_queries
):
    rows = [f"Row {i},{portrait.name},{audio.name},,draft," for i in range(200)]
    with django_assert_max_num_queries(8):
        check = batch_check(team=team, csv_text=rows_csv(*rows))
    assert check.ok and len(check.rows) == 200


def test_each_distinct_zip_file_is_validated_once(owner, team, batch_zip, monkeypatch):
    from jobs.services import batches

    calls: list[str] = []
    real = batches.validate_portrait
    monkeypatch.setattr(batches, "validate_portrait", lambda f: calls.append(f.name) or real(f))
    rows = rows_csv(*[f"R{i},face.jpg,voice.mp3,,draft," for i in range(5)])
    with batch_zip.open("rb") as fh:
        assert batch_check(team=team, csv_text=rows, archive=fh).ok
    assert calls == ["face.jpg"]


# --- the ZIP, read safely ------------------------------------------------------------------


def zip_of(members: dict[str, bytes], tmp_path: Path) -> io.BytesIO:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    out.seek(0)
    return out


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ({"../evil.jpg": b"x"}, "path traversal"),
        ({"/etc/evil.jpg": b"x"}, "path traversal"),
        ({"big.jpg": b"\0" * (20 * 1024 * 1024)}, "zip bomb"),
        ({f"f{i}.jpg": b"" for i in range(1001)}, "holds 1,001 files"),
    ],
    ids=["dotdot", "absolute", "bomb", "members"],
)
def test_unsafe_zips_are_refused(owner, team, tmp_path, members, expected):
    check = batch_check(
        team=team, csv_text=rows_csv("A,big.jpg,x.mp3,,draft,"), archive=zip_of(members, tmp_path)
    )
    assert any(expected in p for p in check.problems), check.problems
    assert not check.rows and Asset.objects.count() == 0


def test_not_a_zip(owner, team):
    check = batch_check(
        team=team, csv_text=rows_csv("A,a.jpg,b.mp3,,draft,"), archive=io.BytesIO(b"no")
    )
    assert any("cannot be opened" in p for p in check.problems)


def test_the_batch_route_has_its_body_cap(client, owner):
    login(client, owner)
    response = client.post(
        reverse("jobs:batch-new"),
        data=b"x",
        content_type="text/plain",
        headers={"Content-Length": str(300 * 1024 * 1024)},
    )
    assert response.status_code == 413


# --- following a batch ----------------------------------------------------------------------


def make_batch(team, user, portrait, audio, rows: int = 3) -> Batch:
    plan = [
        {
            "row": n,
            "name": f"Row {n}",
            "mode": "draft",
            "prompt": "",
            "portrait": str(portrait.code),
            "audio": str(audio.code),
            "script": "",
            "voice": "",
            "speed": 1.0,
        }
        for n in range(1, rows + 1)
    ]
    return batch_create(team=team, user=user, plan=plan, name="Test batch")


def test_batch_page_polls_until_every_row_is_final(client, owner, team, portrait, audio):
    batch = make_batch(team, owner, portrait, audio)
    login(client, owner)
    page = client.get(batch.get_absolute_url()).content.decode()
    assert 'hx-trigger="every' in page and "3 queued" in page
    version = re.search(r"\?v=([^\"]+)\"", page).group(1)
    poll = client.get(batch.get_absolute_url() + f"?v={version}", headers={"HX-Request": "true"})
    assert poll.status_code == 204  # nothing changed
    for job in batch.jobs.all():
        finish(job)
    fresh = client.get(batch.get_absolute_url() + f"?v={version}", headers={"HX-Request": "true"})
    body = fresh.content.decode()
    assert fresh.status_code == 200 and "3 done" in body and "hx-trigger" not in body


def test_cancel_the_rest_and_retry_the_failed(client, owner, team, portrait, audio):
    batch = make_batch(team, owner, portrait, audio)
    first, second, third = batch.jobs.order_by("batch_row")
    finish(first)
    AvatarJob.objects.filter(pk=second.pk).update(status="failed", error_message="Bad luck.")
    login(client, owner)
    client.post(reverse("jobs:batch-cancel", args=[batch.code]))
    third.refresh_from_db()
    assert third.status == "canceled"
    client.post(reverse("jobs:batch-retry", args=[batch.code]))
    retried = batch.jobs.filter(batch_row=2).order_by("-id").first()
    assert retried.pk != second.pk and retried.status == "queued"
    page = client.get(batch.get_absolute_url()).content.decode()
    assert "1 done" in page and "1 queued" in page and "0 failed" in page


def test_report_and_streamed_zip(client, owner, team, portrait, audio):
    batch = make_batch(team, owner, portrait, audio)
    first, second, _ = batch.jobs.order_by("batch_row")
    finish(first)
    finish(second)
    AvatarJob.objects.filter(pk=second.pk).update(name="Second one")
    login(client, owner)
    report = client.get(reverse("jobs:batch-report", args=[batch.code]))
    rows = list(csv.reader(io.StringIO(report.content.decode())))
    assert rows[0] == ["row", "name", "status", "reason", "video", "share"]
    assert rows[1][:3] == ["1", "Row 1", "succeeded"] and rows[1][4].endswith(
        f"/jobs/{first.code}/video.mp4"
    )
    assert rows[3][:3] == ["3", "Row 3", "queued"] and rows[3][4] == ""
    response = client.get(reverse("jobs:batch-videos", args=[batch.code]))
    assert response.streaming and response["Content-Type"] == "application/zip"
    chunks = list(response.streaming_content)
    archive = zipfile.ZipFile(io.BytesIO(b"".join(chunks)))
    assert archive.namelist() == ["001-row-1.mp4", "002-second-one.mp4"]
    first.refresh_from_db()
    assert archive.read("001-row-1.mp4") == first.video.open("rb").read()
    assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}
    assert archive.testzip() is None


# --- who may do what --------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["batch-cancel", "batch-retry"])
def test_role_checks_on_batch_actions(
    client, action, owner, teammate, viewer, outsider, team, portrait, audio
):
    owners_batch = make_batch(team, owner, portrait, audio, rows=1)
    members_batch = make_batch(team, teammate, portrait, audio, rows=1)
    expect = [
        (teammate, members_batch, 302),  # members manage their own
        (teammate, owners_batch, 403),  # not others'
        (owner, members_batch, 302),  # admins manage all
        (viewer, members_batch, 403),
        (outsider, members_batch, 404),
    ]
    for user, batch, status in expect:
        login(client, user, team if user != outsider else None)
        response = client.post(reverse(f"jobs:{action}", args=[batch.code]))
        assert response.status_code == status, (user.username, action)
    login(client, viewer, team)
    assert client.get(owners_batch.get_absolute_url()).status_code == 200
    assert client.get(reverse("jobs:batch-new")).status_code == 403
    assert "New batch" not in client.get("/").content.decode()
    login(client, outsider)
    assert client.get(owners_batch.get_absolute_url()).status_code == 404
    assert client.get(reverse("jobs:batch-videos", args=[owners_batch.code])).status_code == 404


# --- the command ------------------------------------------------------------------------------


def test_command_refuses_bad_rows_and_creates_nothing(owner, tmp_path, batch_zip, capsys):
    path = tmp_path / "rows.csv"
    path.write_text(BAD_ROWS)
    with pytest.raises(CommandError) as exc:
        call_command(
            "generate_batch", "--user", "alice", "--csv", str(path), "--zip", str(batch_zip)
        )
    assert exc.value.returncode == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert any(line.startswith("row 2: portrait:") for line in lines)
    assert any(line.startswith("row 7: mode:") for line in lines)
    assert AvatarJob.objects.count() == 0 and Asset.objects.count() == 0


def test_command_creates_the_batch(owner, tmp_path, batch_zip, capsys):
    path = tmp_path / "rows.csv"
    path.write_text(rows_csv("One,face.jpg,voice.mp3,,draft,", "Two,face.jpg,voice.mp3,,draft,"))
    call_command("generate_batch", "--user", "alice", "--csv", str(path), "--zip", str(batch_zip))
    batch = Batch.objects.get()
    assert capsys.readouterr().out.strip().endswith(batch.get_absolute_url())
    assert batch.source == "command" and batch.jobs.count() == 2


def test_draft_batch_runs_to_the_end_with_a_worker(
    worker, owner, team, tmp_path, batch_zip, capsys
):
    path = tmp_path / "rows.csv"
    script = '"Hello {first_name}, and welcome to the team. We are glad you are here."'
    rows = [f"R{i},face.jpg,voice.mp3,,draft," for i in range(3)]
    path.write_text(rows_csv(*rows, f"Spoken,face.jpg,,{script},draft,Ana"))
    call_command(
        "generate_batch",
        "--user",
        "alice",
        "--csv",
        str(path),
        "--zip",
        str(batch_zip),
        "--wait",
        "--timeout",
        "240",
    )
    assert "4 done, 0 failed" in capsys.readouterr().out
    batch = Batch.objects.get()  # the worker made the voice-over, then queued all four
    assert batch.state == Batch.State.READY and batch.voiceovers_made == 1
    assert all(job.video for job in batch.jobs.all()) and batch.jobs.count() == 4


# --- templates ----------------------------------------------------------------------------------


@pytest.fixture
def template(team, owner, portrait):
    return JobTemplate.objects.create(
        team=team,
        created_by=owner,
        name="Welcome",
        portrait=portrait,
        script="Hello {first_name}, and welcome to the team. We are glad you are here.",
        voice_id=VOICES[0].id,
        voice_speed=1.0,
        prompt="smile at {first_name}",
        mode="draft",
    )


def test_save_as_template_from_a_job_page(client, owner, teammate, viewer, outsider, team, done):
    url = reverse("jobs:job-save-template", args=[done.code])
    login(client, owner)
    page = client.get(done.get_absolute_url()).content.decode()
    assert 'id="save-template"' in page
    assert client.post(url, {"name": "From a job"}).status_code == 302
    saved = JobTemplate.objects.get(name="From a job")
    assert (saved.portrait, saved.audio, saved.prompt) == (done.portrait, done.audio, done.prompt)
    # Saved again: the name is taken, so it becomes "(2)", and the page says which.
    again = client.post(url, {"name": "From a job"}, follow=True).content.decode()
    assert "Saved as the template “From a job (2)”" in again
    assert JobTemplate.objects.filter(name="From a job (2)").exists()
    login(client, teammate, team)
    assert client.post(url, {"name": "Bob's"}).status_code == 302
    login(client, viewer, team)
    assert client.post(url, {"name": "Vera's"}).status_code == 403
    login(client, outsider)
    assert client.post(url, {"name": "Oscar's"}).status_code == 404
    assert JobTemplate.objects.count() == 3


def test_new_job_and_new_batch_from_a_template(client, owner, team, template, outsider):
    login(client, owner)
    page = client.get(reverse("jobs:job-new") + f"?template={template.code}").content.decode()
    assert "smile at {first_name}" in page
    assert re.search(rf'value="{template.portrait.code}"[^>]*checked', page)
    page = client.get(reverse("jobs:batch-new") + f"?template={template.code}").content.decode()
    assert 'id="batch-template"' in page and f'value="{template.code}"' in page
    login(client, outsider)
    assert client.get(reverse("jobs:batch-new") + f"?template={template.code}").status_code == 404


def test_batch_from_a_template_fills_placeholders(owner, team, template):
    check = batch_check(
        team=team, csv_text="name,first_name\nFor Ana,Ana\nFor nobody,\n", template=template
    )
    assert check.rows[0].ok and check.rows[0].script.startswith("Hello Ana, and welcome")
    assert check.rows[0].prompt == "smile at Ana"
    assert check.rows[0].portrait == template.portrait
    assert any("{first_name} is empty" in p for p in check.rows[1].problems)
    plan = batch_store_files(check=check, team=team, user=owner)
    assert [entry["script"][:9] for entry in plan] == ["Hello Ana"]


def test_a_row_with_its_own_recording_takes_no_voice_from_the_template(
    owner, team, template, batch_zip
):
    with batch_zip.open("rb") as archive:
        check = batch_check(
            team=team,
            csv_text="name,audio,first_name\nOwn voice,voice.mp3,Ana\nSpoken,,Bo\n",
            archive=archive,
            template=template,
        )
    assert check.ok, [row.problems for row in check.bad_rows]
    own, spoken = check.rows
    assert (own.script, own.voice) == ("", "") and own.audio is not None
    assert spoken.script.startswith("Hello Bo") and spoken.voice == template.voice_id


def test_command_with_a_template(owner, team, template, tmp_path, capsys):
    path = tmp_path / "rows.csv"
    path.write_text("name,first_name\nFor Ana,Ana\n")
    with pytest.raises(CommandError) as exc:
        call_command("generate_batch", "--user", "alice", "--csv", str(path), "--template", "Nope")
    assert exc.value.returncode == 2 and "has no template named 'Nope'" in capsys.readouterr().err
    call_command("generate_batch", "--user", "alice", "--csv", str(path), "--template", "Welcome")
    assert batch_prepare(Batch.objects.get().pk) == "ready"  # the worker speaks the script
    job = Batch.objects.get().jobs.get()
    assert job.audio.script.startswith("Hello Ana") and job.prompt == "smile at Ana"


def test_batch_list_and_the_job_page_link(client, viewer, outsider, owner, team, portrait, audio):
    batch = make_batch(team, owner, portrait, audio, rows=1)
    login(client, viewer, team)
    assert reverse("jobs:batch-list") in client.get("/").content.decode()
    listing = client.get(reverse("jobs:batch-list")).content.decode()
    assert batch.get_absolute_url() in listing and "New batch" not in listing
    job = batch.jobs.get()
    assert batch.get_absolute_url() in client.get(job.get_absolute_url()).content.decode()
    login(client, outsider)
    assert batch.get_absolute_url() not in client.get(reverse("jobs:batch-list")).content.decode()


def test_quota_lowered_between_check_and_confirm_makes_nothing(owner, team, portrait, audio):
    from django.core.exceptions import ValidationError

    team.quota_draft_seconds = 5  # room for one 3 s row, not two
    team.save()
    plan = [
        {"row": n, "name": f"Row {n}", "mode": "draft", "prompt": "", "script": "",
         "portrait": str(portrait.code), "audio": str(audio.code), "voice": "", "speed": 1.0}
        for n in (1, 2)
    ]  # fmt: skip
    with pytest.raises(ValidationError) as exc:
        batch_create(team=team, user=owner, plan=plan, name="Too much")
    assert "Row 2:" in exc.value.messages[0] and "Nothing was queued" in exc.value.messages[0]
    assert Batch.objects.count() == 0 and AvatarJob.objects.count() == 0


def test_the_sample_spreadsheet_names_real_voices_and_lists_them(client, owner):
    login(client, owner)
    page = client.get(reverse("jobs:batch-new")).content.decode()
    sample = re.search(r'<pre class="sample">(.*?)</pre>', page, re.S).group(1)
    rows = list(csv.DictReader(io.StringIO(sample.replace("&quot;", '"'))))
    voices = {v.id for v in VOICES}
    assert all(row["voice"] in voices for row in rows if row["voice"])
    assert all(f"<code>{v.id}</code>" in page for v in VOICES)
