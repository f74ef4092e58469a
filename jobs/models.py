"""Teams, their assets and their avatar jobs.

AvatarJob lifecycle (the database is the truth; the queue is only a wake-up call):

    queued ──claim──▶ submitting ──accepted──▶ submitted ─▶ processing ─▶ downloading ─▶ succeeded
      │                   │ retryable before acceptance (1302/1303/5xx): back to queued
      └─▶ canceled        │ outcome unknown: stays submitting, resolved by external_task_id
                          └─ permanent error ─▶ failed (with a reason)

Draft jobs skip Kling: queued ──claim──▶ processing (rendering) ─▶ succeeded | failed.

Every transition is a conditional UPDATE that must change exactly one row (see
AvatarJob.transition), so running any step twice is harmless.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class Team(models.Model):
    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=120, unique=True)
    personal = models.BooleanField(
        default=False, help_text="Created with the account; its owner's own workspace."
    )
    created = models.DateTimeField(default=timezone.now, editable=False)
    members: models.ManyToManyField[User, Membership] = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="teams"
    )
    # Monthly limits of generated seconds per mode; empty means no limit.
    quota_draft_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Seconds of draft video a month (empty: no limit)."
    )
    quota_std_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Seconds of std video a month (empty: no limit)."
    )
    quota_pro_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Seconds of pro video a month (empty: no limit)."
    )
    # Kling units the team's std and pro jobs may use in a calendar month; empty: no limit.
    monthly_unit_budget = models.PositiveIntegerField(
        null=True, blank=True, help_text="Kling units a month for std and pro (empty: no limit)."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.slug:
            self.slug = unique_slug(self.name)
        super().save(*args, **kwargs)

    def quota_seconds(self, mode: str) -> int | None:
        return getattr(self, f"quota_{mode}_seconds", None)


def unique_slug(name: str) -> str:
    base = slugify(name)[:100] or "team"
    slug, n = base, 1
    while Team.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


class Membership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"
        VIEWER = "viewer", "Viewer"

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)  # in URLs
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "team"], name="one_membership_per_team"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"

    @property
    def can_write(self) -> bool:
        return self.role in (self.Role.ADMIN, self.Role.MEMBER)


class AssetQuerySet(models.QuerySet["Asset"]):
    def for_team(self, team: Team) -> AssetQuerySet:
        return self.filter(team=team)

    def portraits(self) -> AssetQuerySet:
        return self.filter(kind=Asset.Kind.PORTRAIT)

    def voiceovers(self) -> AssetQuerySet:
        return self.filter(kind=Asset.Kind.AUDIO)


def asset_upload_to(asset: Asset, filename: str) -> str:
    # Stored names are ours, never the uploader's: the original name is kept for display only.
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
    return f"assets/{asset.team.code}/{asset.kind}/{asset.code}.{ext}"


class Asset(models.Model):
    """A portrait or a voice-over owned by a team, validated before it was stored."""

    class Kind(models.TextChoices):
        PORTRAIT = "portrait", "Portrait"
        AUDIO = "audio", "Voice-over"

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="assets")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    file = models.FileField(upload_to=asset_upload_to, max_length=255)
    name = models.CharField(max_length=255, help_text="Display name (the original file name).")
    sha256 = models.CharField(max_length=64, db_index=True)
    size = models.PositiveBigIntegerField()
    format = models.CharField(
        max_length=10, help_text="Decoded format: jpeg, png, mp3, wav, m4a, aac."
    )
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True, help_text="Seconds of audio.")
    created = models.DateTimeField(default=timezone.now, editable=False)
    # A voice-over made from text: the script, the voice, and Kling's id for it (valid for
    # 30 days from kling_audio_made_at; our stored copy is used after that).
    script = models.TextField(blank=True)
    voice_id = models.CharField(max_length=64, blank=True)
    voice_speed = models.FloatField(null=True, blank=True)
    voice_engine = models.CharField(  # what made a voice-over: "kling" or "espeak"
        max_length=10, blank=True, help_text="What synthesized this voice-over, if anything."
    )
    kling_audio_id = models.CharField(max_length=100, blank=True)
    kling_audio_made_at = models.DateTimeField(null=True, blank=True)

    objects = AssetQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "kind", "sha256"], name="asset_stored_once_per_team"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("jobs:asset-file", args=[self.code])

    @property
    def content_type(self) -> str:
        return {
            "jpeg": "image/jpeg",
            "png": "image/png",
            "mp3": "audio/mpeg",
            "wav": "audio/wav",
            "m4a": "audio/mp4",
            "aac": "audio/aac",
        }.get(self.format, "application/octet-stream")


class AvatarJobQuerySet(models.QuerySet["AvatarJob"]):
    def for_team(self, team: Team) -> AvatarJobQuerySet:
        return self.filter(team=team)

    def active(self) -> AvatarJobQuerySet:
        return self.filter(status__in=AvatarJob.ACTIVE)

    def in_flight(self) -> AvatarJobQuerySet:
        """Jobs holding one of Kling's concurrency slots."""
        return self.exclude(mode=AvatarJob.Mode.DRAFT).filter(status__in=AvatarJob.HOLDING_SLOT)

    def due(self, now: Any = None) -> AvatarJobQuerySet:
        now = now or timezone.now()
        return self.active().filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))


def result_upload_to(job: AvatarJob, filename: str) -> str:
    return f"results/{job.team.code}/{filename}"


JOB_NAME_MAX_CHARS = 120
# The draft mode in one line, wherever the modes are described (forms, API docs, the command).
DRAFT_MODE_HELP = "a rough lip-synced preview; Kling makes the real one"


class Batch(models.Model):
    """Jobs made together from one spreadsheet: checked in full, then created in one go.

    Its jobs point at it (AvatarJob.batch) with their spreadsheet row (`batch_row`); a
    retried row gets a new job with the same row number, and the newest job speaks for it.

    A batch with scripts to speak starts PREPARING: the worker makes its voice-overs from
    `plan` (the confirmed rows), then all its jobs in one transaction, and it is READY; if a
    row cannot be made (a voice-over refused, the quota gone meanwhile) it is FAILED with the
    reason in `problem`, and nothing was queued. `next_attempt_at` is the preparing worker's
    lease, so a killed worker's batch is taken up again.
    """

    class Source(models.TextChoices):
        WEB = "web", "web"
        COMMAND = "command", "command"
        API = "api", "API"

    class State(models.TextChoices):
        PREPARING = "preparing", "making voice-overs"
        READY = "ready", "jobs made"
        FAILED = "failed", "could not be queued"
        CANCELED = "canceled", "canceled before it was queued"

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="batches")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    name = models.CharField(max_length=JOB_NAME_MAX_CHARS)
    created = models.DateTimeField(default=timezone.now, editable=False)
    source = models.CharField(
        max_length=10, choices=Source.choices, default=Source.WEB, editable=False
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.READY)
    plan = models.JSONField(
        default=list, blank=True, help_text="The rows to make, while preparing."
    )
    problem = models.TextField(blank=True, help_text="Why the batch could not be queued.")
    voiceovers_needed = models.PositiveIntegerField("voice-overs needed", default=0)
    voiceovers_made = models.PositiveIntegerField("voice-overs made", default=0)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name_plural = "batches"

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("jobs:batch-detail", args=[self.code])


class AvatarJob(models.Model):
    class Mode(models.TextChoices):
        DRAFT = "draft", "Draft (free, offline)"
        STD = "std", "Standard"
        PRO = "pro", "Pro"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SUBMITTING = "submitting", "Sending to Kling"
        SUBMITTED = "submitted", "Accepted by Kling"
        PROCESSING = "processing", "Generating"
        DOWNLOADING = "downloading", "Saving"
        SUCCEEDED = "succeeded", "Done"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    class Source(models.TextChoices):
        """Where a job was asked for (an API job's token is `api_token`)."""

        WEB = "web", "web"
        API = "api", "API"
        COMMAND = "command", "command"
        BATCH = "batch", "batch"

    ACTIVE = (
        Status.QUEUED,
        Status.SUBMITTING,
        Status.SUBMITTED,
        Status.PROCESSING,
        Status.DOWNLOADING,
    )
    HOLDING_SLOT = (Status.SUBMITTING, Status.SUBMITTED, Status.PROCESSING)
    TERMINAL = (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)
    # The per-stage timestamp each status sets when a job enters it.
    STAMPS: ClassVar[dict[str, str]] = {
        Status.SUBMITTING: "submitting_at",
        Status.SUBMITTED: "submitted_at",
        Status.PROCESSING: "processing_at",
        Status.DOWNLOADING: "downloading_at",
        Status.SUCCEEDED: "finished_at",
        Status.FAILED: "finished_at",
        Status.CANCELED: "finished_at",
    }

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="jobs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="avatar_jobs",
    )
    name = models.CharField(
        max_length=JOB_NAME_MAX_CHARS,
        help_text="Shown on cards and share pages; by default the prompt's first words.",
    )
    source = models.CharField(
        max_length=10, choices=Source.choices, default=Source.WEB, editable=False
    )
    portrait = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="portrait_jobs")
    audio = models.ForeignKey(
        Asset, on_delete=models.PROTECT, related_name="audio_jobs", null=True, blank=True
    )
    kling_audio_id = models.CharField(
        max_length=100, blank=True, help_text="A Kling TTS audio id, used instead of a file."
    )
    prompt = models.TextField(blank=True, max_length=2500)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.DRAFT)
    status = models.CharField(
        max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True
    )

    # Kling's side. external_task_id is our own UUID, sent on every create: one task per job.
    task_id = models.CharField(max_length=100, blank=True)
    external_task_id = models.CharField(max_length=64, unique=True, editable=False)

    created = models.DateTimeField(default=timezone.now, db_index=True)
    submitting_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    processing_at = models.DateTimeField(null=True, blank=True)
    downloading_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField(auto_now=True)

    attempts = models.PositiveIntegerField(
        default=0, help_text="How many times a worker has taken up this job's current step."
    )
    next_attempt_at = models.DateTimeField(
        null=True,
        blank=True,
        db_index=True,
        help_text="When the reconciler should look at this job next (a lease while running).",
    )
    deadline_at = models.DateTimeField(null=True, blank=True)

    source_url = models.URLField(
        max_length=2000, blank=True, help_text="Kling's copy of the result: a source only."
    )
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    draft_note = models.TextField(
        blank=True,
        help_text="Why this draft has no lip movement (no usable face); empty if it has.",
    )

    video = models.FileField(upload_to=result_upload_to, blank=True, max_length=255)
    poster = models.FileField(upload_to=result_upload_to, blank=True, max_length=255)
    video_size = models.PositiveBigIntegerField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True, help_text="Seconds of video.")
    units_charged = models.DecimalField(max_digits=10, decimal_places=3, null=True, blank=True)
    # Jobs made through the Kling-compatible API: the token, the caller's own id (unique per
    # team) and where to send status changes.
    api_token = models.ForeignKey(
        "ApiToken", on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs"
    )
    client_external_id = models.CharField(max_length=200, blank=True)
    client_callback_url = models.URLField(max_length=2000, blank=True)
    # The caller's watermark_info.enabled, passed on to Kling as given (None: not sent).
    watermark = models.BooleanField(null=True, blank=True)
    client_callback_status = models.CharField(
        max_length=12, blank=True, help_text="The last status the caller's callback was told."
    )
    notify_by_email = models.BooleanField(
        default=False, help_text="Email the creator when the job finishes."
    )
    notified_at = models.DateTimeField(null=True, blank=True)
    batch = models.ForeignKey(
        Batch, on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs"
    )
    batch_row = models.PositiveIntegerField(
        null=True, blank=True, help_text="The batch spreadsheet's row (1 = first data row)."
    )

    objects = AvatarJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            models.Index(fields=["team", "-created"], name="job_team_newest"),
            # The "about N min left" estimate: a team's recent finished jobs of one mode.
            models.Index(
                fields=["team", "mode", "status", "-finished_at"], name="job_team_mode_finished"
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "client_external_id"],
                condition=~Q(client_external_id=""),
                name="client_external_id_unique_per_team",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_mode_display()} job {self.code}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.external_task_id:
            self.external_task_id = str(self.code)
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("jobs:job-detail", args=[self.code])

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    @property
    def uses_kling(self) -> bool:
        return self.mode != self.Mode.DRAFT

    @property
    def prompt_line(self) -> str:
        """The prompt's first line, cut to fit under a card's title."""
        line = self.prompt.strip().split("\n", 1)[0].strip()
        return line if len(line) <= 90 else line[:89].rstrip() + "…"

    @property
    def source_label(self) -> str:
        """Where the job came from: "web", "API · <token name>" or "command".

        Cards read the token's name with the job (`token_name`, see jobs/cards.py).
        """
        if self.source != self.Source.API:
            return self.get_source_display()
        token = getattr(self, "token_name", None)
        if token is None and self.api_token_id:
            token = self.api_token.name if self.api_token else None
        return f"API · {token}" if token else "API"

    def transition(
        self,
        to: str,
        *,
        expect: str | tuple[str, ...],
        where: dict[str, Any] | Q | None = None,
        **fields: Any,
    ) -> bool:
        """Move to status `to` only if the row is still in `expect`; True if this call did it.

        The UPDATE carries the condition, so two workers racing for the same step cannot both
        win: exactly one row changes for the winner and none for the loser. On success the
        instance is refreshed with the written values. `where` adds conditions, such as the
        lease a worker holds (a dict of lookups, or a Q).
        """
        expected = (expect,) if isinstance(expect, str) else expect
        now = timezone.now()
        values: dict[str, Any] = {"status": to, "updated": now, **fields}
        stamp = self.STAMPS.get(to)
        if stamp and stamp not in values and to not in expected:
            values[stamp] = now
        rows = type(self).objects.filter(pk=self.pk, status__in=expected)
        if where is not None:
            rows = rows.filter(where) if isinstance(where, Q) else rows.filter(**where)
        changed = rows.update(**values)
        if changed == 1:
            for name, value in values.items():
                setattr(self, name, value)
            return True
        return False


class JobTemplate(models.Model):
    """A team's named starting point for jobs and batches: a portrait, a voice-over (a file, or
    a script with {placeholders} read by a voice at a speed), a prompt and a mode.

    Every input is optional: a batch row fills in what the template leaves out, and its
    columns fill the script's placeholders.
    """

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="job_templates")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    name = models.CharField(max_length=JOB_NAME_MAX_CHARS)
    created = models.DateTimeField(default=timezone.now, editable=False)
    portrait = models.ForeignKey(
        Asset, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    audio = models.ForeignKey(
        Asset, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    script = models.TextField(blank=True, help_text="May hold {placeholders} for batch columns.")
    voice_id = models.CharField(max_length=64, blank=True)
    voice_speed = models.FloatField(default=1.0)
    prompt = models.TextField(blank=True, max_length=2500)
    mode = models.CharField(
        max_length=10, choices=AvatarJob.Mode.choices, default=AvatarJob.Mode.DRAFT
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="template_name_unique_per_team"),
        ]

    def __str__(self) -> str:
        return self.name


class KlingAccount(models.Model):
    """The one Kling account this server uses; paused when Kling needs the operator.

    Auth and balance errors (bad key, resource pack used up) are not a job's fault: they
    pause all submissions until `paused_until`, and admins see why.
    """

    paused_until = models.DateTimeField(null=True, blank=True)
    pause_code = models.CharField(max_length=20, blank=True)
    pause_message = models.TextField(blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "Kling account"

    def __str__(self) -> str:
        return "Kling account"

    @classmethod
    def get(cls) -> KlingAccount:
        account, _ = cls.objects.get_or_create(pk=1)
        return account

    @property
    def is_paused(self) -> bool:
        return bool(self.paused_until and self.paused_until > timezone.now())


def hash_token(token: str) -> str:
    """Tokens are stored as their SHA-256: a database leak does not leak working links."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(24)  # 192 bits


class ShareLinkQuerySet(models.QuerySet["ShareLink"]):
    def live(self) -> ShareLinkQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )


class ShareLink(models.Model):
    """A link that shows one finished job's video to anyone who has it."""

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    job = models.ForeignKey(AvatarJob, on_delete=models.CASCADE, related_name="share_links")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    allow_download = models.BooleanField(default=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    views = models.PositiveIntegerField(default=0)
    last_viewed_at = models.DateTimeField(null=True, blank=True)

    objects = ShareLinkQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"Share link for {self.job}"

    @property
    def is_live(self) -> bool:
        if self.revoked_at:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()


class TeamInvite(models.Model):
    """An invitation link: expiring, single use, granting one role in one team."""

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invites")
    role = models.CharField(
        max_length=10, choices=Membership.Role.choices, default=Membership.Role.MEMBER
    )
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    used_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"Invite to {self.team} as {self.role}"

    @property
    def is_usable(self) -> bool:
        return self.used_at is None and self.expires_at > timezone.now()


class ApiToken(models.Model):
    """A personal token for the Kling-compatible API, scoped to one team; stored hashed."""

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=12, editable=False, help_text="To recognise it.")
    created = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # A key pair like Kling's: callers sign short-lived JWTs with the secret key (HS256), so the
    # secret must be kept, not just hashed: it is stored encrypted with a key derived from
    # SECRET_KEY (jobs/services/api_tokens.py). Both empty for an opaque Bearer token, whose
    # token_hash is then the only way in; a pair's token_hash is of a value nobody holds.
    access_key = models.CharField(max_length=64, unique=True, null=True, blank=True)
    secret_encrypted = models.TextField(blank=True, editable=False)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_pair(self) -> bool:
        return bool(self.access_key)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
