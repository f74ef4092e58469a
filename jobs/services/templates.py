"""Team templates: a job's inputs kept under a name, to start new jobs and batches from."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from jobs.models import AvatarJob, JobTemplate
from jobs.services.jobs import clean_job_name


def template_from_job(*, job: AvatarJob, user: User | None, name: str) -> JobTemplate:
    """Save the job's portrait, voice-over (and its script, voice and speed when it was written
    as text), prompt and mode as a template of the job's team."""
    name = clean_job_name(name)
    audio = job.audio
    try:
        with transaction.atomic():
            return JobTemplate.objects.create(
                team=job.team,
                created_by=user,
                name=name,
                portrait=job.portrait,
                audio=audio,
                script=audio.script if audio else "",
                voice_id=audio.voice_id if audio else "",
                voice_speed=(audio.voice_speed or 1.0) if audio else 1.0,
                prompt=job.prompt,
                mode=job.mode,
            )
    except IntegrityError:
        raise ValidationError(
            f"The team already has a template named “{name}”: choose another name.",
            code="exists",
        ) from None
