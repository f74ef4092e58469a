"""Forms of the team, invite, quota and share-link pages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.utils import timezone

from jobs.models import AvatarJob, Membership

ROLE_CHOICES = Membership.Role.choices
ROLE_HELP = {
    Membership.Role.ADMIN: "members, settings, quotas and every job",
    Membership.Role.MEMBER: "makes jobs, manages own jobs and the library",
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
    """Monthly seconds per mode; empty means no limit."""

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
