"""The Kling-compatible API's workflows: its jobs are ordinary jobs, marked with their token.

API jobs are made by job_create (same quotas, slots and dashboard) and carry the token, the
caller's own id (unique per team) and the callback address (jobs/api/callbacks.py).
"""

from __future__ import annotations

import uuid

from django.db import IntegrityError, transaction

from jobs.api.callbacks import api_callback_if_changed
from jobs.media.audio import ValidAudio
from jobs.media.portraits import ValidPortrait
from jobs.models import ApiToken, Asset, AvatarJob, Team
from jobs.services.jobs import job_create, store_inputs


def api_voiceover(*, team: Team, audio_id: str) -> Asset | None:
    """The team's stored voice-over named by `audio_id`: the id the API's own text-to-speech
    gave (the asset's code), or the id Kling knows it by (made by Kling's text-to-speech)."""
    if not audio_id:
        return None
    voiceovers = Asset.objects.for_team(team).voiceovers()
    try:
        code = uuid.UUID(audio_id)
    except ValueError:
        code = None
    if code is not None and (asset := voiceovers.filter(code=code).first()) is not None:
        return asset
    return voiceovers.filter(kling_audio_id=audio_id).first()


def api_task_find(*, team: Team, ref: str) -> AvatarJob | None:
    """A team's job by our task id (the job's code) or by the caller's external_task_id."""
    jobs = AvatarJob.objects.for_team(team)
    try:
        code = uuid.UUID(ref)
    except (ValueError, AttributeError):
        code = None
    if code is not None and (job := jobs.filter(code=code).first()) is not None:
        return job
    return jobs.filter(client_external_id=ref).first() if ref else None


def api_task_by_external_id(*, team: Team, external_id: str) -> AvatarJob | None:
    if not external_id:
        return None
    return AvatarJob.objects.for_team(team).filter(client_external_id=external_id).first()


def api_task_page(*, team: Team, page: int, size: int) -> list[AvatarJob]:
    """One page of the team's jobs, newest first (Kling's list order)."""
    start = (page - 1) * size
    return list(AvatarJob.objects.for_team(team).order_by("-created", "-id")[start : start + size])


def api_job_create(
    *,
    token: ApiToken,
    portrait: Asset | ValidPortrait,
    audio: Asset | ValidAudio | None = None,
    kling_audio_id: str = "",
    prompt: str = "",
    mode: str,
    callback_url: str = "",
    external_id: str = "",
    name: str = "",
    watermark: bool | None = None,
) -> tuple[AvatarJob, bool]:
    """Queue a job for an API caller; (job, created).

    The caller's external_task_id is unique per team: a repeat (a retry after a lost reply, or
    two requests racing) returns the job that already has it instead of making a second one.
    """
    team = token.team
    existing = api_task_by_external_id(team=team, external_id=external_id)
    if existing is not None:
        return existing, False
    # Stored first and kept: the transaction below may roll back, the files must not be lost.
    portrait, audio = store_inputs(team=team, user=token.user, portrait=portrait, audio=audio)
    try:
        with transaction.atomic():
            job = job_create(
                team=team,
                user=token.user,
                portrait=portrait,
                audio=audio,
                kling_audio_id=kling_audio_id,
                prompt=prompt,
                mode=mode,
                name=name,
                source=AvatarJob.Source.API,
            )
            # The unique constraint settles a race on the same external id: the loser's job
            # and its wake-up are rolled back together.
            AvatarJob.objects.filter(pk=job.pk).update(
                api_token=token,
                client_external_id=external_id,
                client_callback_url=callback_url,
                watermark=watermark,
            )
            if callback_url:
                job_id = job.pk
                transaction.on_commit(lambda: api_callback_if_changed(job_id=job_id))
    except IntegrityError:
        if not external_id:
            raise
        return AvatarJob.objects.get(team=team, client_external_id=external_id), False
    job.refresh_from_db()
    return job, True
