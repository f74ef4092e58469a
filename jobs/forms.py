"""Forms: every upload goes through jobs.media, the same checks the command and API use."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm, UsernameField
from django.contrib.auth.models import User
from django.core import signing
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from jobs.media.audio import validate_audio
from jobs.media.limits import (
    NAME_MAX_CHARS,
    PROMPT_MAX_CHARS,
)
from jobs.media.portraits import validate_portrait
from jobs.media.prompts import validate_prompt
from jobs.models import DRAFT_MODE_HELP, JOB_NAME_MAX_CHARS, Asset, AvatarJob, Membership, Team
from jobs.services.batches import read_csv_upload
from jobs.services.jobs import check_mode, clean_job_name
from jobs.tts.script import check_audio_id, check_script
from jobs.voices import VOICES

PORTRAIT_ACCEPT = "image/jpeg,image/png,.jpg,.jpeg,.png"
AUDIO_ACCEPT = "audio/mpeg,audio/wav,audio/x-wav,audio/mp4,audio/aac,.mp3,.wav,.m4a,.aac"
NO_EMAIL = "Add an email address to your account (the Account page) to get notified."
REFUSAL_SALT = "jobs.new-job.refused-file"
REFUSAL_MAX_AGE = 24 * 3600  # seconds a page may sit open between the check and the submit


def refusal_token(reasons: list[str]) -> str:
    """What the live file check found wrong, signed, for the form to carry to the submit.

    The check answers a fresh (empty) file input, so the submit has no file to check again:
    without this it could only say "choose a portrait" instead of what was wrong with it.
    """
    return signing.dumps(reasons, salt=REFUSAL_SALT, compress=True)


def read_refusal(token: str) -> list[str]:
    """The reasons refusal_token() signed, or none for a missing, forged or stale token."""
    try:
        reasons = signing.loads(token, salt=REFUSAL_SALT, max_age=REFUSAL_MAX_AGE)
    except signing.BadSignature:
        return []
    return [str(r) for r in reasons] if isinstance(reasons, list) else []


# A short name and one line of explanation each, shown on the mode's radio button.
MODE_HELP: dict[str, tuple[str, str]] = {
    AvatarJob.Mode.DRAFT: (
        "Draft",
        f"Free and offline: {DRAFT_MODE_HELP}.",
    ),
    AvatarJob.Mode.STD: ("Standard", "Kling animates the face. Good quality, uses Kling credits."),
    AvatarJob.Mode.PRO: ("Pro", "Kling's best: finer motion and detail, costs more credits."),
}


class NewJobForm(forms.Form):
    """A portrait and a voice-over (uploaded now, or from the library), a prompt and a mode.

    An upload wins over a library pick: choosing a file is the more deliberate act. A pasted
    Kling audio id (std and pro only) wins over both, and the job is sent with no file.
    """

    portrait = forms.FileField(
        required=False,
        label="Portrait",
        help_text="JPEG or PNG, up to 10 MB, both sides at least 300 px.",
        widget=forms.FileInput(attrs={"accept": PORTRAIT_ACCEPT}),
    )
    portrait_asset = forms.ModelChoiceField(
        queryset=Asset.objects.none(),
        required=False,
        to_field_name="code",
        label="Portrait from the library",
        widget=forms.RadioSelect,
    )
    audio = forms.FileField(
        required=False,
        label="Voice-over",
        help_text="MP3, WAV, M4A or AAC, up to 5 MB, 2 seconds to 5 minutes long.",
        widget=forms.FileInput(attrs={"accept": AUDIO_ACCEPT}),
    )
    audio_asset = forms.ModelChoiceField(
        queryset=Asset.objects.none(),
        required=False,
        to_field_name="code",
        label="Voice-over from the library",
        widget=forms.RadioSelect,
    )
    kling_audio_id = forms.CharField(
        required=False,
        max_length=200,  # check_audio_id says what is wrong with anything past 100
        label="Kling audio id",
        help_text=(
            "The id Kling's text-to-speech gave you, used instead of a file; std and pro only "
            "(a draft needs the file). Kling keeps its audio for 30 days: if it refuses the id, "
            "the job will ask you for the file."
        ),
    )
    prompt = forms.CharField(
        required=False,
        # The textarea allows the limit; validate_prompt gives the message (it counts \r\n once).
        widget=forms.Textarea(attrs={"rows": 3, "maxlength": PROMPT_MAX_CHARS}),
        help_text="Optional: actions, emotions, camera movement.",
    )
    name = forms.CharField(
        required=False,
        # The input allows the limit; clean_job_name gives the message.
        widget=forms.TextInput(attrs={"maxlength": JOB_NAME_MAX_CHARS}),
        label="Name",
        help_text="Shown on the job's card and share page. Empty: the prompt's first words.",
    )
    mode = forms.ChoiceField(
        choices=AvatarJob.Mode.choices, initial=AvatarJob.Mode.DRAFT, widget=forms.RadioSelect
    )
    notify_by_email = forms.BooleanField(required=False, label="Email me when it's done")

    def __init__(self, *args: Any, team: Team, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.team, self.user = team, user
        for name, assets in (
            ("portrait_asset", Asset.objects.for_team(team).portraits()),
            ("audio_asset", Asset.objects.for_team(team).voiceovers()),
        ):
            field = self.fields[name]
            assert isinstance(field, forms.ModelChoiceField)
            field.queryset = assets

    def clean_portrait(self) -> Any:
        upload = self.cleaned_data.get("portrait")
        return validate_portrait(upload) if upload else None

    def clean_audio(self) -> Any:
        upload = self.cleaned_data.get("audio")
        return validate_audio(upload) if upload else None

    def clean_kling_audio_id(self) -> str:
        value = self.cleaned_data.get("kling_audio_id", "")
        return check_audio_id(value) if value.strip() else ""

    def clean_prompt(self) -> str:
        return validate_prompt(self.cleaned_data.get("prompt"))

    def clean_name(self) -> str:
        value = self.cleaned_data.get("name") or ""
        return clean_job_name(value) if value.strip() else ""  # empty: job_create names it

    def clean_mode(self) -> str:
        mode = self.cleaned_data["mode"]
        check_mode(mode)
        return mode

    def clean_notify_by_email(self) -> bool:
        wanted = bool(self.cleaned_data.get("notify_by_email"))
        if wanted and not getattr(self.user, "email", ""):
            # The page disables the box; a hand-made post is refused rather than ignored.
            raise ValidationError(NO_EMAIL, code="no_email")
        return wanted

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if (
            not data.get("portrait")
            and not data.get("portrait_asset")
            and "portrait" not in self.errors
        ):
            self.add_error(
                "portrait",
                self._refused("portrait")
                or ValidationError(
                    "Choose a portrait: upload a photo or pick one from the library."
                ),
            )
        if data.get("kling_audio_id") and data.get("mode") == AvatarJob.Mode.DRAFT:
            self.add_error(
                "kling_audio_id",
                ValidationError(
                    "A draft is rendered on this server and needs the voice-over as a file: "
                    "choose Standard or Pro to use a Kling audio id, or clear the id."
                ),
            )
        chosen = data.get("audio") or data.get("audio_asset") or data.get("kling_audio_id")
        if not chosen and not {"audio", "kling_audio_id"} & self.errors.keys():
            self.add_error(
                "audio",
                self._refused("audio")
                or ValidationError(
                    "Choose a voice-over: upload a recording or pick one from the library."
                ),
            )
        return data

    def _refused(self, kind: str) -> ValidationError | None:
        """The live check's own reasons for refusing the file last chosen here, if any."""
        reasons = read_refusal(self.data.get(f"{kind}_refused", ""))
        return ValidationError(reasons, code="refused") if reasons else None


class JobFilterForm(forms.Form):
    """The dashboard's filters; an unknown value is ignored rather than refused."""

    STATUS_GROUPS = {
        "running": AvatarJob.ACTIVE,
        "done": (AvatarJob.Status.SUCCEEDED,),
        "failed": (AvatarJob.Status.FAILED,),
        "canceled": (AvatarJob.Status.CANCELED,),
    }

    q = forms.CharField(
        required=False,
        max_length=100,
        label="Search",
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Search prompts and file names"}
        ),
    )
    status = forms.ChoiceField(
        required=False,
        label="Status",
        choices=[
            ("", "All"),
            ("running", "Running"),
            ("done", "Done"),
            ("failed", "Failed"),
            ("canceled", "Canceled"),
        ],
    )
    mode = forms.ChoiceField(
        required=False,
        label="Mode",
        choices=[("", "All"), ("draft", "Draft"), ("std", "Standard"), ("pro", "Pro")],
    )
    who = forms.ChoiceField(
        required=False,
        label="Made by",
        choices=[("", "Everyone"), ("mine", "Me")],
    )

    def values(self) -> dict[str, str]:
        """The valid, non-empty filters (invalid ones are dropped, never an error page)."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return {k: v for k, v in data.items() if v and k not in self.errors}

    def selects(self) -> list[tuple[str, str, list[tuple[str, str, bool]]]]:
        """(name, label, [(value, label, selected)]) for each select, ready for the template
        (rendering bound fields and their widgets took a good part of the page's time)."""
        values = self.values()
        return [
            (
                name,
                str(field.label),
                [(v, str(text), v == values.get(name, "")) for v, text in _choices(field)],
            )
            for name, field in self.fields.items()
            if isinstance(field, forms.ChoiceField)
        ]

    def condition(self, user: Any) -> Q:
        """The filters as one condition, so the poll can OR it with "the cards on the page"."""
        values = self.values()
        cond = Q()
        if status := values.get("status"):
            cond &= Q(status__in=self.STATUS_GROUPS[status])
        if mode := values.get("mode"):
            cond &= Q(mode=mode)
        if values.get("who") == "mine":
            cond &= Q(created_by=user)
        if text := values.get("q", "").strip():
            cond &= (
                Q(name__icontains=text)
                | Q(prompt__icontains=text)
                | Q(portrait__name__icontains=text)
                | Q(audio__name__icontains=text)
            )
        return cond


class AssetRenameForm(forms.Form):
    name = forms.CharField(
        max_length=NAME_MAX_CHARS,
        label="Name",
        error_messages={"required": "Give the file a name."},
    )


class TemplateRenameForm(forms.Form):
    name = forms.CharField(
        max_length=JOB_NAME_MAX_CHARS,
        label="New name",
        error_messages={
            "required": "The name is empty: give the template a name.",
            "max_length": f"The name is too long: shorten it to {JOB_NAME_MAX_CHARS} "
            "characters or fewer.",
        },
    )


class VoiceoverForm(forms.Form):
    """A voice-over written as text: the script, the voice that reads it, and how fast.

    The fields only parse. check_script judges them (the very checks generate_avatar and
    the synthesis run), before anything is synthesized, and each problem it finds is put next
    to the field it is about.
    """

    # Which field each of check_script's problems is about (the others go above the button).
    FIELD_OF_CODE = {
        "empty_script": "script",
        "too_long": "script",
        "too_short": "script",
        "no_voice": "voice",
        "unknown_voice": "voice",
        "bad_speed": "speed",
    }
    DEFAULT_VOICE = VOICES[0].id

    script = forms.CharField(required=False, strip=False, label="Script", widget=forms.Textarea)
    voice = forms.CharField(required=False, label="Voice", initial=DEFAULT_VOICE)
    speed = forms.FloatField(
        required=False,
        label="Speed",
        initial=1.0,
        error_messages={"invalid": "Speed must be a number from 0.8 to 2.0, such as 1.2."},
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "speed" in self.errors:
            return data
        if data.get("speed") is None:
            data["speed"] = 1.0
        try:
            check_script(
                data.get("script", ""), voice_id=data.get("voice", ""), speed=data["speed"]
            )
        except ValidationError as exc:
            for error in exc.error_list:
                self.add_error(self.FIELD_OF_CODE.get(error.code or ""), error)
        return data


ROLE_CHOICES = Membership.Role.choices
ROLE_HELP = {
    Membership.Role.ADMIN: "members, settings, quotas and every job",
    Membership.Role.MEMBER: "makes jobs, adds files, changes only their own",
    Membership.Role.VIEWER: "watches and downloads only",
}


class TeamCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        label="Team name",
        error_messages={"required": "Give the team a name."},
    )


class MemberAddForm(forms.Form):
    login = forms.CharField(
        max_length=254,
        label="Username or email",
        help_text="Someone who already has an account here. Others need an invite link.",
        error_messages={"required": "Type the person's username or email."},
    )
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial=Membership.Role.MEMBER, label="Role")


class InviteForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial=Membership.Role.MEMBER, label="Role")
    days = forms.IntegerField(
        min_value=1,
        max_value=30,
        initial=7,
        label="Valid for (days)",
        help_text="The link works once, for 1 to 30 days.",
    )


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES, label="Role")


class QuotaForm(forms.Form):
    """Monthly seconds per mode and the monthly Kling unit budget; empty means no limit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for mode, label in AvatarJob.Mode.choices:
            self.fields[mode] = forms.IntegerField(
                required=False,
                min_value=0,
                max_value=10_000_000,
                label=f"{label}: seconds a month",
                help_text="Empty: no limit. 0: this mode is off for the team.",
            )
        self.fields["unit_budget"] = forms.IntegerField(
            required=False,
            min_value=0,
            max_value=100_000_000,
            label="Kling units a month (std and pro)",
            help_text="Empty: no limit. A job or batch whose estimate would go past it is refused.",
        )


class ShareForm(forms.Form):
    EXPIRY_CHOICES = [
        ("", "Never"),
        ("1", "After 1 day"),
        ("7", "After 7 days"),
        ("30", "After 30 days"),
        ("90", "After 90 days"),
    ]

    expires_in = forms.TypedChoiceField(
        choices=EXPIRY_CHOICES,
        coerce=int,
        empty_value=None,
        required=False,
        label="Link stops working",
    )
    allow_download = forms.BooleanField(
        required=False, label="Let people with the link download the MP4"
    )

    def expires_at(self) -> Any:
        days = self.cleaned_data.get("expires_in")
        return timezone.now() + timedelta(days=days) if days else None


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        required=False,
        label="Token name",
        help_text="What will use it, e.g. “ComfyUI on the edit PC”. Jobs it makes show this name.",
    )
    kind = forms.ChoiceField(
        choices=[
            ("bearer", "Bearer token (gateways, curl)"),
            ("pair", "Access key + secret key (Kling's own tools, signed JWT)"),
        ],
        initial="bearer",
        required=False,
        label="Kind",
        widget=forms.RadioSelect,
    )


def _choices(field: forms.Field) -> list[tuple[Any, Any]]:
    """A choice field's (value, label) pairs."""
    assert isinstance(field, forms.ChoiceField)
    return list(field.choices)  # type: ignore[arg-type]  # flat choices: no optgroups here


class SignupForm(UserCreationForm):
    """A new account: username, email and the password twice, checked by
    AUTH_PASSWORD_VALIDATORS. It only validates: the account is made by a service
    (jobs.services.teams), so joining a team happens in the same transaction."""

    email = forms.EmailField(
        max_length=254,
        label="Email",
        help_text="Used only to reset your password if you forget it.",
        error_messages={"required": "Type your email address: it is how you reset a password."},
    )

    class Meta:
        model = User
        fields = ("username", "email")
        field_classes = {"username": UsernameField}

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip()
        if get_user_model().objects.filter(email__iexact=email).exists():
            raise ValidationError(
                "An account already uses this email. Log in with it instead, or reset its "
                "password if you forgot it."
            )
        return email


class AccountForm(forms.Form):
    """Your own email address, changed only with your password: it is how a password is reset,
    so a borrowed session must not be able to redirect the reset mail."""

    email = forms.EmailField(
        max_length=254,
        required=False,
        label="Email",
        help_text="For a password reset and for job notifications. Leave empty to remove it.",
    )
    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        help_text="Needed to change the address.",
        error_messages={"required": "Type your password to change the email address."},
    )

    def __init__(self, user: Any, data: Any = None) -> None:
        super().__init__(data, initial={"email": user.email})
        self.user = user

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip()
        others = get_user_model().objects.exclude(pk=self.user.pk)
        if email and others.filter(email__iexact=email).exists():
            raise ValidationError(
                "Another account already uses this email: each address resets one account."
            )
        return email

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise ValidationError("That is not your password: the address was not changed.")
        return password


class BatchForm(forms.Form):
    """A batch's rows (a CSV file, or rows pasted as text) and an optional ZIP of its files.

    The fields only parse: jobs.services.batches.batch_check judges every row, with the checks
    a single job gets.
    """

    one_of = ("rows_file", "rows")  # one of these is needed: neither is marked optional

    rows_file = forms.FileField(
        required=False,
        label="Spreadsheet (CSV)",
        help_text="One row per video, up to 500. Or paste the rows below.",
        widget=forms.FileInput(attrs={"accept": ".csv,text/csv"}),
    )
    rows = forms.CharField(
        required=False,
        strip=False,
        label="Or paste the rows (CSV text)",
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        help_text="Columns: name, portrait, audio or script (+ voice, speed), prompt, mode, and "
        "any {placeholder} a script or prompt uses.",
    )
    archive = forms.FileField(
        required=False,
        label="Portraits and recordings (ZIP)",
        help_text="Optional: the files the rows name. Rows may also name library files.",
        widget=forms.FileInput(attrs={"accept": ".zip,application/zip"}),
    )
    name = forms.CharField(
        required=False,
        widget=forms.TextInput(attrs={"maxlength": JOB_NAME_MAX_CHARS}),
        label="Batch name",
        help_text="Empty: the spreadsheet's name and the day.",
    )
    drop_bad = forms.BooleanField(
        required=False,
        label="Leave out the rows with problems and make the others",
    )
    template = forms.UUIDField(required=False, widget=forms.HiddenInput)

    def clean_name(self) -> str:
        value = self.cleaned_data.get("name") or ""
        return clean_job_name(value) if value.strip() else ""

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload = data.get("rows_file")
        if upload:
            try:
                data["csv_text"] = read_csv_upload(upload)
            except ValidationError as exc:
                self.add_error("rows_file", exc)
        elif (data.get("rows") or "").strip():
            data["csv_text"] = data["rows"]
        elif "rows_file" not in self.errors:
            self.add_error("rows_file", "Choose a CSV file, or paste the rows in the box below it.")
        return data
