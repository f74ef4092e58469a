"""Voice-overs from text: scripts checked before any call, split and joined, Kling's audio_id
kept while it is young, an offline eSpeak NG voice, and jobs made from text end to end.

Kling is the simulator over real loopback HTTP; its TTS reads with eSpeak NG too, so every
duration below is speech, not a tone.
"""

from __future__ import annotations

import math
import tempfile
import time
from array import array
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.utils import timezone

from jobs.engines.kling import audio_for_kling
from jobs.ffmpeg import probe, run_ffmpeg
from jobs.kling.client import KlingClient
from jobs.kling.errors import KlingError
from jobs.kling.simulator import KlingSimulator
from jobs.media.limits import AUDIO_MAX_BYTES
from jobs.models import Asset, AvatarJob
from jobs.services.voiceovers import voiceover_create
from jobs.tts.espeak import espeak_wav
from jobs.tts.script import KLING_TTS_MAX_CHARS, check_audio_id, check_script, split_script
from jobs.tts.synth import synthesize, voice_sample
from jobs.voices import VOICES, get_voice
from tests.helpers import Worker, simulated_kling, subprocess_env

pytestmark = pytest.mark.django_db

TWENTY_WORDS = (
    "Good morning everyone. Today we look at three simple ways to make your small garden "
    "greener and brighter this spring."
)


@pytest.fixture
def sim(settings):
    with simulated_kling(settings, http_timeout=10) as simulator:
        yield simulator


def tts_calls(sim: KlingSimulator) -> int:
    return sim.snapshot()["requests_by_endpoint"].get("tts", 0)


def script_of(chars: int) -> str:
    """Plain English sentences, at least `chars` characters in all."""
    sentences, total, n = [], 0, 0
    while total < chars:
        n += 1
        sentence = f"Sentence number {n} tells the viewer one more useful thing about gardens."
        sentences.append(sentence)
        total += len(sentence) + 1
    return " ".join(sentences)


def samples(content: bytes) -> array:
    """Decoded mono 16 kHz samples of an audio file's bytes."""
    with tempfile.NamedTemporaryFile(suffix=".audio") as fh:
        fh.write(content)
        fh.flush()
        pcm = run_ffmpeg(
            ["-v", "error", "-i", fh.name, "-ac", "1", "-ar", "16000", "-f", "s16le", "-"],
            timeout=30,
        )
    return array("h", pcm)


def rms(values: array) -> float:
    return math.sqrt(sum(v * v for v in values) / len(values))


# --- splitting ------------------------------------------------------------------------------


def test_a_short_script_is_one_part():
    assert split_script("  Hello there.\r\n ") == ["Hello there."]
    assert split_script("   ") == []


def test_a_2500_character_script_is_three_parts_cut_at_sentence_ends():
    text = script_of(2500)
    parts = split_script(text)
    assert len(parts) == 3
    assert all(len(part) <= KLING_TTS_MAX_CHARS for part in parts)
    assert all(part.endswith("gardens.") for part in parts)
    assert " ".join(parts) == text  # nothing lost, nothing added


def test_chinese_is_cut_at_chinese_full_stops():
    assert split_script("你好。我很好！你呢？", limit=6) == ["你好。", "我很好！", "你呢？"]
    text = "今天天气很好，我们去公园。" * 100  # 1,300 characters, no spaces at all
    parts = split_script(text)
    assert len(parts) == 2 and all(part.endswith("。") for part in parts)
    assert "".join(parts) == text


def test_an_overlong_sentence_is_cut_at_commas_then_between_words():
    sentence = ", ".join(f"clause {i} has several plain words in it" for i in range(60)) + "."
    parts = split_script(sentence)
    assert len(parts) == 3 and all(len(part) <= 1000 for part in parts)
    assert all(part.endswith(",") for part in parts[:-1])
    assert " ".join(parts).split() == sentence.split()  # no word was cut in two

    no_commas = " ".join(f"word{i}" for i in range(400))
    parts = split_script(no_commas, limit=100)
    assert all(len(part) <= 100 for part in parts)
    assert " ".join(parts).split() == no_commas.split()
    assert split_script("It costs 1,000 dollars today", limit=16) == [
        "It costs 1,000",
        "dollars today",
    ]


# --- checks before any call -------------------------------------------------------------------


def test_check_script_lists_every_problem_at_once():
    with pytest.raises(ValidationError) as exc:
        check_script("   ", voice_id="no_such_voice", speed=2.5)
    codes = {error.code for error in exc.value.error_list}
    assert codes == {"empty_script", "unknown_voice", "bad_speed"}
    assert "0.8 to 2.0 in steps of 0.1" in " ".join(exc.value.messages)
    for bad in (1.25, 0.7, float("nan"), "fast"):
        with pytest.raises(ValidationError, match="Speed"):
            check_script(TWENTY_WORDS, voice_id="uk_man2", speed=bad)
    for good in (0.8, 1.0, 1.3, 2.0):
        check_script(TWENTY_WORDS, voice_id="uk_man2", speed=good)


def test_a_script_over_the_limit_is_refused_before_any_call(sim, settings, team, owner):
    settings.KLING_MAX_AUDIO_SECONDS = 60
    text = script_of(2500)
    with pytest.raises(ValidationError) as exc:
        voiceover_create(team=team, user=owner, text=text, voice_id="oversea_male1")
    message = exc.value.messages[0]
    assert "s of speech at speed 1.0: the limit is 60 s. Cut about 1," in message
    # Faster speech fits more: the estimate follows the speed.
    with pytest.raises(ValidationError, match="at speed 2.0"):
        check_script(text, voice_id="oversea_male1", speed=2.0)
    assert tts_calls(sim) == 0
    assert Asset.objects.count() == 0


def test_a_voiceover_that_comes_out_too_long_says_how_much_to_cut(settings):
    # Digits are read out in full, so this script outruns its estimate: caught after synthesis.
    settings.KLING_MAX_AUDIO_SECONDS = 8
    text = "Call 9876543210 or 1234567890 today. " * 3
    with pytest.raises(ValidationError) as exc:
        synthesize(text, voice_id="uk_man2", offline=True)
    assert exc.value.code == "too_long"
    assert "the limit is 8 s. Cut about" in exc.value.messages[0]


# --- Kling's TTS (the simulator) ---------------------------------------------------------------


def test_a_long_script_is_synthesized_in_parts_and_joined(sim):
    made = synthesize(script_of(2500), voice_id="oversea_male1", offline=False)
    assert tts_calls(sim) == 3
    assert made.engine == "kling" and len(made.part_seconds) == 3
    assert made.valid.duration == pytest.approx(sum(made.part_seconds), abs=0.3)
    assert made.valid.format == "mp3" and made.valid.size <= AUDIO_MAX_BYTES
    # A joined file has no single Kling id: jobs will send it as sound_file.
    assert made.kling_audio_id == "" and made.made_at is None


def test_a_one_part_script_keeps_its_audio_id_and_time(sim):
    before = timezone.now()
    made = synthesize(TWENTY_WORDS, voice_id="uk_man2", speed=1.2, offline=False)
    assert tts_calls(sim) == 1
    assert made.kling_audio_id.isdigit()
    assert made.made_at is not None and before <= made.made_at <= timezone.now()
    assert 3 <= made.valid.duration <= 10


def test_the_simulator_refuses_a_voice_in_the_wrong_language(sim):
    client = KlingClient.from_settings()
    with pytest.raises(KlingError) as exc:
        client.tts(text="你好，世界。", voice_id="uk_man2", voice_language="zh")
    assert exc.value.code == 1201 and "voice_language must match" in exc.value.message
    with pytest.raises(KlingError) as exc:
        client.tts(text="Hello.", voice_id="no_such_voice", voice_language="en")
    assert exc.value.code == 1201
    # Ours always sends the voice's own language.
    made = synthesize("你好，今天天气很好，我们一起去散步吧。", voice_id="tiexin_nanyou")
    assert made.engine == "kling" and made.valid.duration > 2


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (1201, "Kling refused this voice-over: Invalid parameters."),
        (1303, "Kling's voice service is busy, try again"),
        (5001, "Kling's voice service is busy, try again"),
        (1102, "the operator must fix the Kling account"),
    ],
)
def test_kling_refusals_become_plain_messages(sim, team, owner, code, expected):
    sim.configure(tts_error_rates={code: 1.0})
    with pytest.raises(ValidationError) as exc:
        voiceover_create(team=team, user=owner, text=TWENTY_WORDS, voice_id="uk_man2")
    assert expected in exc.value.messages[0]
    assert Asset.objects.count() == 0


def test_a_tts_reply_without_audio_asks_to_try_again(sim):
    sim.configure(tts_pending_rate=1.0)
    with pytest.raises(ValidationError, match=r"^\['Kling did not return audio; try again.'\]$"):
        synthesize(TWENTY_WORDS, voice_id="uk_man2")


# --- the offline voice ------------------------------------------------------------------------


def test_the_offline_voice_reads_twenty_words_as_speech():
    assert len(TWENTY_WORDS.split()) == 20
    made = synthesize(TWENTY_WORDS, voice_id="commercial_lady_en_f-v1")  # no Kling key
    assert made.engine == "espeak" and made.kling_audio_id == ""
    assert 4 <= made.valid.duration <= 12
    assert rms(samples(made.valid.content)) > 500  # sound, not silence
    faster = synthesize(TWENTY_WORDS, voice_id="commercial_lady_en_f-v1", speed=2.0)
    assert faster.valid.duration < made.valid.duration * 0.75


def test_the_offline_voice_reads_chinese():
    made = synthesize("你好，今天天气很好，我们一起去公园散步吧。", voice_id="tiexin_nanyou")
    assert made.engine == "espeak" and made.valid.duration > 2
    assert rms(samples(made.valid.content)) > 500


def test_every_voice_has_an_offline_stand_in_that_speaks():
    for voice in VOICES:
        wav, seconds = espeak_wav("Hello. 你好。", voice=voice)
        assert wav[:4] == b"RIFF" and seconds > 0.3, voice


def test_the_catalogue_holds_kling_voices_with_one_language_each():
    ids = [voice.id for voice in VOICES]
    assert len(ids) == len(set(ids))
    for voice_id in ("oversea_male1", "uk_man2", "calm_story1", "commercial_lady_en_f-v1"):
        assert get_voice(voice_id).language == "en"
    assert {voice.language for voice in VOICES} == {"en", "zh"}
    assert get_voice("OVERSEA_MALE1") is None


# --- the library, and which audio a job sends -------------------------------------------------


def test_voiceover_create_keeps_script_voice_audio_id_and_age(sim, team, owner):
    asset = voiceover_create(
        team=team, user=owner, text=TWENTY_WORDS, voice_id="uk_man2", speed=1.1
    )
    asset.refresh_from_db()
    assert (asset.kind, asset.format, asset.team) == ("audio", "mp3", team)
    assert asset.name == "Voice-over: Good morning everyone. Today we look…"
    assert (asset.script, asset.voice_id, asset.voice_speed) == (TWENTY_WORDS, "uk_man2", 1.1)
    assert asset.kling_audio_id.isdigit() and asset.kling_audio_made_at is not None
    assert 3 <= asset.duration <= 10
    assert Path(asset.file.path).stat().st_size == asset.size
    assert audio_for_kling(asset) == {"audio_id": asset.kling_audio_id}


def test_an_offline_voiceover_has_no_audio_id(team, owner):
    asset = voiceover_create(team=team, user=owner, text=TWENTY_WORDS, voice_id="AOT")
    assert asset.kling_audio_id == "" and asset.kling_audio_made_at is None
    assert asset.script == TWENTY_WORDS and asset.voice_id == "AOT"
    assert audio_for_kling(asset) == {"sound_file": asset.file.open("rb").read()}


@pytest.mark.parametrize(
    ("audio_id", "age", "sends"),
    [
        ("860123456789012345", timedelta(days=1), "audio_id"),
        ("860123456789012345", timedelta(days=24, hours=23), "audio_id"),
        ("860123456789012345", timedelta(days=26), "sound_file"),
        ("860123456789012345", None, "sound_file"),  # age unknown
        ("", None, "sound_file"),
    ],
)
def test_a_job_sends_the_audio_id_while_it_is_young_then_the_stored_file(
    team, owner, audio_id, age, sends
):
    asset = voiceover_create(team=team, user=owner, text=TWENTY_WORDS, voice_id="AOT")
    now = timezone.now()
    asset.kling_audio_id = audio_id
    asset.kling_audio_made_at = now - age if age else None
    audio = audio_for_kling(asset, now=now)
    assert list(audio) == [sends]
    if sends == "audio_id":
        assert audio["audio_id"] == audio_id
    else:
        assert audio["sound_file"] == Path(asset.file.path).read_bytes()


def test_what_audio_for_kling_gives_is_what_kling_accepts(sim, team, owner, portrait_path):
    asset = voiceover_create(team=team, user=owner, text=TWENTY_WORDS, voice_id="uk_man2")
    client = KlingClient.from_settings()
    image = portrait_path.read_bytes()
    client.create_task(image=image, external_task_id="young", **audio_for_kling(asset))
    old = timezone.now() + timedelta(days=26)
    client.create_task(image=image, external_task_id="old", **audio_for_kling(asset, now=old))
    assert sim.snapshot()["audio_inputs"] == {"audio_id": 1, "sound_file": 1}


def test_a_pasted_audio_id_is_checked_by_shape():
    assert check_audio_id(" 860123456789012345 ") == "860123456789012345"
    assert check_audio_id("a1b2c3d4-e5f6-7890-abcd-ef1234567890")
    for bad, says in [
        ("", "Paste the audio id"),
        ("12345", "6 to 100 letters"),
        ("id with spaces", "6 to 100 letters"),
        ("x" * 101, "6 to 100 letters"),
        ("https://cdn.example.com/audio/123.mp3", "That is a link"),
    ]:
        with pytest.raises(ValidationError, match=says):
            check_audio_id(bad)


def test_a_voice_sample_is_made_once_then_reused(sim):
    name = voice_sample("commercial_lady_en_f-v1")
    assert name == "voice-samples/kling/commercial_lady_en_f-v1.mp3"
    assert voice_sample("commercial_lady_en_f-v1") == name
    assert tts_calls(sim) == 1
    with default_storage.open(name) as fh:
        assert 1 < len(samples(fh.read())) / 16000 < 5

    offline = voice_sample("uk_man2", offline=True)
    assert offline == "voice-samples/espeak/uk_man2.mp3"
    made = default_storage.get_modified_time(offline)
    time.sleep(0.01)
    assert voice_sample("uk_man2", offline=True) == offline
    assert default_storage.get_modified_time(offline) == made
    assert tts_calls(sim) == 1
    with pytest.raises(ValidationError):
        voice_sample("../../etc/passwd")


# --- generate_avatar --script -------------------------------------------------------------------


def run(*args: str) -> None:
    call_command("generate_avatar", "--user", "alice", *args)


@pytest.mark.parametrize(
    ("args", "lines"),
    [
        (
            ["--script", "Hi there, friends.", "--voice", "uk_man2", "--audio", "x.mp3"],
            ["--script"],
        ),
        (["--script", "Hello there, my friends."], ["--voice: Choose a voice"]),
        (
            ["--script", " ", "--voice", "nobody", "--speed", "3"],
            ["--script: The script is empty", "--voice: “nobody”", "--speed: Speed 3.0"],
        ),
        ([], ["--audio: give a voice-over"]),
        (["--audio", "x.mp3", "--voice", "uk_man2"], ["--voice: only used with --script"]),
    ],
)
def test_script_options_are_checked_and_nothing_is_created(
    owner, portrait_path, capsys, args, lines
):
    with pytest.raises(CommandError) as exc:
        run("--image", str(portrait_path), *args)
    assert exc.value.returncode == 2
    err = capsys.readouterr().err.strip().splitlines()
    for expected, line in zip(lines, err, strict=False):
        assert line.startswith(expected), err
    assert len(err) >= len(lines)
    assert Asset.objects.count() == 0 and AvatarJob.objects.count() == 0


def test_a_script_too_long_for_kling_costs_no_call(sim, settings, owner, portrait_path, capsys):
    settings.KLING_MAX_AUDIO_SECONDS = 60
    with pytest.raises(CommandError) as exc:
        run("--image", str(portrait_path), "--script", script_of(2000), "--voice", "uk_man2")
    assert exc.value.returncode == 2
    assert "Cut about" in capsys.readouterr().err
    assert tts_calls(sim) == 0 and Asset.objects.count() == 0


def test_a_kling_refusal_is_reported_on_the_script_line(sim, owner, portrait_path, capsys):
    sim.configure(tts_error_rates={1201: 1.0})
    with pytest.raises(CommandError) as exc:
        run(
            "--image",
            str(portrait_path),
            "--mode",
            "std",
            "--script",
            TWENTY_WORDS,
            "--voice",
            "uk_man2",
        )
    assert exc.value.returncode == 2
    assert capsys.readouterr().err.strip() == (
        "--script: Kling refused this voice-over: Invalid parameters. Check the script and the "
        "voice, then try again."
    )
    assert tts_calls(sim) == 1
    assert Asset.objects.count() == 0 and AvatarJob.objects.count() == 0


def test_a_draft_job_from_a_script_uses_the_offline_voice(owner, team, portrait_path, capsys):
    run("--image", str(portrait_path), "--script", TWENTY_WORDS, "--voice", "calm_story1")
    job = AvatarJob.objects.get()
    assert capsys.readouterr().out.strip().endswith(job.get_absolute_url())
    assert (job.mode, job.status, job.team) == ("draft", "queued", team)
    assert job.audio.script == TWENTY_WORDS and job.audio.voice_id == "calm_story1"
    assert job.audio.kling_audio_id == "" and 4 <= job.audio.duration <= 12


@pytest.mark.slow
def test_draft_from_text_to_video_through_a_real_worker(worker, owner, portrait_path, capsys):
    run(
        "--image",
        str(portrait_path),
        "--script",
        TWENTY_WORDS,
        "--voice",
        "oversea_male1",
        "--speed",
        "1.2",
        "--wait",
        "--timeout",
        "120",
    )
    job = AvatarJob.objects.select_related("audio").get()
    assert job.status == AvatarJob.Status.SUCCEEDED, job.error_message
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"succeeded {job.video.path}"
    info = probe(Path(job.video.path))
    assert info and info.duration == pytest.approx(job.audio.duration, abs=0.15)


@pytest.mark.slow
def test_std_from_text_to_video_against_the_simulator(
    transactional_db, sim, media_root, tmp_path, owner, portrait_path, capsys
):
    env = subprocess_env(
        media_root,
        KLING_BASE_URL=sim.base_url,
        KLING_API_KEY=sim.config.api_key,
        KLING_POLL_SECONDS="1",
        PUBLIC_BASE_URL="",
    )
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        run(
            "--image",
            str(portrait_path),
            "--mode",
            "std",
            "--script",
            TWENTY_WORDS,
            "--voice",
            "commercial_lady_en_f-v1",
            "--wait",
            "--timeout",
            "90",
        )
    finally:
        worker.kill()  # the job is finished (or the test failed): no need for a graceful stop
    job = AvatarJob.objects.select_related("audio").get()
    assert job.status == AvatarJob.Status.SUCCEEDED, job.error_message
    assert job.audio.kling_audio_id and job.audio.kling_audio_made_at
    stats = sim.snapshot()
    assert stats["requests_by_endpoint"]["tts"] == 1 and stats["tasks_created"] == 1
    # Until the engine sends audio_for_kling(), the stored copy goes as sound_file.
    assert sum(stats["audio_inputs"].values()) == 1
    assert set(stats["audio_inputs"]) <= {"audio_id", "sound_file"}


def test_the_same_script_made_again_is_the_same_voiceover(sim, team, owner):
    """Synthesis gives slightly different bytes each time: the script, voice and speed say it
    is the same voice-over, and Kling is not asked (nor paid) twice."""
    first = voiceover_create(team=team, user=owner, text=TWENTY_WORDS, voice_id="uk_man2")
    requests = sum(sim.snapshot()["requests_by_endpoint"].values())
    again = voiceover_create(team=team, user=owner, text=f"  {TWENTY_WORDS}\n", voice_id="uk_man2")
    assert again.pk == first.pk and sum(sim.snapshot()["requests_by_endpoint"].values()) == requests
    # Another speed, another voice or the offline voice is another voice-over.
    slower = voiceover_create(
        team=team, user=owner, text=TWENTY_WORDS, voice_id="uk_man2", speed=0.8
    )
    offline = voiceover_create(
        team=team, user=owner, text=TWENTY_WORDS, voice_id="uk_man2", offline=True
    )
    assert len({first.pk, slower.pk, offline.pk}) == 3 and offline.kling_audio_id == ""
    assert (
        voiceover_create(
            team=team, user=owner, text=TWENTY_WORDS, voice_id="uk_man2", offline=True
        ).pk
        == offline.pk
    )
    # A long script Kling made in parts has no single audio id, and is found again too.
    long = voiceover_create(team=team, user=owner, text=script_of(2500), voice_id="uk_man2")
    calls = tts_calls(sim)
    assert long.kling_audio_id == "" and long.voice_engine == "kling"
    again = voiceover_create(team=team, user=owner, text=script_of(2500), voice_id="uk_man2")
    assert again.pk == long.pk and tts_calls(sim) == calls
    offline_long = voiceover_create(
        team=team, user=owner, text=script_of(2500), voice_id="uk_man2", offline=True
    )
    assert offline_long.pk != long.pk and offline_long.voice_engine == "espeak"
