"""Voice-overs written as text: the writer on the new-job page and in the library, and the
voices' samples.

The writer posts a script, a voice and a speed. check_script judges them before anything
is synthesized, so a script past the avatar limits is refused with how much to cut and costs
nothing. A voice-over for a draft job, or on a server without a Kling key, is read offline by
eSpeak NG: free, robotic, and the page says so.

On the new-job page the htmx answer is the voice-over field's fragment with the new voice-over
picked, exactly as when a file is chosen (jobs/job_new.html#file-field); in the library it is
the writer again, with the new tile added out of band. Without JavaScript the writer is a plain
form post that redirects back with the voice-over picked, or shows its problems on a page of
its own. Invalid htmx posts answer 200, because htmx 2 does not swap 4xx responses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.http import Http404, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_safe

from jobs import kling
from jobs.access import Access, StudioRequest, authorize, current_team
from jobs.forms import NewJobForm, VoiceoverForm
from jobs.media.limits import PROMPT_MAX_CHARS, MediaError
from jobs.media.portraits import validate_portrait
from jobs.models import Asset, AvatarJob
from jobs.serve import presigned_url, redirect_to_stored, serve_stored_file
from jobs.services.assets import asset_store
from jobs.services.voiceovers import voiceover_create
from jobs.tts import synth
from jobs.tts.script import (
    CHARS_PER_SECOND,
    SPEED_MAX,
    SPEED_MIN,
    estimate_seconds,
    normalize_script,
)
from jobs.views.job_new import file_pick
from jobs.views.library import library_assets
from jobs.voices import LANGUAGES, VOICES, Voice, get_voice, voice_choices

WHERE_JOB, WHERE_LIBRARY = "job", "library"
DRAFT = AvatarJob.Mode.DRAFT


@dataclass(frozen=True)
class VoiceOption:
    id: str
    name: str
    language: str  # its language's display name, shown next to the select
    sample_url: str


@dataclass
class Writer:
    """The "write a voice-over" form with what its template shows around the fields."""

    form: VoiceoverForm
    where: str  # WHERE_JOB or WHERE_LIBRARY: where a made voice-over goes
    mode: str = ""  # the new job's mode when the writer was posted ("" before any post)
    made: Asset | None = None  # the voice-over just made
    reused: bool = False  # `made` was already in the library (same script, voice and speed)

    @property
    def offline_only(self) -> bool:
        """No Kling key on this server: every voice-over is read by eSpeak NG."""
        return not kling.is_configured()

    @property
    def offline(self) -> bool:
        """Whether this writer's voice-over is read by eSpeak NG (drafts need no Kling call)."""
        return self.offline_only or (self.where == WHERE_JOB and self.mode in ("", DRAFT))

    @property
    def action(self) -> str:
        return f"{reverse('jobs:voiceover-new')}?{urlencode({'for': self.where})}"

    @property
    def back_url(self) -> str:
        return reverse("jobs:library" if self.where == WHERE_LIBRARY else "jobs:job-new")

    @property
    def is_open(self) -> bool:
        return self.form.is_bound

    @property
    def script(self) -> str:
        return str(self.form["script"].value() or "")

    @property
    def voice(self) -> Voice:
        return get_voice(str(self.form["voice"].value() or "")) or VOICES[0]

    @property
    def language(self) -> str:
        return LANGUAGES[self.voice.language]

    @property
    def speed(self) -> str:
        value = self.form["speed"].value()
        return "1.0" if value in (None, "") else str(value)

    @property
    def voice_groups(self) -> list[tuple[str, list[VoiceOption]]]:
        return [
            (
                label,
                [
                    VoiceOption(key, name, label, reverse("jobs:voice-sample", args=[key]))
                    for key, name in options
                ],
            )
            for label, options in voice_choices()
        ]

    @property
    def limit_seconds(self) -> int:
        return settings.KLING_MAX_AUDIO_SECONDS

    @property
    def chars_per_second(self) -> dict[str, float]:
        return CHARS_PER_SECOND

    @property
    def chars_en(self) -> int:
        return int(self.limit_seconds * CHARS_PER_SECOND["en"])

    @property
    def chars_zh(self) -> int:
        return int(self.limit_seconds * CHARS_PER_SECOND["zh"])

    @property
    def estimated_seconds(self) -> float:
        try:
            speed = min(max(float(self.speed), SPEED_MIN), SPEED_MAX)
        except ValueError:
            speed = 1.0
        return estimate_seconds(normalize_script(self.script), speed)

    @property
    def over_limit(self) -> bool:
        return self.estimated_seconds > self.limit_seconds

    @property
    def count_text(self) -> str:
        """What the live count says before any typing (voiceover.js says it the same way)."""
        script = normalize_script(self.script)
        seconds = self.estimated_seconds
        text = f"{len(script):,} characters · about {seconds:.0f} s of {self.limit_seconds} s"
        if seconds > self.limit_seconds:
            cut = math.ceil(len(script) * (1 - self.limit_seconds / seconds))
            text += f": cut about {cut:,}"
        return text


# --- writing a voice-over ----------------------------------------------------------------------


def _posted_voiceover(request: StudioRequest, access: Access) -> Asset | None:
    """The voice-over picked on the page when the writer was posted, to keep it on a refusal."""
    try:
        code = UUID(request.POST.get("audio_asset", ""))
    except ValueError:
        return None
    return Asset.objects.for_team(access.team).voiceovers().filter(code=code).first()


def _carried(request: StudioRequest, access: Access) -> dict[str, str]:
    """The rest of the new-job form, posted along without JavaScript, to keep across the trip.

    A portrait chosen but not yet checked is checked and stored now, as the final submit
    would; if it does not pass, it is simply not kept (the new-job page asks for it again).
    """
    carried: dict[str, str] = {}
    if request.POST.get("mode") in AvatarJob.Mode.values:
        carried["mode"] = request.POST["mode"]
    if request.POST.get("prompt", "").strip():
        carried["prompt"] = request.POST["prompt"][:PROMPT_MAX_CHARS]
    portrait: Asset | None = None
    upload = request.FILES.get("portrait")
    if upload is not None:
        try:
            valid = validate_portrait(upload)
        except MediaError:
            pass
        else:
            portrait = asset_store(team=access.team, user=request.user, valid=valid)
    if portrait is None:
        try:
            code = UUID(request.POST.get("portrait_asset", ""))
        except ValueError:
            code = None
        if code is not None:
            portrait = Asset.objects.for_team(access.team).portraits().filter(code=code).first()
    if portrait is not None:
        carried["portrait_asset"] = str(portrait.code)
    return carried


def _make(writer: Writer, access: Access, user: Any) -> Asset | None:
    """Check the script, then synthesize it into the team's library; problems go on the form."""
    form = writer.form
    if not form.is_valid():
        return None
    try:
        return voiceover_create(
            team=access.team,
            user=user,
            text=form.cleaned_data["script"],
            voice_id=form.cleaned_data["voice"],
            speed=form.cleaned_data["speed"],
            offline=True if writer.offline else None,
        )
    except ValidationError as exc:  # Kling refused or was busy, eSpeak missing, too long...
        form.add_error(None, exc)
        return None


@login_required
@require_http_methods(["GET", "POST"])
def voiceover_new(request: StudioRequest) -> HttpResponse:
    """Make a voice-over from a script: for the new job (?for=job) or the library (?for=library)."""
    where = WHERE_LIBRARY if request.GET.get("for") == WHERE_LIBRARY else WHERE_JOB
    access = current_team(request)
    if not access.may("voiceover_create") and not request.htmx:
        return render(request, "jobs/read_only.html", {"access": access}, status=403)
    authorize(access, "voiceover_create")  # with htmx: the plain 403
    if request.method == "GET":
        writer = Writer(VoiceoverForm(), where)
        return render(request, "jobs/voiceover_new.html", {"writer": writer, "carried": {}})

    mode = request.POST.get("mode", "")
    writer = Writer(VoiceoverForm(request.POST), where, mode=mode)
    started = timezone.now()
    made = writer.made = _make(writer, access, request.user)
    # The same voice-over made before comes back from the library rather than made again.
    writer.reused = made is not None and made.created < started

    if not request.htmx:
        carried = _carried(request, access) if where == WHERE_JOB else {}
        if made is None:
            page = {"writer": writer, "carried": carried, "access": access}
            return render(request, "jobs/voiceover_new.html", page)
        done = "Reused from your library:" if writer.reused else "Made"
        messages.success(request, f"{done} {made.name} ({made.duration:.1f} s).")
        if where == WHERE_LIBRARY:
            return redirect(f"{reverse('jobs:library')}#asset-{made.code}")
        query = {"audio": made.code, "portrait": carried.get("portrait_asset", "")}
        query |= {key: carried[key] for key in ("mode", "prompt") if key in carried}
        query = {key: value for key, value in query.items() if value}
        return redirect(f"{reverse('jobs:job-new')}?{urlencode(query)}")

    if where == WHERE_JOB:
        selected = made or _posted_voiceover(request, access)
        pick = file_pick(NewJobForm(team=access.team), "audio", selected)
        answer = {"pick": pick, "access": access, "voiceover_writer": writer}
        return render(request, "jobs/job_new.html#file-field", answer)

    context: dict[str, Any] = {"writer": writer, "access": access}
    if made is not None:
        # The library keeps voice and speed for the next script, and shows the new tile.
        initial = {"voice": made.voice_id, "speed": made.voice_speed}
        context["writer"] = Writer(
            VoiceoverForm(initial=initial), where, made=made, reused=writer.reused
        )
        context["asset"] = library_assets(access.team).get(pk=made.pk)
        context["already_listed"] = writer.reused  # its tile moves to the top
        context["voiceover_count"] = Asset.objects.for_team(access.team).voiceovers().count()
    return render(request, "jobs/_voiceover.html#library-answer", context)


# --- voice samples -----------------------------------------------------------------------------


@login_required
@require_safe  # GET and HEAD
def voice_sample(request: StudioRequest, voice_id: str) -> HttpResponseBase:
    """A short sample of a voice ("Hello, this is Anchor."), made once and then reused.

    Kling's voice when Kling is configured, else (or with ?offline=1, for drafts) the offline
    stand-in that a draft would use.
    """
    if get_voice(voice_id) is None:
        raise Http404("No such voice.")
    offline = True if request.GET.get("offline") == "1" else None
    try:
        name = synth.voice_sample(voice_id, offline=offline)
    except ValidationError as exc:  # Kling busy or refusing: the page says so next to Listen
        return HttpResponse(
            " ".join(exc.messages), status=503, content_type="text/plain; charset=utf-8"
        )
    filename = f"{voice_id}-sample.mp3"
    url = presigned_url(default_storage, name, content_type="audio/mpeg", filename=filename)
    if url is not None:
        return redirect_to_stored(url)
    return serve_stored_file(
        request, default_storage.open(name, "rb"), content_type="audio/mpeg", filename=filename
    )
