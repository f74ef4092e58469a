"""Make an avatar video from the command line: for scripts and smoke tests.

The voice-over is a file (--audio) or a script read by one of Kling's voices (--script TEXT
--voice ID [--speed X]): Kling's TTS for std/pro, eSpeak NG offline for draft. Every input is
checked before anything is sent or stored; a script is synthesized only once all the rest is
valid, so a typo in --image never costs a TTS call.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from jobs.links import absolute
from jobs.media.audio import ValidAudio, validate_audio
from jobs.media.portraits import validate_portrait
from jobs.media.prompts import validate_prompt
from jobs.models import DRAFT_MODE_HELP, Asset, AvatarJob, Membership
from jobs.services.jobs import check_mode, clean_job_name, job_create
from jobs.services.voiceovers import voiceover_store
from jobs.tts.script import check_script
from jobs.tts.synth import synthesize
from jobs.voices import voices_for

# check_script()'s codes → the option the problem is about.
SCRIPT_FLAGS = {"no_voice": "--voice", "unknown_voice": "--voice", "bad_speed": "--speed"}


class Command(BaseCommand):
    help = (
        "Create an avatar job for USER from a portrait and a voice-over (a file, or a script "
        "read by a Kling voice) and print its URL. Exit 2 on invalid input (nothing is "
        "created); with --wait, exit 0 only if it succeeded."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--user", required=True, help="Username of the job's creator.")
        parser.add_argument("--image", required=True, type=Path, help="Portrait: JPEG or PNG.")
        parser.add_argument(
            "--audio", type=Path, help="Voice-over: MP3, WAV, M4A or AAC (or use --script)."
        )
        parser.add_argument(
            "--script", help="Text to speak instead of --audio (Kling TTS; eSpeak for draft)."
        )
        parser.add_argument("--voice", help="With --script: a Kling voice id, e.g. uk_man2.")
        parser.add_argument(
            "--speed", type=float, help="With --script: 0.8 to 2.0 in steps of 0.1 (default 1.0)."
        )
        parser.add_argument("--prompt", default="", help="Optional direction (≤ 2500 chars).")
        parser.add_argument(
            "--name",
            default="",
            help="The job's name (≤ 120 chars; default: the prompt's or script's first words).",
        )
        parser.add_argument(
            "--mode",
            default="draft",
            choices=AvatarJob.Mode.values,
            help=f"draft (free, offline: {DRAFT_MODE_HELP}), std or pro (Kling).",
        )
        parser.add_argument(
            "--wait", action="store_true", help="Wait for the worker to finish the job."
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=900,
            help="With --wait: give up waiting after this many seconds.",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        problems: list[str] = []
        user = (
            get_user_model()
            .objects.filter(**{get_user_model().USERNAME_FIELD: opts["user"]})
            .first()
        )
        if user is None:
            problems.append(f"--user: there is no account named {opts['user']!r}.")
        portrait = self._check(problems, "--image", opts["image"], validate_portrait)
        audio = None
        if self._check_voice_options(problems, opts) == "audio":
            audio = self._check(problems, "--audio", opts["audio"], validate_audio)
        prompt = ""
        try:
            prompt = validate_prompt(opts["prompt"])
        except ValidationError as exc:
            problems.extend(f"--prompt: {m}" for m in exc.messages)
        name = ""
        if opts["name"].strip():
            try:
                name = clean_job_name(opts["name"])
            except ValidationError as exc:
                problems.extend(f"--name: {m}" for m in exc.messages)
        try:
            check_mode(opts["mode"])
        except ValidationError as exc:
            problems.extend(f"--mode: {m}" for m in exc.messages)
        self._refuse(problems)
        made = None
        if opts["script"] is not None:
            # Only now, with every other input valid: this may cost a Kling TTS call.
            try:
                made = synthesize(
                    opts["script"],
                    voice_id=opts["voice"],
                    speed=self._speed(opts),
                    offline=opts["mode"] == AvatarJob.Mode.DRAFT,
                )
            except ValidationError as exc:
                problems.extend(f"--script: {m}" for m in exc.messages)
            self._refuse(problems)

        membership = (
            Membership.objects.filter(user=user)
            .select_related("team")
            .order_by("-team__personal", "created")
            .first()
        )
        assert membership is not None  # every account has a personal team
        team = membership.team
        voiceover: Asset | ValidAudio | None = audio
        if made is not None:
            voiceover = voiceover_store(
                team=team,
                user=user,
                text=opts["script"],
                voice_id=opts["voice"],
                speed=self._speed(opts),
                made=made,
            )
        job = job_create(
            team=team,
            user=user,
            portrait=portrait,
            audio=voiceover,
            prompt=prompt,
            mode=opts["mode"],
            name=name,
            source=AvatarJob.Source.COMMAND,
        )
        self.stdout.write(absolute(job.get_absolute_url()))
        if opts["wait"]:
            self._wait(job, opts["timeout"])

    def _refuse(self, problems: list[str]) -> None:
        if problems:
            for line in problems:
                self.stderr.write(line)
            raise CommandError("Nothing was created.", returncode=2)

    @staticmethod
    def _speed(opts: dict[str, Any]) -> float:
        return 1.0 if opts["speed"] is None else opts["speed"]

    def _check_voice_options(self, problems: list[str], opts: dict[str, Any]) -> str:
        """Check --audio/--script/--voice/--speed; return "audio", "script" or "" (neither)."""
        has_audio, has_script = opts["audio"] is not None, opts["script"] is not None
        if has_audio and has_script:
            problems.append("--script: give either --audio FILE or --script TEXT, not both.")
            return ""
        if not has_audio and not has_script:
            problems.append(
                "--audio: give a voice-over, either a file (--audio FILE) or a script to read "
                "(--script TEXT --voice ID)."
            )
            return ""
        if has_audio:
            for flag in ("voice", "speed"):
                if opts[flag] is not None:
                    problems.append(f"--{flag}: only used with --script, not with --audio.")
            return "audio"
        try:
            check_script(opts["script"], voice_id=opts["voice"] or "", speed=self._speed(opts))
        except ValidationError as exc:
            for error in exc.error_list:
                flag = SCRIPT_FLAGS.get(error.code or "", "--script")
                hint = f" {_voice_examples()}" if flag == "--voice" else ""
                problems.append(f"{flag}: {' '.join(error.messages)}{hint}")
        return "script"

    def _check(self, problems: list[str], flag: str, path: Path, validate: Any) -> Any:
        if not path.is_file():
            problems.append(f"{flag}: {path} does not exist or is not a file.")
            return None
        try:
            return validate(path)
        except ValidationError as exc:
            problems.extend(f"{flag}: {m}" for m in exc.messages)
            return None

    def _wait(self, job: AvatarJob, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            job.refresh_from_db()
            if job.is_terminal or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if job.status == AvatarJob.Status.SUCCEEDED:
            self.stdout.write(f"succeeded {_local_path(job.video)}")
            return
        if job.is_terminal:
            self.stdout.write(f"{job.status}: {job.error_message or 'no reason recorded'}")
            raise CommandError(f"The job {job.status}.", returncode=1)
        self.stdout.write(f"{job.status} (still running after {timeout:.0f} s)")
        raise CommandError(
            f"Gave up waiting after {timeout:.0f} s; the job goes on. Is the worker running "
            "(make run, or manage.py qcluster)?",
            returncode=1,
        )


def _voice_examples() -> str:
    english = ", ".join(v.id for v in voices_for("en")[:4])
    chinese = ", ".join(v.id for v in voices_for("zh")[:2])
    return f"Voices include {english} (English) and {chinese} (Chinese); see jobs/voices.py."


def _local_path(field: Any) -> str:
    try:
        return field.path
    except NotImplementedError:  # remote storage: its name is all there is
        return field.name
