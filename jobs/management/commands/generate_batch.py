"""Make a batch of avatar videos from a spreadsheet: the command-line twin of the New batch page.

Every row is checked first (the checks the page and a single job get); with any problem the
command prints one line per problem, exits 2 and creates nothing.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from jobs.links import absolute
from jobs.models import Batch, JobTemplate, Membership
from jobs.services.batch_jobs import batch_progress
from jobs.services.batch_runs import batch_from_spreadsheet
from jobs.services.batches import read_csv_upload


class Command(BaseCommand):
    help = (
        "Create a batch of avatar jobs for USER from a CSV (and a ZIP of the files it names) and "
        "print its URL. Exit 2 with one line per problem (nothing is created); with --wait, "
        "exit 0 only if every row succeeded."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--user", required=True, help="Username of the batch's creator.")
        parser.add_argument("--csv", required=True, type=Path, help="The rows, one per video.")
        parser.add_argument("--zip", type=Path, help="The portraits and recordings the rows name.")
        parser.add_argument("--name", default="", help="The batch's name (default: the CSV's).")
        parser.add_argument(
            "--template", help="A template of the user's team: empty cells are taken from it."
        )
        parser.add_argument("--wait", action="store_true", help="Wait for every row to finish.")
        parser.add_argument("--timeout", type=float, default=1800, help="With --wait: seconds.")

    def handle(self, *args: Any, **opts: Any) -> None:
        problems: list[str] = []
        model = get_user_model()
        user = model.objects.filter(**{model.USERNAME_FIELD: opts["user"]}).first()
        if user is None:
            problems.append(f"--user: there is no account named {opts['user']!r}.")
        csv_text = ""
        if not opts["csv"].is_file():
            problems.append(f"--csv: {opts['csv']} does not exist or is not a file.")
        else:
            with opts["csv"].open("rb") as fh:
                try:
                    csv_text = read_csv_upload(fh)
                except ValidationError as exc:
                    problems.extend(f"--csv: {m}" for m in exc.messages)
        if opts["zip"] is not None and not opts["zip"].is_file():
            problems.append(f"--zip: {opts['zip']} does not exist or is not a file.")
        self._refuse(problems)
        membership = (
            Membership.objects.filter(user=user)
            .select_related("team")
            .order_by("-team__personal", "created")
            .first()
        )
        assert membership is not None  # every account has a personal team
        team = membership.team
        template = None
        if opts["template"]:
            template = JobTemplate.objects.filter(team=team, name=opts["template"]).first()
            if template is None:
                names = ", ".join(
                    JobTemplate.objects.filter(team=team).values_list("name", flat=True)
                )
                self._refuse(
                    [
                        f"--template: {team.name} has no template named {opts['template']!r}"
                        f" (it has: {names or 'none'})."
                    ]
                )
        try:
            with contextlib.ExitStack() as stack:
                archive = stack.enter_context(opts["zip"].open("rb")) if opts["zip"] else None
                made = batch_from_spreadsheet(
                    team=team,
                    user=user,
                    csv_text=csv_text,
                    archive=archive,
                    template=template,
                    name=opts["name"],
                    filename=opts["csv"].name,
                    source=Batch.Source.COMMAND,
                )
        except ValidationError as exc:
            self._refuse([str(m) for m in exc.messages])
        batch = made.batch
        if batch is None:
            self._refuse(made.check.lines() or ["The spreadsheet has no rows to make."])
            return
        self.stdout.write(absolute(batch.get_absolute_url()))
        if opts["wait"]:
            self._wait(batch, opts["timeout"])

    def _refuse(self, problems: list[str]) -> None:
        if problems:
            for line in problems:
                self.stderr.write(line)
            raise CommandError("Nothing was created.", returncode=2)

    def _wait(self, batch: Batch, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            batch.refresh_from_db()
            progress = batch_progress(batch)
            if progress.is_final or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if progress.state != Batch.State.READY:
            what = progress.problem or f"The batch is {batch.get_state_display()}."
            raise CommandError(what, returncode=1)
        self.stdout.write(
            f"{progress.done} done, {progress.failed} failed, {progress.canceled} canceled, "
            f"{progress.running + progress.queued} unfinished"
        )
        if not progress.is_final:
            raise CommandError(
                f"Gave up waiting after {timeout:.0f} s; the batch goes on.", returncode=1
            )
        if progress.done != progress.total:
            raise CommandError("Not every row succeeded.", returncode=1)
