"""std/pro jobs against the Kling simulator over real loopback HTTP: one task per job,
whatever fails; 1303 never fails a job; results stored; callbacks are only hints."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from jobs.engines.kling import (
    MAX_LOST_TASK_QUERIES,
    _create_payload,
    _on_task,
    dispatch,
    resume_submissions,
)
from jobs.engines.lifecycle import retry_delay, take
from jobs.ffmpeg import probe
from jobs.kling.client import KlingClient
from jobs.kling.simulator import KlingSimulator
from jobs.links import callback_secret, callback_url
from jobs.media.audio import validate_audio
from jobs.media.portraits import validate_portrait
from jobs.models import AvatarJob, KlingAccount
from jobs.services.assets import asset_store
from jobs.services.jobs import job_advance, job_create
from tests.helpers import fast_config, simulated_kling

pytestmark = pytest.mark.django_db
Status = AvatarJob.Status


@pytest.fixture
def sim(settings):
    with simulated_kling(settings, fast_config(max_concurrency=5), http_timeout=1) as simulator:
        yield simulator


@pytest.fixture
def inputs(team, owner, portrait_path, audio_path):
    return {
        "portrait": asset_store(team=team, user=owner, valid=validate_portrait(portrait_path)),
        "audio": asset_store(team=team, user=owner, valid=validate_audio(audio_path)),
    }


def new_job(team, user, inputs, mode="std") -> AvatarJob:
    return job_create(team=team, user=user, mode=mode, **inputs)


def step(job: AvatarJob) -> AvatarJob:
    """One worker pass on the job, as if its next attempt were due now."""
    AvatarJob.objects.filter(pk=job.pk).exclude(status__in=AvatarJob.TERMINAL).update(
        next_attempt_at=timezone.now()
    )
    job_advance(job_id=job.pk)
    job.refresh_from_db()
    return job


def drive(job: AvatarJob, *, limit: float = 20) -> AvatarJob:
    deadline = time.monotonic() + limit
    while not job.is_terminal and time.monotonic() < deadline:
        step(job)
        time.sleep(0.05)
    return job


def creates(sim: KlingSimulator, job: AvatarJob) -> int:
    return sim.snapshot()["creates_by_external_id"].get(job.external_task_id, 0)


def test_a_std_job_runs_to_a_stored_video(sim, team, owner, inputs, media_root):
    job = drive(new_job(team, owner, inputs))
    assert job.status == Status.SUCCEEDED, job.error_message
    assert job.task_id and job.submitting_at and job.submitted_at and job.finished_at
    assert job.units_charged is not None and job.units_charged > 0
    info = probe(Path(job.video.path))
    assert info and info.video and info.video.codec == "h264"
    assert Path(job.poster.path).read_bytes()[:3] == b"\xff\xd8\xff"
    assert job.source_url.startswith(sim.root_url)  # Kling's copy was only the source
    assert creates(sim, job) == 1
    # Running the finished job again changes nothing and asks Kling nothing.
    before = sim.snapshot()["requests_by_endpoint"]
    job_advance(job_id=job.pk)
    assert sim.snapshot()["requests_by_endpoint"] == before


def test_create_sends_bare_base64_and_our_uuid(sim, team, owner, inputs):
    job = drive(new_job(team, owner, inputs, mode="pro"))
    task = KlingClient.from_settings().get_task(job.external_task_id)
    assert task.task_id == job.task_id and task.external_task_id == str(job.code)
    assert sim.snapshot()["rejected_by_code"] == {}


@pytest.mark.parametrize("fault", ["slow_reply_rate", "drop_rate", "malformed_rate"])
def test_a_create_whose_reply_is_lost_ends_with_exactly_one_task(sim, team, owner, inputs, fault):
    sim.configure(**{fault: 1.0}, slow_reply_seconds=2.5)
    job = new_job(team, owner, inputs)
    job_advance(job_id=job.pk)  # dispatch: claims a slot
    job = step(job)  # the POST: Kling creates the task, the reply is lost
    assert job.status == Status.SUBMITTING and job.error_code == "outcome_unknown"
    assert creates(sim, job) == 1
    sim.configure(**{fault: 0.0})
    job = drive(job)
    assert job.status == Status.SUCCEEDED
    assert creates(sim, job) == 1  # adopted by external id, never POSTed again


def test_a_duplicate_id_refusal_adopts_the_existing_task(sim, team, owner, inputs):
    job = new_job(team, owner, inputs)
    payload = _create_payload(job)
    existing = KlingClient.from_settings().create_task(**payload)  # as if a lost POST had
    job = drive(job)
    assert job.status == Status.SUCCEEDED and job.task_id == existing.task_id
    assert sim.snapshot()["tasks_created"] == 1


def test_a_1303_storm_never_fails_a_job(sim, team, owner, inputs):
    sim.configure(error_rates={1303: 1.0})
    job = new_job(team, owner, inputs)
    for _ in range(6):
        job = step(job)
        assert job.status in (Status.QUEUED, Status.SUBMITTING)
    assert job.status == Status.QUEUED and job.error_code == "kling_1303"
    assert "free Kling slot" in job.error_message
    assert job.next_attempt_at > timezone.now()  # backing off, at least a second
    sim.configure(error_rates={})
    job = drive(job)
    assert job.status == Status.SUCCEEDED and job.error_message == ""


def test_backoff_grows_from_one_second():
    delays = [retry_delay(n) for n in range(1, 8)]
    assert 1.0 <= delays[0] <= 1.25
    assert all(b > a for a, b in zip(delays, delays[1:], strict=False)) or delays[-1] >= 60
    assert max(delays) <= 75


def test_a_content_refusal_fails_in_plain_words(sim, team, owner, inputs):
    sim.configure(error_rates={1301: 1.0})
    job = drive(new_job(team, owner, inputs))
    assert job.status == Status.FAILED and job.error_code == "kling_1301"
    assert "content check" in job.error_message and "does not charge" in job.error_message


def test_a_task_that_fails_at_kling_says_why(sim, team, owner, inputs):
    sim.configure(fail_rate=1.0)
    job = drive(new_job(team, owner, inputs))
    assert job.status == Status.FAILED and job.error_code == "kling_task_failed"
    assert "content check" in job.error_message and "does not charge" in job.error_message
    assert not job.video


def test_an_operator_error_pauses_submissions_without_blaming_the_job(sim, team, owner, inputs):
    sim.configure(error_rates={1102: 1.0})
    job = new_job(team, owner, inputs)
    job_advance(job_id=job.pk)
    job = step(job)
    account = KlingAccount.get()
    assert account.is_paused and account.pause_code == "1102"
    assert "resource pack" in account.pause_message
    assert job.status == Status.QUEUED and job.error_code == "paused"
    other = new_job(team, owner, inputs)
    assert dispatch() == []  # nothing goes out while paused
    sim.configure(error_rates={})
    resume_submissions()
    assert drive(job).status == Status.SUCCEEDED
    assert drive(other).status == Status.SUCCEEDED


def test_wrong_credentials_are_an_operator_problem(sim, team, owner, inputs, settings):
    settings.KLING_API_KEY = "not-the-key"
    job = new_job(team, owner, inputs)
    job_advance(job_id=job.pk)
    job = step(job)
    assert job.status == Status.QUEUED
    assert "credentials" in KlingAccount.get().pause_message


def test_slots_go_to_the_user_with_fewest_jobs_in_flight(
    sim, team, owner, teammate, inputs, settings
):
    settings.KLING_MAX_CONCURRENCY = 3
    alices = [new_job(team, owner, inputs) for _ in range(4)]
    bobs = [new_job(team, teammate, inputs) for _ in range(2)]
    claimed = set(dispatch())
    # Alice's oldest, then Bob's oldest (he has none in flight), then Alice's second.
    assert claimed == {alices[0].pk, bobs[0].pk, alices[1].pk}
    assert AvatarJob.objects.in_flight().count() == 3
    assert dispatch() == []  # no free slot: nothing more goes out


def test_callbacks_only_wake_the_job(sim, team, owner, inputs, client):
    job = new_job(team, owner, inputs)
    job_advance(job_id=job.pk)
    job = step(job)
    assert job.status in (Status.SUBMITTED, Status.PROCESSING)
    later = timezone.now() + timedelta(minutes=5)
    AvatarJob.objects.filter(pk=job.pk).update(next_attempt_at=later)
    url = reverse("kling-callback", args=[job.code, callback_secret(job)])
    forged = {
        "task_id": job.task_id,
        "task_status": "succeed",
        "task_result": {"videos": [{"url": "http://evil.example/x.mp4"}]},
    }

    bad = client.post(
        url.replace(callback_secret(job), "0" * 32), forged, content_type="application/json"
    )
    assert bad.status_code == 404
    assert AvatarJob.objects.get(pk=job.pk).next_attempt_at == later

    for _ in range(3):  # duplicates and replays
        assert client.post(url, forged, content_type="application/json").status_code == 204
    job.refresh_from_db()
    assert job.next_attempt_at <= timezone.now()
    assert job.status in (Status.SUBMITTED, Status.PROCESSING) and not job.source_url
    job = drive(job)
    assert job.status == Status.SUCCEEDED and "evil" not in job.source_url


def test_a_callback_repeating_what_we_know_costs_nothing(sim, team, owner, inputs, client):
    job = new_job(team, owner, inputs)
    job_advance(job_id=job.pk)
    job = step(job)
    later = timezone.now() + timedelta(minutes=5)
    AvatarJob.objects.filter(pk=job.pk).update(next_attempt_at=later)
    url = reverse("kling-callback", args=[job.code, callback_secret(job)])
    response = client.post(url, {"task_status": "processing"}, content_type="application/json")
    assert response.status_code == 204
    assert AvatarJob.objects.get(pk=job.pk).next_attempt_at == later
    assert client.post(url, b"not json", content_type="application/json").status_code == 204
    assert AvatarJob.objects.get(pk=job.pk).next_attempt_at <= timezone.now()


def test_a_callback_for_a_finished_job_changes_nothing(sim, team, owner, inputs, client):
    job = drive(new_job(team, owner, inputs))
    url = reverse("kling-callback", args=[job.code, callback_secret(job)])
    assert (
        client.post(url, {"task_status": "failed"}, content_type="application/json").status_code
        == 204
    )
    after = AvatarJob.objects.get(pk=job.pk)
    assert (after.status, after.updated) == (job.status, job.updated)


def test_callback_urls_are_sent_when_the_site_is_public(sim, team, owner, inputs, settings):
    settings.PUBLIC_BASE_URL = "https://studio.example.com"
    job = new_job(team, owner, inputs)
    assert callback_url(job) == (
        f"https://studio.example.com/hooks/kling/{job.code}/{callback_secret(job)}/"
    )
    assert _create_payload(job)["callback_url"] == callback_url(job)


def test_an_overdue_job_is_flagged_for_a_person(sim, team, owner, inputs):
    sim.configure(processing_seconds=60)
    job = new_job(team, owner, inputs)
    job_advance(job_id=job.pk)
    job = step(job)
    AvatarJob.objects.filter(pk=job.pk).update(deadline_at=timezone.now() - timedelta(seconds=1))
    job = step(job)
    assert job.status in (Status.SUBMITTED, Status.PROCESSING)
    assert job.error_code == "overdue" and "longer than expected" in job.error_message
    assert job.next_attempt_at > timezone.now() + timedelta(hours=5)  # no longer polled often


def test_query_errors_are_retried_not_fatal(sim, team, owner, inputs):
    job = new_job(team, owner, inputs)
    job_advance(job_id=job.pk)
    job = step(job)
    sim.configure(query_error_rates={5000: 1.0})
    for _ in range(3):
        job = step(job)
        assert job.status in (Status.SUBMITTED, Status.PROCESSING)
    sim.configure(query_error_rates={})
    assert drive(job).status == Status.SUCCEEDED


def test_a_result_that_is_not_a_video_is_retried(sim, team, owner, inputs):
    sim.configure(video_factory=lambda image, audio: b"<html>not a video</html>")
    job = new_job(team, owner, inputs)
    for _ in range(30):
        job = step(job)
        if job.status == Status.DOWNLOADING and job.attempts >= 2:
            break
        time.sleep(0.05)
    assert job.status == Status.DOWNLOADING and not job.video
    assert job.attempts >= 2


def test_a_gateway_without_lookup_by_external_id_still_adopts(sim, team, owner, inputs):
    sim.configure(lookup_by_external_id=False, drop_rate=1.0)
    job = new_job(team, owner, inputs)
    job_advance(job_id=job.pk)
    job = step(job)
    assert job.error_code == "outcome_unknown"
    sim.configure(drop_rate=0.0)
    job = drive(job)
    assert job.status == Status.SUCCEEDED and creates(sim, job) == 1


def test_a_failing_lookup_never_fails_or_resubmits(sim, team, owner, inputs):
    sim.configure(drop_rate=1.0)
    job = new_job(team, owner, inputs)
    job_advance(job_id=job.pk)
    job = step(job)
    sim.configure(drop_rate=0.0, query_error_rates={5000: 1.0})
    for _ in range(3):
        job = step(job)
        assert job.status == Status.SUBMITTING and job.error_code == "outcome_unknown"
    assert creates(sim, job) == 1
    sim.configure(query_error_rates={})
    assert drive(job).status == Status.SUCCEEDED and creates(sim, job) == 1


def test_a_queued_job_says_why_it_waits_when_the_key_is_gone(sim, team, owner, inputs, settings):
    job = new_job(team, owner, inputs)
    settings.KLING_API_KEY = ""
    job = step(job)
    assert job.status == Status.QUEUED and job.error_code == "not_configured"
    assert "no Kling key" in job.error_message
    settings.KLING_API_KEY = sim.config.api_key
    job = drive(job)
    assert job.status == Status.SUCCEEDED and job.error_message == ""


def test_a_refused_pasted_audio_id_asks_for_the_file(sim, team, owner, inputs):
    job = job_create(
        team=team,
        user=owner,
        portrait=inputs["portrait"],
        kling_audio_id="stale-id-123",
        mode="std",
    )
    job = drive(job)
    assert job.status == Status.FAILED
    assert "upload the voice-over as a file instead" in job.error_message


def test_a_passing_not_found_does_not_fail_a_long_running_job(sim, team, owner, inputs):
    sim.configure(processing_seconds=60)
    job = new_job(team, owner, inputs)
    job_advance(job_id=job.pk)
    job = step(job)
    AvatarJob.objects.filter(pk=job.pk).update(attempts=40)  # polled for a long while
    sim.configure(query_error_rates={1203: 1.0})
    for n in range(1, MAX_LOST_TASK_QUERIES):
        job = step(job)
        assert job.status in (Status.SUBMITTED, Status.PROCESSING)
        assert job.error_code == f"not_found:{n}"
    sim.configure(query_error_rates={}, processing_seconds=0.15)
    job = step(job)
    assert job.error_code == "" or job.status == Status.SUCCEEDED
    assert drive(job).status == Status.SUCCEEDED


def test_a_worker_that_lost_its_lease_cannot_end_the_job(sim, team, owner, inputs):
    """A worker that stalled past its lease comes back with Kling's answer: the worker that
    took the step over decides, not the stale one."""
    sim.configure(fail_rate=1.0)
    job = new_job(team, owner, inputs)
    job_advance(job_id=job.pk)
    job = step(job)
    assert job.status in (Status.SUBMITTED, Status.PROCESSING)
    client = KlingClient.from_settings()
    deadline = time.monotonic() + 10
    while (task := client.get_task(job.task_id)).status != "failed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    AvatarJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
    stale = AvatarJob.objects.get(pk=job.pk)
    assert take(stale, 0.01)  # worker A's lease, which runs out while it stalls
    time.sleep(0.05)
    other = AvatarJob.objects.get(pk=job.pk)
    assert take(other, 60)  # worker B takes the step over
    _on_task(stale, task)
    job.refresh_from_db()
    assert job.status in (Status.SUBMITTED, Status.PROCESSING)
    assert job.next_attempt_at == other.next_attempt_at and job.error_code == ""
    _on_task(other, task)
    job.refresh_from_db()
    assert job.status == Status.FAILED and job.error_code == "kling_task_failed"
