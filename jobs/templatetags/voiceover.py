"""The voice-over writer, placed in pages whose views know nothing of it.

The new-job page's voice-over field (jobs/job_new.html#file-field) is rendered by three views;
the writer inside it comes from here, fresh, unless the view that renders it just handled the
writer's post and put it in the context as `voiceover_writer`.
"""

from __future__ import annotations

from typing import Any

from django import template

from jobs import kling
from jobs.forms import VoiceoverForm
from jobs.views.voiceovers import WHERE_JOB, WHERE_LIBRARY, Writer
from jobs.voices import LANGUAGES, get_voice

register = template.Library()


@register.inclusion_tag("jobs/_voiceover.html#new-job", takes_context=True)
def voiceover_new_job(context: template.Context, pick: Any) -> dict[str, Any]:
    """The writer and the pasted Kling audio id, under the new-job form's voice-over field."""
    writer = context.get("voiceover_writer") or Writer(VoiceoverForm(), WHERE_JOB)
    return {
        "writer": writer,
        "paste": pick.field.form["kling_audio_id"],
        "kling_configured": kling.is_configured(),
    }


@register.inclusion_tag("jobs/_voiceover.html#library", takes_context=True)
def voiceover_library(context: template.Context) -> dict[str, Any]:
    return {"writer": context.get("voiceover_writer") or Writer(VoiceoverForm(), WHERE_LIBRARY)}


@register.filter
def voice_label(voice_id: str) -> str:
    """ "Anchor (English)" for a voice id; the id itself for one no longer in the catalogue."""
    voice = get_voice(voice_id)
    return f"{voice.name} ({LANGUAGES[voice.language]})" if voice else voice_id
