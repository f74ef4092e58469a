"""Team templates: a job's inputs kept under a name, to start new jobs and batches from."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from jobs.models import AvatarJob, JobTemplate
from jobs.services.jobs import clean_job_name

NAME_TRIES = 20  # "Welcome", "Welcome (2)" … before giving up on a free name


def _free_name(team_id: int, name: str) -> str:
    """The name, or "name (2)", "(3)"… when the team has a template called that already."""
    taken = {
        n.lower()
        for n in JobTemplate.objects.filter(team_id=team_id, name__istartswith=name).values_list(
            "name", flat=True
        )
    }
    for n in range(1, NAME_TRIES + 1):
        candidate = name if n == 1 else clean_job_name(f"{name} ({n})")
        if candidate.lower() not in taken:
            return candidate
    raise ValidationError(
        f"The team already has {NAME_TRIES} templates named like “{name}”: rename or delete "
        "some on the New batch page.",
        code="exists",
    )


def template_from_job(*, job: AvatarJob, user: User | None, name: str) -> JobTemplate:
    """Save the job's portrait, voice-over (and its script, voice and speed when it was written
    as text), prompt and mode as a template of the job's team, under the name or, when the
    team has that one already, the next free "name (2)"."""
    name = _free_name(job.team_id, clean_job_name(name))
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
    except IntegrityError:  # the same name, saved by someone else at this very moment
        raise ValidationError(
            f"The team already has a template named “{name}”: try again.", code="exists"
        ) from None


def template_rename(*, template: JobTemplate, name: str) -> JobTemplate:
    """Rename a template; refused when another of the team's templates has that name (in any
    case: "Welcome" and "welcome" would be told apart by no one)."""
    if not " ".join((name or "").split()):
        raise ValidationError("The name is empty: give the template a name.", code="name")
    name = clean_job_name(name)
    taken = (
        JobTemplate.objects.filter(team_id=template.team_id, name__iexact=name)
        .exclude(pk=template.pk)
        .first()
    )
    if taken is not None:
        raise ValidationError(
            f"The team already has a template named “{taken.name}”: choose another name.",
            code="exists",
        )
    try:
        with transaction.atomic():
            JobTemplate.objects.filter(pk=template.pk).update(name=name)
    except IntegrityError:  # the same name, saved by someone else at this very moment
        raise ValidationError(
            f"The team already has a template named “{name}”: choose another name.",
            code="exists",
        ) from None
    template.name = name
    return template


def template_delete(*, template: JobTemplate) -> None:
    """Delete a template. Nothing points at a template (a batch row keeps what it took from
    it), so the jobs and batches made from it, and its library files, all stay."""
    JobTemplate.objects.filter(pk=template.pk).delete()
