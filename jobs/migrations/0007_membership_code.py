"""Memberships get a UUID for their URLs (public ids are never sequential keys).

A unique column with a per-row default takes three steps: add it empty, give every existing
row its own UUID, then make it unique and required.
"""

import uuid

from django.db import migrations, models


def give_codes(apps, schema_editor):  # noqa: ANN001, ANN201, ARG001
    Membership = apps.get_model("jobs", "Membership")
    for membership in Membership.objects.filter(code__isnull=True).only("pk"):
        membership.code = uuid.uuid4()
        membership.save(update_fields=["code"])


class Migration(migrations.Migration):
    dependencies = [("jobs", "0006_estimate_index")]

    operations = [
        migrations.AddField(
            model_name="membership",
            name="code",
            field=models.UUIDField(editable=False, null=True),
        ),
        migrations.RunPython(give_codes, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="membership",
            name="code",
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
    ]
