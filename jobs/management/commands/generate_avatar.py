"""Make an avatar video from the command line: for scripts and smoke tests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from jobs import services
from jobs.media import validate_audio, validate_portrait, validate_prompt
from jobs.models import AvatarJob, Membership


class Command(BaseCommand):
    help = (
        "Create an avatar job for USER from a portrait and a voice-over and print its URL. "
        "Exit 2 on invalid input (nothing is created); with --wait, exit 0 only if it succeeded."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--user", required=True, help="Username of the job's creator.")
        parser.add_argument("--image", required=True, type=Path, help="Portrait: JPEG or PNG.")
        parser.add_argument(
            "--audio", required=True, type=Path, help="Voice-over: MP3, WAV, M4A or AAC."
        )
        parser.add_argument("--prompt", default="", help="Optional direction (≤ 2500 chars).")
        parser.add_argument("--mode", default="draft", choices=AvatarJob.Mode.values)
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
        audio = self._check(problems, "--audio", opts["audio"], validate_audio)
        prompt = ""
        try:
            prompt = validate_prompt(opts["prompt"])
        except ValidationError as exc:
            problems.extend(f"--prompt: {m}" for m in exc.messages)
        try:
            services.check_mode(opts["mode"])
        except ValidationError as exc:
            problems.extend(f"--mode: {m}" for m in exc.messages)
        if problems:
            for line in problems:
                self.stderr.write(line)
            raise CommandError("Nothing was created.", returncode=2)

        membership = (
            Membership.objects.filter(user=user)
            .select_related("team")
            .order_by("-team__personal", "created")
            .first()
        )
        team = membership.team
        with transaction.atomic():
            job = services.job_create(
                team=team,
                user=user,
                portrait=services.asset_store(team=team, user=user, valid=portrait),
                audio=services.asset_store(team=team, user=user, valid=audio),
                prompt=prompt,
                mode=opts["mode"],
            )
        base = settings.PUBLIC_BASE_URL or "http://127.0.0.1:8000"
        self.stdout.write(f"{base}{job.get_absolute_url()}")
        if opts["wait"]:
            self._wait(job, opts["timeout"])

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


def _local_path(field: Any) -> str:
    try:
        return field.path
    except NotImplementedError:  # remote storage: its name is all there is
        return field.name
