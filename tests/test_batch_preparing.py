"""A batch with scripts: the worker makes its voice-overs, then queues every row or none.

The confirm request synthesizes nothing (200 scripts would outlast it); the worker's task takes
the batch with a lease, so a killed worker's batch is taken up again, and a refused row fails
the whole batch with its reason, keeping the voice-overs made so far for the next try.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q.brokers import get_broker

from jobs import cards
from jobs.models import Asset, AvatarJob, Batch
from jobs.services.batch_jobs import (
    PREPARE_ATTEMPTS,
    batch_cancel,
    batch_create,
    batch_eta,
    batch_prepare,
    batch_progress,
    batch_retry,
    batch_sweep,
)
from jobs.voices import VOICES
from tests.helpers import finish, login

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast")]

GREETING = "Hello {}, and welcome to the team. We are glad you are here with us today."


def plan_of(portrait, audio, scripts: list[str | None]) -> list[dict]:
    """One plan entry per row: a script to speak, or (None) the library recording."""
    return [
        {
            "row": n,
            "name": f"Row {n}",
            "mode": "draft",
            "prompt": "",
            "portrait": str(portrait.code),
            "audio": "" if script else str(audio.code),
            "script": script or "",
            "voice": VOICES[0].id if script else "",
            "speed": 1.0,
        }
        for n, script in enumerate(scripts, start=1)
    ]


def voiceovers(team) -> list[int]:
    return sorted(Asset.objects.for_team(team).exclude(script="").values_list("pk", flat=True))


@pytest.fixture
def preparing(team, owner, portrait, audio) -> Batch:
    plan = plan_of(
        portrait,
        audio,
        [GREETING.format("Ana"), None, GREETING.format("Bo"), GREETING.format("Ana")],
    )
    return batch_create(team=team, user=owner, plan=plan, name="Welcome")


def test_confirming_synthesizes_nothing_and_the_worker_queues_every_row(preparing, team):
    assert preparing.state == Batch.State.PREPARING
    assert preparing.voiceovers_needed == 2  # rows 1 and 4 say the same words
    assert not preparing.jobs.exists() and voiceovers(team) == []
    progress = batch_progress(preparing)
    assert progress.preparing and not progress.is_final and progress.total == 4

    assert batch_prepare(preparing.pk) == "ready"
    preparing.refresh_from_db()
    assert preparing.state == Batch.State.READY and preparing.plan == []
    assert preparing.voiceovers_made == 2 and len(voiceovers(team)) == 2
    jobs = list(preparing.jobs.order_by("batch_row"))
    assert [job.batch_row for job in jobs] == [1, 2, 3, 4]
    assert jobs[0].audio_id == jobs[3].audio_id != jobs[2].audio_id
    assert jobs[0].audio.script.startswith("Hello Ana")
    assert {job.status for job in jobs} == {AvatarJob.Status.QUEUED}
    # Run again (a duplicate message): nothing more is made.
    assert batch_prepare(preparing.pk) == "not due"
    assert preparing.jobs.count() == 4 and len(voiceovers(team)) == 2


def test_a_refused_row_queues_nothing_and_trying_again_makes_only_the_rest(preparing, team, owner):
    team.quota_draft_seconds = 5  # the quota moved between the confirm and the worker
    team.save()
    assert batch_prepare(preparing.pk) == "failed"
    preparing.refresh_from_db()
    assert preparing.state == Batch.State.FAILED and not preparing.jobs.exists()
    assert preparing.problem.startswith("Row ")
    assert "Nothing was queued" in preparing.problem
    made = voiceovers(team)
    assert len(made) == 2  # kept in the library for the next try
    assert batch_progress(preparing).is_final

    team.quota_draft_seconds = None
    team.save()
    assert batch_retry(batch=preparing, user=owner) == 4
    preparing.refresh_from_db()
    assert preparing.state == Batch.State.PREPARING and preparing.problem == ""
    assert batch_prepare(preparing.pk) == "ready"
    assert preparing.jobs.count() == 4
    assert voiceovers(team) == made  # nothing synthesized twice


def test_a_dead_workers_batch_is_taken_up_again_when_its_lease_runs_out(preparing):
    broker = get_broker()
    # A worker took the batch and died: its lease still runs, so nobody else takes it.
    Batch.objects.filter(pk=preparing.pk).update(
        attempts=1, next_attempt_at=timezone.now() + timedelta(seconds=60)
    )
    assert batch_prepare(preparing.pk) == "not due"
    before = broker.queue_size()
    assert batch_sweep() == 0 and broker.queue_size() == before
    # The lease ran out: the sweep wakes it once, however often it runs, and a worker takes it.
    Batch.objects.filter(pk=preparing.pk).update(next_attempt_at=timezone.now())
    assert batch_sweep() == 1 and batch_sweep() == 1
    assert broker.queue_size() == before + 1
    assert batch_prepare(preparing.pk) == "ready"
    preparing.refresh_from_db()
    assert preparing.attempts == 2 and preparing.jobs.count() == 4


def test_a_batch_whose_workers_keep_dying_fails_with_a_reason(preparing):
    Batch.objects.filter(pk=preparing.pk).update(attempts=PREPARE_ATTEMPTS)
    assert batch_prepare(preparing.pk) == "failed"
    preparing.refresh_from_db()
    assert preparing.state == Batch.State.FAILED and not preparing.jobs.exists()
    assert f"The worker stopped {PREPARE_ATTEMPTS} times" in preparing.problem


def test_a_batch_canceled_while_preparing_is_never_queued(client, preparing, owner, team):
    login(client, owner)
    page = client.get(preparing.get_absolute_url()).content.decode()
    assert "Making voice-overs" in page and 'hx-trigger="every' in page
    assert "Cancel the batch" in page and "queued row" not in page
    answer = client.post(reverse("jobs:batch-cancel", args=[preparing.code]), follow=True)
    assert "Canceled the batch: none of its rows was queued." in answer.content.decode()
    assert batch_prepare(preparing.pk) == "not due"
    preparing.refresh_from_db()
    assert preparing.state == Batch.State.CANCELED and not preparing.jobs.exists()
    page = client.get(preparing.get_absolute_url()).content.decode()
    assert "canceled before its rows were queued" in page and 'hx-trigger="every' not in page
    assert batch_cancel(batch=preparing) == 0


def test_a_failed_batch_page_says_why_and_offers_to_try_again(client, preparing, owner, team):
    team.quota_draft_seconds = 5
    team.save()
    batch_prepare(preparing.pk)
    login(client, owner)
    page = client.get(preparing.get_absolute_url()).content.decode()
    assert 'id="batch-problem"' in page and "Nothing was queued" in page
    assert "Try again" in page and 'hx-trigger="every' not in page
    listing = client.get(reverse("jobs:batch-list")).content.decode()
    assert "could not be queued" in listing
    team.quota_draft_seconds = None
    team.save()
    answer = client.post(reverse("jobs:batch-retry", args=[preparing.code]), follow=True)
    assert "Trying again: the voice-overs left are being made." in answer.content.decode()
    assert Batch.objects.get(pk=preparing.pk).state == Batch.State.PREPARING


def test_a_batch_of_files_only_is_queued_at_once(team, owner, portrait, audio):
    batch = batch_create(
        team=team, user=owner, plan=plan_of(portrait, audio, [None, None]), name="Files"
    )
    assert batch.state == Batch.State.READY and batch.jobs.count() == 2
    assert batch_prepare(batch.pk) == "not due"


# --- how long is left ---------------------------------------------------------------------


def test_the_eta_comes_from_the_team_s_history_then_from_the_batch_s_own_pace(
    team, owner, portrait, audio, queued, settings
):
    cards._estimates.clear()
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "workers": 2}
    batch = batch_create(
        team=team, user=owner, plan=plan_of(portrait, audio, [None] * 4), name="Four"
    )
    rows = batch_progress(batch).rows
    assert batch_eta(batch, rows) == (None, False)  # no history yet: no guess
    finish(queued, seconds=30)  # the team's one earlier draft took 30 s
    cards._estimates.clear()
    assert batch_eta(batch, rows)[0] == pytest.approx(60)  # 4 rows, 2 at a time, 30 s each

    now = timezone.now()
    first, second = rows[0], rows[1]
    # One row done and one running 10 s of its usual 30: one finished row is no pace yet
    # (two run at once), so the history says 20 s for the runner, then 30 s for the other two.
    AvatarJob.objects.filter(pk=first.pk).update(
        status=AvatarJob.Status.SUCCEEDED,
        processing_at=now - timedelta(seconds=12),
        finished_at=now - timedelta(seconds=2),
    )
    AvatarJob.objects.filter(pk=second.pk).update(
        status=AvatarJob.Status.PROCESSING, processing_at=now - timedelta(seconds=10)
    )
    assert batch_progress(batch).eta_seconds == pytest.approx(50, abs=0.5)
    for job, took in ((first, 10), (second, 20)):
        AvatarJob.objects.filter(pk=job.pk).update(
            status=AvatarJob.Status.SUCCEEDED,
            processing_at=now - timedelta(seconds=20),
            finished_at=now - timedelta(seconds=20 - took),
        )
    progress = batch_progress(batch)
    assert progress.done == 2
    # Two rows finished 20 s after the batch began: the other two take about as long.
    assert progress.eta_seconds == pytest.approx(20, abs=0.5) and progress.eta_from_pace


def test_the_batch_page_shows_the_eta(client, team, owner, portrait, audio, queued):
    cards._estimates.clear()
    finish(queued, seconds=30)
    batch = batch_create(
        team=team, user=owner, plan=plan_of(portrait, audio, [None] * 2), name="Two"
    )
    login(client, owner)
    page = client.get(batch.get_absolute_url()).content.decode()
    assert "Every row: about 30 s left</span>, judged from how long your team" in page


def test_the_admin_lists_batches_with_their_state_and_reason(admin_client, preparing, team):
    team.quota_draft_seconds = 5
    team.save()
    batch_prepare(preparing.pk)
    listing = admin_client.get(reverse("admin:jobs_batch_changelist") + "?state=failed")
    assert listing.status_code == 200 and "Welcome" in listing.content.decode()
    page = admin_client.get(reverse("admin:jobs_batch_change", args=[preparing.pk]))
    assert page.status_code == 200 and "Nothing was queued" in page.content.decode()
    assert admin_client.get(reverse("admin:jobs_batch_add")).status_code == 403


# --- share links for the whole batch ---------------------------------------------------------


def test_sharing_a_batch_answers_the_report_with_one_working_link_per_finished_row(
    client, team, owner, viewer, portrait, audio
):
    import csv
    import io

    from jobs.models import ShareLink

    batch = batch_create(
        team=team, user=owner, plan=plan_of(portrait, audio, [None] * 3), name="Three"
    )
    login(client, owner)
    url = reverse("jobs:batch-share", args=[batch.code])
    nothing = client.post(url, {"expires_in": "7"}, follow=True)
    assert "No row has finished yet" in nothing.content.decode()
    rows = batch_progress(batch).rows
    finish(rows[0])
    finish(rows[2])
    answer = client.post(url, {"expires_in": "7", "allow_download": "on"})
    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/csv")
    assert "no-store" in answer["Cache-Control"]
    report = list(csv.DictReader(io.StringIO(answer.content.decode())))
    assert [bool(r["share"]) for r in report] == [True, False, True]
    links = ShareLink.objects.filter(job__batch=batch)
    assert links.count() == 2 and all(link.expires_at and link.allow_download for link in links)
    client.logout()
    page = client.get(report[0]["share"].removeprefix("http://testserver"))
    assert page.status_code == 200 and "Row 1" in page.content.decode()
    # The plain report has the column, empty: a link's address is never shown twice.
    login(client, owner)
    plain = client.get(reverse("jobs:batch-report", args=[batch.code])).content.decode()
    assert "share" in plain.splitlines()[0] and "/s/" not in plain
    # A viewer may not make links.
    login(client, viewer, team)
    assert client.post(url, {"expires_in": ""}).status_code in (403, 404)
    assert ShareLink.objects.count() == 2


def test_the_batch_page_offers_only_what_would_do_something(client, team, owner, portrait, audio):
    batch = batch_create(
        team=team, user=owner, plan=plan_of(portrait, audio, [None] * 3), name="Three"
    )
    login(client, owner)
    page = client.get(batch.get_absolute_url()).content.decode()
    assert "Cancel the 3 queued rows" in page and "failed row" not in page
    assert 'id="batch-videos"' not in page and 'id="batch-share"' not in page
    first, second, third = batch_progress(batch).rows
    finish(first)
    AvatarJob.objects.filter(pk=second.pk).update(status=AvatarJob.Status.FAILED)
    AvatarJob.objects.filter(pk=third.pk).update(status=AvatarJob.Status.CANCELED)
    page = client.get(batch.get_absolute_url()).content.decode()
    assert "queued row" not in page and "Retry the 1 failed row" in page
    assert "Download all 1 video (ZIP)" in page and 'id="batch-share" hx-preserve' in page


def test_the_batch_list_counts_rows_and_finished_rows(
    client, team, owner, portrait, audio, preparing
):
    ready = batch_create(
        team=team, user=owner, plan=plan_of(portrait, audio, [None] * 3), name="Three"
    )
    finish(batch_progress(ready).rows[0])
    login(client, owner)
    page = client.get(reverse("jobs:batch-list")).content.decode()
    three = re.search(r"Three</a></td>(.*?)</tr>", page, re.S).group(1)
    assert re.findall(r'<td class="num">(\d+)</td>', three) == ["3", "1"]
    welcome = re.search(r"Welcome</a>(.*?)</tr>", page, re.S).group(1)
    assert "making voice-overs" in welcome
    assert re.findall(r'<td class="num">(\d+)</td>', welcome) == ["4", "0"]
