"""Jobs get a name and a record of where they came from.

Existing jobs are named by the rule new ones get (default_job_name); jobs with an API token
came from the API. Which old jobs the command made was never recorded: they count as web.
"""

from typing import Any

from django.db import migrations, models

from jobs.services.jobs import default_job_name


def name_existing_jobs(apps: Any, schema_editor: Any) -> None:
    AvatarJob = apps.get_model("jobs", "AvatarJob")
    jobs = AvatarJob.objects.select_related("portrait", "audio").only(
        "prompt", "created", "api_token_id", "portrait__name", "audio__script"
    )
    batch = []
    for job in jobs.iterator(chunk_size=500):
        job.name = default_job_name(
            prompt=job.prompt,
            script=job.audio.script if job.audio_id else "",
            portrait_name=job.portrait.name,
            created=job.created,
        )
        job.source = "api" if job.api_token_id else "web"
        batch.append(job)
        if len(batch) >= 500:
            AvatarJob.objects.bulk_update(batch, ["name", "source"])
            batch = []
    AvatarJob.objects.bulk_update(batch, ["name", "source"])


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0008_asset_voice_engine"),
    ]

    operations = [
        migrations.AddField(
            model_name="avatarjob",
            name="name",
            field=models.CharField(
                default="",
                help_text="Shown on cards and share pages; by default the prompt's first words.",
                max_length=120,
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="avatarjob",
            name="source",
            field=models.CharField(
                choices=[("web", "web"), ("api", "API"), ("command", "command")],
                default="web",
                editable=False,
                max_length=10,
            ),
        ),
        migrations.RunPython(name_existing_jobs, migrations.RunPython.noop),
    ]
