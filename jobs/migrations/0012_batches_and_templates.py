"""Batches and templates (issue 16): Batch and JobTemplate, and each job's batch and row.

Numbered 0013 as 0010-0012 are taken by other branches; it depends on 0009 only, and is re-pointed
at the merge.
"""

import django.db.models.deletion
import django.utils.timezone
import uuid
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0011_api_key_pairs_and_watermark'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='avatarjob',
            name='batch_row',
            field=models.PositiveIntegerField(blank=True, help_text="The batch spreadsheet's row (1 = first data row).", null=True),
        ),
        migrations.AlterField(
            model_name='avatarjob',
            name='source',
            field=models.CharField(choices=[('web', 'web'), ('api', 'API'), ('command', 'command'), ('batch', 'batch')], default='web', editable=False, max_length=10),
        ),
        migrations.CreateModel(
            name='Batch',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('code', models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ('name', models.CharField(max_length=120)),
                ('created', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                ('source', models.CharField(choices=[('web', 'web'), ('command', 'command')], default='web', editable=False, max_length=10)),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('team', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='batches', to='jobs.team')),
            ],
            options={
                'verbose_name_plural': 'batches',
                'ordering': ['-created', '-id'],
            },
        ),
        migrations.AddField(
            model_name='avatarjob',
            name='batch',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='jobs', to='jobs.batch'),
        ),
        migrations.CreateModel(
            name='JobTemplate',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('code', models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ('name', models.CharField(max_length=120)),
                ('created', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                ('script', models.TextField(blank=True, help_text='May hold {placeholders} for batch columns.')),
                ('voice_id', models.CharField(blank=True, max_length=64)),
                ('voice_speed', models.FloatField(default=1.0)),
                ('prompt', models.TextField(blank=True, max_length=2500)),
                ('mode', models.CharField(choices=[('draft', 'Draft (free, offline)'), ('std', 'Standard'), ('pro', 'Pro')], default='draft', max_length=10)),
                ('audio', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='jobs.asset')),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('portrait', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='jobs.asset')),
                ('team', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='job_templates', to='jobs.team')),
            ],
            options={
                'ordering': ['name'],
                'constraints': [models.UniqueConstraint(fields=('team', 'name'), name='template_name_unique_per_team')],
            },
        ),
    ]
