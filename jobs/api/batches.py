"""Batches over the API: the New batch page for scripts, at /api/batches (outside Kling's paths).

The same tokens and JWTs as the Kling-compatible endpoints, the same envelope and codes. A
POST is checked in full exactly as the page checks it: with any bad row (and no
`drop_bad_rows`) the answer is 400 with every row's problems and nothing is created;
otherwise the batch is made at once (jobs/services/batch_runs.py, as generate_batch makes it)
and the answer is the batch, as GET /api/batches/<id> shows it while it runs.
"""

from __future__ import annotations

import csv
import io
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import reverse

from jobs.access import Access, refusal
from jobs.api.contract import (
    BAD_PARAMETER,
    NO_PERMISSION,
    NOT_FOUND,
    QUOTA_USED_UP,
    ApiError,
    bad,
)
from jobs.api.inputs import batch_request, shown
from jobs.api.views import api_view
from jobs.links import public_base_url, video_url
from jobs.models import ApiToken, AvatarJob, Batch, JobTemplate, Membership
from jobs.services.batch_jobs import batch_progress
from jobs.services.batch_runs import (
    REPORT_HEADER,
    batch_from_spreadsheet,
    file_stem,
    report_rows,
    video_entries,
)
from jobs.services.batches import BatchCheck, RowCheck
from jobs.zipstream import stream_zip

Status = AvatarJob.Status
# A row's status in a batch, in the words of the counts: done, running, queued, failed, canceled.
ROW_STATUS: dict[str, str] = {
    Status.SUCCEEDED: "done",
    Status.QUEUED: "queued",
    Status.FAILED: "failed",
    Status.CANCELED: "canceled",
}  # any other status is on its way: "running"
MAX_TEMPLATES_NAMED = 20  # in the refusal of an unknown template name


def _access(token: ApiToken, action: str) -> Access:
    """The token owner's standing in the token's team, if the role allows `action` (1103)."""
    membership = Membership.objects.filter(user=token.user_id, team=token.team_id).first()
    if membership is None:  # api_view's authentication has just checked this
        raise ApiError(NO_PERMISSION, "The owner of this API token is not in its team.")
    access = Access(team=token.team, membership=membership)
    reason = refusal(access, action)
    if reason is not None:
        raise ApiError(NO_PERMISSION, reason)
    return access


def _batch(token: ApiToken, ref: str) -> Batch:
    """A batch of the token's team by its id; 1203 for anything else, another team's too."""
    try:
        code = UUID(ref)
    except ValueError:
        code = None
    batch = Batch.objects.filter(code=code, team=token.team).first() if code else None
    if batch is None:
        raise ApiError(NOT_FOUND, f"batch_id: no batch {shown(ref)} in this token's team.")
    return batch


def _template(token: ApiToken, name: str) -> JobTemplate | None:
    if not name:
        return None
    template = JobTemplate.objects.filter(team=token.team, name=name).first()
    if template is None:
        names = list(
            JobTemplate.objects.filter(team=token.team).values_list("name", flat=True)[
                :MAX_TEMPLATES_NAMED
            ]
        )
        raise bad(
            "template",
            f"the team has no template named {shown(name)} (it has: "
            f"{', '.join(repr(n) for n in names) or 'none'}); templates are saved from a job's "
            "page with “Save as template”",
        )
    return template


def _row_problems(row: RowCheck) -> dict[str, Any]:
    return {"row": row.number, "name": row.name, "problems": row.problems}


def _refused(check: BatchCheck, drop_bad_rows: bool) -> ApiError:
    """400 with every problem: the spreadsheet's own and each bad row's (nothing was made)."""
    bad_rows = check.bad_rows
    if check.problems:
        what = "the spreadsheet: " + " ".join(check.problems)
    elif drop_bad_rows:
        what = f"no row passes (all {len(check.rows)} have problems): fix them"
    else:
        what = (
            f"{len(bad_rows)} of {len(check.rows)} rows have problems (listed in data.rows): "
            "fix them, or send drop_bad_rows=true to make the others"
        )
    return ApiError(
        BAD_PARAMETER,
        f"csv: nothing was created: {what}.",
        data={
            "created": False,
            "problems": check.problems,
            "rows": [_row_problems(row) for row in bad_rows],
        },
    )


def _links(request: HttpRequest, batch: Batch) -> dict[str, str]:
    base = public_base_url(request)
    return {
        "self": base + reverse("api:batch", args=[batch.code]),
        "report": base + reverse("api:batch-report", args=[batch.code]),
        "videos": base + reverse("api:batch-videos", args=[batch.code]),
        "page": base + batch.get_absolute_url(),
    }


def batch_object(request: HttpRequest, token: ApiToken, batch: Batch) -> dict[str, Any]:
    """The batch and its rows: counts, each row's status and reason, and video links."""
    progress = batch_progress(batch)
    base = public_base_url(request)
    rows = []
    for job in progress.rows:
        status = ROW_STATUS.get(job.status, "running")
        rows.append(
            {
                "row": job.batch_row,
                "name": job.name,
                "task_id": str(job.code),
                "status": status,
                "reason": job.error_message if status in ("failed", "canceled") else "",
                "video_url": (
                    video_url(job, token=token, base_url=base)
                    if status == "done" and job.video
                    else ""
                ),
            }
        )
    return {
        "batch_id": str(batch.code),
        "name": batch.name,
        "source": batch.source,
        "created_at": int(batch.created.timestamp() * 1000),
        "state": progress.state,
        "problem": progress.problem,
        "finished": progress.is_final,
        "total": progress.total,
        "done": progress.done,
        "running": progress.running,
        "queued": progress.queued,
        "failed": progress.failed,
        "canceled": progress.canceled,
        "voiceovers_needed": progress.voiceovers_needed,
        "voiceovers_made": progress.voiceovers_made,
        "eta_seconds": None if progress.eta_seconds is None else round(progress.eta_seconds),
        "rows": rows,
        "links": _links(request, batch),
    }


@api_view("POST")
def batches(request: HttpRequest, token: ApiToken) -> Any:
    """Check a spreadsheet (and its ZIP) and make the batch, or refuse it with every problem."""
    access = _access(token, "create_batch")
    given = batch_request(request)
    template = _template(token, given.template)
    try:
        made = batch_from_spreadsheet(
            team=access.team,
            user=token.user,
            csv_text=given.csv_text,
            archive=given.archive,
            template=template,
            drop_bad_rows=given.drop_bad_rows,
            name=given.name,
            filename=given.filename,
            source=Batch.Source.API,
        )
    except ValidationError as exc:  # the quota or the library moved since the check
        text = " ".join(exc.messages)
        if exc.code == "quota":
            raise ApiError(QUOTA_USED_UP, f"quota: {text}") from None
        raise bad("csv", text) from None
    if made.batch is None:
        raise _refused(made.check, given.drop_bad_rows)
    return batch_object(request, token, made.batch) | {
        "dropped_rows": [_row_problems(row) for row in made.dropped]
    }


@api_view("GET")
def batch(request: HttpRequest, token: ApiToken, ref: str) -> Any:
    """A batch's progress: the counts, and every row with its status, reason and video."""
    _access(token, "view")
    return batch_object(request, token, _batch(token, ref))


@api_view("GET")
def batch_report(request: HttpRequest, token: ApiToken, ref: str) -> HttpResponse:
    """The report as CSV (row, name, status, reason, video), the video links signed for the
    token like a task's."""
    _access(token, "download")
    found = _batch(token, ref)
    base = public_base_url(request)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(REPORT_HEADER)
    writer.writerows(
        report_rows(
            batch_progress(found).rows, lambda job: video_url(job, token=token, base_url=base)
        )
    )
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    stem = file_stem(found.name, "batch")
    response["Content-Disposition"] = f'attachment; filename="{stem}-report.csv"'
    return response


@api_view("GET")
def batch_videos(request: HttpRequest, token: ApiToken, ref: str) -> StreamingHttpResponse:
    """Every finished video in one ZIP, streamed as it is written."""
    _access(token, "download")
    found = _batch(token, ref)
    entries = video_entries(batch_progress(found).rows)
    response = StreamingHttpResponse(stream_zip(entries), content_type="application/zip")
    stem = file_stem(found.name, "batch")
    response["Content-Disposition"] = f'attachment; filename="{stem}-videos.zip"'
    return response


@api_view("GET", "POST")
def batch_not_found(request: HttpRequest, token: ApiToken, rest: str = "") -> Any:
    """Any other path under /api/batches/: Kling's "not found", after the token is checked."""
    hint = " (batches are made by POST /api/batches, without a trailing slash)" if not rest else ""
    raise ApiError(NOT_FOUND, f"The requested resource does not exist: {request.path}{hint}")
