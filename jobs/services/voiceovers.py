"""Voice-overs written as text, kept in the team's library (synthesis is in jobs/tts/)."""

from __future__ import annotations

from dataclasses import replace

from django.contrib.auth.models import User
from django.db import transaction

from jobs import kling
from jobs.models import Asset, Team
from jobs.services.assets import asset_store
from jobs.tts.script import check_script, normalize_script, voiceover_name
from jobs.tts.synth import ENGINE_ESPEAK, ENGINE_KLING, Synthesized, synthesize


def voiceover_store(
    *,
    team: Team,
    user: User | None,
    text: str,
    voice_id: str,
    speed: float,
    made: Synthesized,
) -> Asset:
    """Store a synthesized voice-over as an audio asset with its script, voice and Kling id.

    The same bytes are stored once per team (asset_store): making the same script again
    returns that asset, with the newer Kling id if this one has one.
    """
    valid = replace(made.valid, name=voiceover_name(text))
    with transaction.atomic():
        asset = asset_store(team=team, user=user, valid=valid)
        asset.name = valid.name
        asset.script = normalize_script(text)
        asset.voice_id = voice_id
        asset.voice_speed = round(float(speed), 1)
        asset.voice_engine = made.engine
        fields = ["name", "script", "voice_id", "voice_speed", "voice_engine"]
        if made.kling_audio_id:
            asset.kling_audio_id = made.kling_audio_id
            asset.kling_audio_made_at = made.made_at
            fields += ["kling_audio_id", "kling_audio_made_at"]
        asset.save(update_fields=fields)
    return asset


def voiceover_create(
    *,
    team: Team,
    user: User | None,
    text: str,
    voice_id: str,
    speed: float = 1.0,
    offline: bool | None = None,
) -> Asset:
    """Synthesize a script and keep it in the team's library (see synthesize() for `offline`).

    The same script, voice and speed made the same way before is in the library already: that
    one is returned, and nothing is synthesized (or charged by Kling) again. Synthesis gives
    slightly different bytes each time, so the checksum alone would keep both. The synthesis
    (network, ffmpeg) happens outside any transaction; only the storing is atomic.
    """
    check_script(text, voice_id=voice_id, speed=speed)
    if offline is None:
        offline = not kling.is_configured()
    same = (
        Asset.objects.for_team(team)
        .voiceovers()
        .filter(
            script=normalize_script(text),
            voice_id=voice_id,
            voice_speed=round(float(speed), 1),
            voice_engine=ENGINE_ESPEAK if offline else ENGINE_KLING,
        )
    )
    if (made_before := same.first()) is not None:
        return made_before
    made = synthesize(text, voice_id=voice_id, speed=speed, offline=offline)
    return voiceover_store(
        team=team, user=user, text=text, voice_id=voice_id, speed=speed, made=made
    )
