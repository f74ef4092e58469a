"""Kling's text-to-speech voices, kept as data: Kling has no endpoint that lists them.

Compiled from Kling's public voice guide (the table its lip-sync and TTS docs link to, as
re-published by Kling's own ComfyUI nodes). Each voice has the display name Kling gives it in
its language's table, and that language: the `voice_language` sent to Kling always follows the
voice, so a script can never be sent in a language its voice does not speak (Kling: 1201).

Kling's guide lists many voice ids twice, once in the English table and once in the Chinese
one under another name (`genshin_vindi2` is "Sunny" and 阳光少年). Those are left out for now:
here a voice has one language, and which one such an id should get is a product decision, not a
fact. Only ids that appear in exactly one table are listed. `gender` is how the guide presents
the voice; it only picks the offline (eSpeak NG) stand-in.

To add a voice: append it below with the name and language of Kling's table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Voice:
    id: str  # Kling's voice_id
    name: str  # Kling's display name for it
    language: str  # "en" or "zh": the voice_language Kling expects with this voice
    gender: str = ""  # "male" or "female" (as the guide presents it); for the offline voice


LANGUAGES = {"en": "English", "zh": "中文 (Chinese)"}

VOICES: tuple[Voice, ...] = (
    # English table. The first four are the ids named in Kling's API docs.
    Voice("oversea_male1", "Anchor", "en", "male"),
    Voice("uk_man2", "Crag", "en", "male"),
    Voice("calm_story1", "Lore", "en", "male"),
    Voice("commercial_lady_en_f-v1", "Commercial Lady", "en", "female"),
    Voice("reader_en_m-v1", "The Reader", "en", "male"),
    Voice("AOT", "Ace", "en", "male"),
    Voice("uk_boy1", "Bud", "en", "male"),
    Voice("chat_0407_5-1", "Siren", "en", "female"),
    Voice("ai_huangzhong_712", "Beacon", "en", "male"),
    Voice("PeppaPig_platform", "Candy", "en", "female"),
    # Chinese table.
    Voice("tiyuxi_xuedi", "运动少年", "zh", "male"),
    Voice("tiexin_nanyou", "幽默小哥", "zh", "male"),
    Voice("girlfriend_1_speech02", "甜美邻家", "zh", "female"),
    Voice("girlfriend_2_speech02", "职场女青", "zh", "female"),
    Voice("zhuxi_speech02", "慈祥爷爷", "zh", "male"),
    Voice("uk_oldman3", "唠叨爷爷", "zh", "male"),
    Voice("diyinnansang_DB_CN_M_04-v2", "新闻播报男", "zh", "male"),
    Voice("yizhipiannan-v1", "译制片男", "zh", "male"),
    Voice("tianmeixuemei-v1", "撒娇女友", "zh", "female"),
    Voice("dongbeilaotie_speech02", "东北老铁", "zh", "male"),
    Voice("chongqingxiaohuo_speech02", "重庆小伙", "zh", "male"),
    Voice("chuanmeizi_speech02", "四川妹子", "zh", "female"),
    Voice("tianjinjiejie_speech02", "天津姐姐", "zh", "female"),
)

_BY_ID = {voice.id: voice for voice in VOICES}


def get_voice(voice_id: str) -> Voice | None:
    """The voice with this exact id (Kling's ids are case-sensitive), or None."""
    return _BY_ID.get(voice_id)


def voices_for(language: str) -> tuple[Voice, ...]:
    return tuple(voice for voice in VOICES if voice.language == language)


def voice_choices() -> list[tuple[str, list[tuple[str, str]]]]:
    """Grouped choices for a form's select: [("English", [(id, name), ...]), ("中文", ...)]."""
    return [
        (label, [(voice.id, voice.name) for voice in voices_for(language)])
        for language, label in LANGUAGES.items()
    ]
