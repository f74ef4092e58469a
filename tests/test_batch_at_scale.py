"""A 200-row batch end to end: refused whole for 10 bad rows of different kinds, then, fixed,
run to the end against the Kling simulator (5 slots) through a real worker, while a
teammate's single job made mid-batch gets the next free slot instead of waiting for the rest.
"""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Count
from django.utils import timezone

from jobs.kling.simulator import KlingSimulator
from jobs.media.audio import validate_audio
from jobs.media.portraits import validate_portrait
from jobs.models import AvatarJob, Batch, Membership, Team
from jobs.services.assets import asset_store
from jobs.services.batch_jobs import batch_create, batch_progress
from jobs.services.batches import batch_check, batch_store_files
from jobs.services.jobs import job_create
from jobs.voices import VOICES
from tests.helpers import Worker, fast_config, make_audio_file, make_portrait_bytes, subprocess_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROWS = 200
SLOTS = 5
HEADER = "name,portrait,audio,script,voice,speed,prompt,mode,first_name"
SCRIPT = '"Hello {first_name}, and welcome to the team. We are glad you are here."'
VOICE = VOICES[0].id
# Row number -> (the bad cells, a piece of the reason the check must give).
BAD = {
    7: ("Missing,nothere.jpg,voice.mp3,,,,,std,", "“nothere.jpg” is neither in the ZIP"),
    23: ("Small,tiny.jpg,voice.mp3,,,,,std,", "at least 300"),
    41: ("Broken,face.jpg,broken.mp3,,,,,std,", "Voice-over file is damaged"),
    58: (f'Nick,face.jpg,,"Hi {{nick}}.",{VOICE},1,,std,', "{nick} has no column"),
    77: (
        f'Long,face.jpg,,"{"This sentence is far too long to be spoken. " * 150}",{VOICE},1,,std,',
        "the limit is",
    ),
    96: ("Row 1,face.jpg,voice.mp3,,,,,std,", "is also row 1's name"),
    120: ("Turbo,face.jpg,voice.mp3,,,,,turbo,", "Mode 'turbo' does not exist"),
    141: ("Library,Nobody's face,voice.mp3,,,,,std,", "is neither in the ZIP nor a portrait"),
    163: (f"Voice,face.jpg,,{SCRIPT},no-such-voice,1,,std,Ana", "voice"),
    188: (f'Prompt,face.jpg,voice.mp3,,,,"{"smile " * 600}",std,', "the limit is"),
}
SPOKEN = {30, 90, 150}  # rows whose voice-over the worker makes from a script, through Kling


def good_row(n: int) -> str:
    if n in SPOKEN:
        return f"Row {n},face.jpg,,{SCRIPT},{VOICE},1,,std,Person{n}"
    return f"Row {n},face.jpg,voice.mp3,,,,,std,"


def rows_text(bad: bool) -> str:
    lines = [BAD[n][0] if bad and n in BAD else good_row(n) for n in range(1, ROWS + 1)]
    return "\n".join([HEADER, *lines]) + "\n"


@pytest.fixture
def archive(tmp_path: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("face.jpg", make_portrait_bytes())
        z.writestr("tiny.jpg", make_portrait_bytes((200, 200)))
        z.writestr("voice.mp3", make_audio_file(tmp_path / "v.mp3", 2.0).read_bytes())
        z.writestr("broken.mp3", b"ID3" + b"\0" * 2000)
    return buffer.getvalue()


def test_a_200_row_batch_is_refused_whole_then_runs_fairly_to_the_end(
    media_root, tmp_path, archive, portrait_path, audio_path, settings
):
    owner = get_user_model().objects.create_user("alice")
    team = Team.objects.get(memberships__user=owner)
    team.quota_draft_seconds = team.quota_std_seconds = team.quota_pro_seconds = None
    team.save()
    mate = get_user_model().objects.create_user("bob")
    Membership.objects.create(team=team, user=mate, role=Membership.Role.MEMBER)

    with KlingSimulator(fast_config(max_concurrency=SLOTS, processing_seconds=1.0)) as sim:
        settings.KLING_BASE_URL, settings.KLING_API_KEY = sim.base_url, sim.config.api_key
        settings.KLING_MAX_CONCURRENCY = SLOTS
        # 1. Ten bad rows of ten kinds: each is named with its reason, and nothing is made.
        check = batch_check(team=team, csv_text=rows_text(bad=True), archive=io.BytesIO(archive))
        assert not check.ok and len(check.rows) == ROWS
        bad = {row.number: " ".join(row.problems) for row in check.bad_rows}
        assert sorted(bad) == sorted(BAD), bad
        for number, (_, reason) in BAD.items():
            assert reason in bad[number], (number, bad[number])
        assert AvatarJob.objects.count() == 0 and Batch.objects.count() == 0
        assert team.assets.count() == 0

        # 2. Fixed: every row passes and the batch is made (its 3 scripts wait for the worker).
        check = batch_check(team=team, csv_text=rows_text(bad=False), archive=io.BytesIO(archive))
        assert check.ok, [(r.number, r.problems) for r in check.bad_rows]
        plan = batch_store_files(check=check, team=team, user=owner)
        batch = batch_create(team=team, user=owner, plan=plan, name="Two hundred")
        assert batch.state == Batch.State.PREPARING

        env = subprocess_env(
            media_root,
            KLING_BASE_URL=sim.base_url,
            KLING_API_KEY=sim.config.api_key,
            KLING_MAX_CONCURRENCY=str(SLOTS),
            KLING_POLL_SECONDS="1",
            Q_WORKERS="4",
            PUBLIC_BASE_URL="",
        )
        with Worker(env, tmp_path / "worker.log"):
            submitted = AvatarJob.objects.filter(batch=batch, submitting_at__isnull=False)
            deadline = time.monotonic() + 120
            while submitted.count() < 40 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert submitted.count() >= 40, (tmp_path / "worker.log").read_text()[-3000:]

            # 3. Mid-batch, a teammate's single job takes the next free slot.
            made_at = timezone.now()
            single = job_create(
                team=team,
                user=mate,
                mode="std",
                portrait=asset_store(team=team, user=mate, valid=validate_portrait(portrait_path)),
                audio=asset_store(team=team, user=mate, valid=validate_audio(audio_path)),
                name="Bob's one video",
            )
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                single.refresh_from_db()
                if single.submitting_at:
                    break
                time.sleep(0.1)
            assert single.submitting_at, "the teammate's job never got a slot"
            overtaken = submitted.filter(
                submitting_at__gt=made_at, submitting_at__lt=single.submitting_at
            ).count()
            waited = (single.submitting_at - made_at).total_seconds()
            assert overtaken <= 1, f"{overtaken} batch rows took a slot first ({waited:.1f} s)"

            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                batch.refresh_from_db()
                if batch_progress(batch).is_final:
                    break
                time.sleep(1)
        stats = sim.snapshot()

    # 4. Every row, and the teammate's job, ran once, never past the account's slots.
    progress = batch_progress(batch)
    statuses = dict(
        AvatarJob.objects.values_list("status").annotate(n=Count("pk")).order_by("status")
    )
    assert progress.done == ROWS and statuses == {"succeeded": ROWS + 1}, (
        statuses,
        (tmp_path / "worker.log").read_text()[-3000:],
    )
    assert stats["tasks_created"] == ROWS + 1
    assert stats["peak_concurrency"] <= SLOTS
    assert batch.voiceovers_made == len(SPOKEN)
    spoken = AvatarJob.objects.filter(batch=batch, batch_row__in=SPOKEN)
    assert all(job.audio.script.startswith("Hello Person") for job in spoken)
    print(f"teammate's job waited {waited:.1f} s, {overtaken} batch rows took a slot first")
