"""Chaos: 100 Kling jobs through a real qcluster with faults on, the worker SIGKILLed and
restarted several times. Every job must succeed, no external id may be created twice, and
Kling's concurrency must never exceed the slot limit."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Count

from jobs.kling.simulator import KlingSimulator
from jobs.media.audio import validate_audio
from jobs.media.portraits import validate_portrait
from jobs.models import AvatarJob, Team
from jobs.services.assets import asset_store
from jobs.services.jobs import job_create
from tests.helpers import Worker, fast_config, subprocess_env

JOBS = 100
SLOTS = 8


@pytest.mark.slow
def test_every_job_survives_faults_and_killed_workers(
    transactional_db, media_root, tmp_path, portrait_path, audio_path, settings
):
    faults = {
        "error_rates": {1303: 0.15, 1302: 0.05, 5000: 0.05},
        "query_error_rates": {5000: 0.05},
        "slow_reply_rate": 0.05,
        "slow_reply_seconds": 2.5,
        "drop_rate": 0.05,
        "malformed_rate": 0.03,
    }
    with KlingSimulator(fast_config(max_concurrency=SLOTS, **faults)) as sim:
        env = subprocess_env(
            media_root,
            KLING_BASE_URL=sim.base_url,
            KLING_API_KEY=sim.config.api_key,
            KLING_MAX_CONCURRENCY=str(SLOTS),
            KLING_HTTP_TIMEOUT="2",
            KLING_POLL_SECONDS="1",
            Q_WORKERS="4",
            PUBLIC_BASE_URL="",
        )
        settings.KLING_BASE_URL, settings.KLING_API_KEY = sim.base_url, sim.config.api_key
        users = [get_user_model().objects.create_user(f"user{i}") for i in range(3)]
        jobs = []
        for i in range(JOBS):
            user = users[i % len(users)]
            team = Team.objects.get(memberships__user=user)
            jobs.append(
                job_create(
                    team=team,
                    user=user,
                    mode="std",
                    portrait=asset_store(
                        team=team, user=user, valid=validate_portrait(portrait_path)
                    ),
                    audio=asset_store(team=team, user=user, valid=validate_audio(audio_path)),
                )
            )
        worker = Worker(env, tmp_path / "worker.log").start()
        try:
            deadline = time.monotonic() + 420
            kills = 0
            while time.monotonic() < deadline:
                time.sleep(5)
                done = AvatarJob.objects.filter(status__in=AvatarJob.TERMINAL).count()
                if done == JOBS:
                    break
                if kills < 4:
                    worker.kill()  # SIGKILL: sentinel and workers die mid-step
                    kills += 1
                    worker = Worker(env, tmp_path / "worker.log").start()
        finally:
            worker.stop()
        stats = sim.snapshot()

    statuses = dict(AvatarJob.objects.values_list("status").annotate(n=Count("pk")))
    assert kills == 4
    assert statuses == {"succeeded": JOBS}, (
        statuses,
        (tmp_path / "worker.log").read_text()[-3000:],
    )
    assert all(job.video and job.task_id for job in AvatarJob.objects.all())
    # The simulator refuses a second create with a known external id (as Kling does), so
    # "one task per job" means: exactly JOBS tasks made, one per distinct task id.
    assert stats["tasks_created"] == JOBS
    assert AvatarJob.objects.values("task_id").distinct().count() == JOBS
    assert stats["peak_concurrency"] <= SLOTS
    assert sum(stats["rejected_by_code"].get(c, 0) for c in (1303, 1302, 5000)) > 0
