"""Monthly quotas per mode: a job that would cross the limit is refused before it is queued."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django_q.models import OrmQ

from jobs.engines.lifecycle import job_fail
from jobs.media.audio import validate_audio
from jobs.media.portraits import validate_portrait
from jobs.models import AvatarJob
from jobs.services.assets import asset_store
from jobs.services.jobs import job_cancel, job_create
from jobs.services.quotas import quota_set, seconds_used, usage_summary
from tests.helpers import make_audio_file

pytestmark = pytest.mark.django_db


@pytest.fixture
def assets(team, owner, portrait_path, tmp_path):
    portrait = asset_store(team=team, user=owner, valid=validate_portrait(portrait_path))
    audio = asset_store(
        team=team, user=owner, valid=validate_audio(make_audio_file(tmp_path / "v.mp3", 4.0))
    )
    return portrait, audio


def test_a_job_over_the_limit_is_refused_with_what_is_left(team, owner, assets, settings):
    portrait, audio = assets
    quota_set(team=team, mode="draft", seconds=10)
    job_create(team=team, user=owner, portrait=portrait, audio=audio)
    job_create(team=team, user=owner, portrait=portrait, audio=audio)
    queued_before = OrmQ.objects.count()
    with pytest.raises(ValidationError) as exc:
        job_create(team=team, user=owner, portrait=portrait, audio=audio)
    message = exc.value.messages[0]
    assert "needs 4 s" in message and "2 s of draft video left this month" in message
    assert "limit 10 s" in message
    assert AvatarJob.objects.count() == 2
    assert OrmQ.objects.count() == queued_before  # nothing queued


def test_failed_and_canceled_jobs_do_not_count(team, owner, assets):
    portrait, audio = assets
    quota_set(team=team, mode="draft", seconds=5)
    first = job_create(team=team, user=owner, portrait=portrait, audio=audio)
    assert job_cancel(job=first)
    second = job_create(team=team, user=owner, portrait=portrait, audio=audio)
    job_fail(job=second, code="x", message="broken")
    job_create(team=team, user=owner, portrait=portrait, audio=audio)


def test_limits_are_per_mode(team, owner, assets):
    portrait, audio = assets
    quota_set(team=team, mode="pro", seconds=0)
    job_create(team=team, user=owner, portrait=portrait, audio=audio, mode="draft")
    summary = usage_summary(team=team)
    assert summary["modes"]["draft"]["used"] == pytest.approx(4.0, abs=0.1)
    assert summary["modes"]["draft"]["limit"] is None
    assert summary["modes"]["pro"] == {"used": 0.0, "limit": 0, "left": 0}
    assert [(r["created_by__username"], r["mode"]) for r in summary["rows"]] == [("alice", "draft")]


def test_a_pasted_audio_id_reserves_the_longest_voice_over(team, owner, assets, settings):
    portrait, _ = assets
    settings.KLING_API_KEY = "key"
    settings.KLING_MAX_AUDIO_SECONDS = 300
    quota_set(team=team, mode="std", seconds=299)
    with pytest.raises(ValidationError, match="needs 300 s"):
        job_create(team=team, user=owner, portrait=portrait, kling_audio_id="abc-123", mode="std")
    quota_set(team=team, mode="std", seconds=300)
    job_create(team=team, user=owner, portrait=portrait, kling_audio_id="abc-123", mode="std")
    assert seconds_used(team=team, mode="std") == 300
