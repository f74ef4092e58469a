# Depends on 0009: another branch adds 0010; the lead re-points this one at merge.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0010_avatarjob_draft_note"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="access_key",
            field=models.CharField(blank=True, max_length=64, null=True, unique=True),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="secret_encrypted",
            field=models.TextField(blank=True, editable=False),
        ),
        migrations.AddField(
            model_name="avatarjob",
            name="watermark",
            field=models.BooleanField(blank=True, null=True),
        ),
    ]
