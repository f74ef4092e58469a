"""A batch in one call, for the callers that have no confirmation page, and its two downloads.

The API and `manage.py generate_batch` both check a spreadsheet and, if it passes, store its
files and make the batch at once: `batch_from_spreadsheet` is that sequence, written once. The
web page splits the same steps over two requests (check, then confirm a signed plan) and calls
jobs/services/batches.py itself.

`report_rows` and `video_entries` are what the report (CSV) and "download all" (a streamed
ZIP) hold, for the pages and the API alike; each caller says how a video is linked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from django.contrib.auth.models import User
from django.db.models.fields.files import FieldFile
from django.utils.text import slugify

from jobs.models import AvatarJob, Batch, JobTemplate, Team
from jobs.serve import open_stored
from jobs.services.batch_jobs import batch_create
from jobs.services.batches import BatchCheck, batch_check, batch_store_files, default_batch_name
from jobs.zipstream import Opener

REPORT_HEADER = ["row", "name", "status", "reason", "video", "share"]


@dataclass
class BatchMade:
    """What became of a spreadsheet: its check, and the batch when one was made."""

    check: BatchCheck
    batch: Batch | None = None

    @property
    def dropped(self) -> list[Any]:
        """The rows left out (only when the caller asked for that)."""
        return self.check.bad_rows if self.batch is not None else []


def batch_from_spreadsheet(
    *,
    team: Team,
    user: User | None,
    csv_text: str,
    archive: IO[bytes] | None = None,
    template: JobTemplate | None = None,
    drop_bad_rows: bool = False,
    name: str = "",
    filename: str = "",
    source: str = Batch.Source.COMMAND,
) -> BatchMade:
    """Check every row; unless each passes (or `drop_bad_rows` and some do), make nothing.

    Otherwise the passing rows' files go into the library and the batch is made, exactly as
    the web page's confirmation makes it. batch_create's ValidationError (the quota moved, a
    file was deleted meanwhile) is left to the caller: nothing was queued then either.
    """
    check = batch_check(team=team, csv_text=csv_text, archive=archive, template=template)
    if not (check.ok or (drop_bad_rows and check.usable)):
        return BatchMade(check)
    plan = batch_store_files(check=check, team=team, user=user)
    batch = batch_create(
        team=team,
        user=user,
        plan=plan,
        name=name or default_batch_name(filename),
        source=source,
    )
    return BatchMade(check, batch)


def report_rows(
    rows: list[AvatarJob],
    video_link: Callable[[AvatarJob], str],
    share_link: Callable[[AvatarJob], str] = lambda job: "",
) -> Iterator[list[Any]]:
    """The report's lines under REPORT_HEADER: one per row (its newest job). A share link is
    there only in the answer that made it (its token is shown once)."""
    for job in rows:
        video = video_link(job) if job.status == AvatarJob.Status.SUCCEEDED and job.video else ""
        yield [job.batch_row, job.name, job.status, job.error_message, video, share_link(job)]


def file_stem(name: str, default: str, length: int = 60) -> str:
    return slugify(name)[:length].strip("-") or default


def video_entries(rows: list[AvatarJob]) -> Iterator[tuple[str, datetime, Opener]]:
    """The finished videos as stream_zip's entries: `001-welcome-ana.mp4`, in row order."""
    for job in rows:
        if job.status == AvatarJob.Status.SUCCEEDED and job.video:
            name = f"{job.batch_row or 0:03d}-{file_stem(job.name, 'video', 50)}.mp4"
            yield name, job.updated, _opener(job.video)


def _opener(file: FieldFile) -> Opener:
    return lambda: open_stored(file)  # from a bucket too, a chunk at a time
