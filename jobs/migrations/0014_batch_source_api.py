from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0012_batches_and_templates"),
    ]

    operations = [
        migrations.AlterField(
            model_name="batch",
            name="source",
            field=models.CharField(
                choices=[("web", "web"), ("command", "command"), ("api", "API")],
                default="web",
                editable=False,
                max_length=10,
            ),
        ),
    ]
