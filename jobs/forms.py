"""Forms: every upload goes through jobs.media, the same checks the command and API use."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from jobs import services
from jobs.media import PROMPT_MAX_CHARS, validate_audio, validate_portrait, validate_prompt
from jobs.models import Asset, AvatarJob, Team


class NewJobForm(forms.Form):
    portrait = forms.FileField(
        required=False,
        label="Portrait",
        help_text="JPEG or PNG, up to 10 MB, both sides at least 300 px.",
        widget=forms.ClearableFileInput(attrs={"accept": "image/jpeg,image/png"}),
    )
    portrait_asset = forms.ModelChoiceField(
        queryset=Asset.objects.none(),
        required=False,
        to_field_name="code",
        label="…or a portrait from the library",
        empty_label="(upload a new one)",
    )
    audio = forms.FileField(
        required=False,
        label="Voice-over",
        help_text="MP3, WAV, M4A or AAC, up to 5 MB, 2 seconds to 5 minutes long.",
        widget=forms.ClearableFileInput(
            attrs={"accept": "audio/mpeg,audio/wav,audio/x-wav,audio/mp4,audio/aac,.m4a,.aac"}
        ),
    )
    audio_asset = forms.ModelChoiceField(
        queryset=Asset.objects.none(),
        required=False,
        to_field_name="code",
        label="…or a voice-over from the library",
        empty_label="(upload a new one)",
    )
    prompt = forms.CharField(
        required=False,
        max_length=PROMPT_MAX_CHARS,
        widget=forms.Textarea(attrs={"rows": 3, "maxlength": PROMPT_MAX_CHARS}),
        help_text="Optional: actions, emotions, camera movement.",
    )
    mode = forms.ChoiceField(choices=AvatarJob.Mode.choices, initial=AvatarJob.Mode.DRAFT)

    def __init__(self, *args: Any, team: Team, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.team = team
        self.fields["portrait_asset"].queryset = Asset.objects.for_team(team).portraits()
        self.fields["audio_asset"].queryset = Asset.objects.for_team(team).voiceovers()

    def clean_portrait(self) -> Any:
        upload = self.cleaned_data.get("portrait")
        return validate_portrait(upload) if upload else None

    def clean_audio(self) -> Any:
        upload = self.cleaned_data.get("audio")
        return validate_audio(upload) if upload else None

    def clean_prompt(self) -> str:
        return validate_prompt(self.cleaned_data.get("prompt"))

    def clean_mode(self) -> str:
        mode = self.cleaned_data["mode"]
        services.check_mode(mode)
        return mode

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if (
            not data.get("portrait")
            and not data.get("portrait_asset")
            and "portrait" not in self.errors
        ):
            self.add_error(
                "portrait",
                ValidationError("Choose a portrait: upload a photo or pick one from the library."),
            )
        if not data.get("audio") and not data.get("audio_asset") and "audio" not in self.errors:
            self.add_error(
                "audio",
                ValidationError(
                    "Choose a voice-over: upload a recording or pick one from the library."
                ),
            )
        return data
