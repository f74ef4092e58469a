"""The last step of a Kling job: Kling's result streamed into our storage, checked, a poster cut.

The step holds a short lease that is renewed while bytes keep arriving (`_LeaseKeeper`), so a
killed worker's download is taken over within seconds while a long, healthy one goes on.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import IO

from jobs.engines.lifecycle import (
    extend,
    fail,
    job_extra,
    job_finish,
    job_tempdir,
    release,
    retry_delay,
    take,
)
from jobs.ffmpeg import FFmpegError, probe, run_ffmpeg
from jobs.kling.client import ErrorKind, KlingClient, KlingError
from jobs.models import AvatarJob

log = logging.getLogger(__name__)
Status = AvatarJob.Status

MAX_DOWNLOAD_ATTEMPTS = 12
DOWNLOAD_MAX_BYTES = 2 * 1024**3  # a 5-minute 1080p video is a few hundred MB
DOWNLOAD_TIMEOUT = 15 * 60
DOWNLOAD_LEASE = 30.0  # renewed while bytes keep arriving (see _LeaseKeeper)
# Probe, poster and the copy into storage: a minute, plus time for a big file's copy (at a
# conservative 10 MB/s). Short, so a worker killed here delays its job by little.
DOWNLOAD_FINISH_LEASE = 60.0
FINISH_BYTES_PER_SECOND = 10_000_000


class _LeaseLost(Exception):
    """Another worker took this step over; stop without touching the job."""


class _LeaseKeeper:
    """Wraps the download's file and renews the job's lease while bytes keep arriving.

    So the lease can be short (a killed worker's download is taken over in seconds) without
    cutting off a long, healthy one.
    """

    def __init__(self, fh: IO[bytes], job: AvatarJob) -> None:
        self.fh, self.job, self.renewed = fh, job, time.monotonic()

    def write(self, data: bytes) -> int:
        if time.monotonic() - self.renewed > DOWNLOAD_LEASE / 3:
            if not extend(self.job, DOWNLOAD_LEASE):
                raise _LeaseLost
            self.renewed = time.monotonic()
        return self.fh.write(data)


def download(job: AvatarJob) -> None:
    """Stream Kling's result into our storage, check it is a video, cut a poster."""
    if not take(job, DOWNLOAD_LEASE):
        return
    client = KlingClient.from_settings()
    with job_tempdir(job, "kling") as workdir:
        _download(job, client, workdir)


def _download(job: AvatarJob, client: KlingClient, workdir: Path) -> None:
    try:
        url = job.source_url
        if job.attempts > 1:  # the link may have expired: ask Kling for a fresh one
            task = client.get_task(job.task_id)
            url = task.videos[0].url if task.videos else url
        video_path = workdir / "result.mp4"
        with video_path.open("wb") as fh:
            client.download(
                url, _LeaseKeeper(fh, job), max_bytes=DOWNLOAD_MAX_BYTES, timeout=DOWNLOAD_TIMEOUT
            )
        # Probing, the poster and copying into storage come next: hold the job for them.
        size = video_path.stat().st_size
        if not extend(job, DOWNLOAD_FINISH_LEASE + size / FINISH_BYTES_PER_SECOND):
            raise _LeaseLost
        info = probe(video_path)
        if info is None or info.video is None:
            raise KlingError(kind=ErrorKind.RETRYABLE, message="the result is not a video")
        poster_path = workdir / "poster.jpg"
        seek = min(1.0, (info.duration or 0) / 2)
        run_ffmpeg(
            ["-v", "error", "-ss", f"{seek:.2f}", "-i", str(video_path), "-frames:v", "1",
             "-q:v", "3", str(poster_path)],
            timeout=60,
        )  # fmt: skip
        job_finish(
            job=job,
            expect=Status.DOWNLOADING,
            lease=job.next_attempt_at,
            video=video_path,
            poster=poster_path,
            duration=info.duration or job.duration,
        )
    except _LeaseLost:
        log.info("download for %s was taken over by another worker", job.code, extra=job_extra(job))
    except (KlingError, FFmpegError, OSError) as exc:
        log.warning(
            "download for %s failed (attempt %s): %s",
            job.code,
            job.attempts,
            exc,
            extra=job_extra(job),
        )
        if job.attempts >= MAX_DOWNLOAD_ATTEMPTS:
            fail(
                job,
                Status.DOWNLOADING,
                "download_failed",
                "Kling made the video but it could not be saved here after "
                f"{job.attempts} tries ({exc}). An admin can retry it while Kling still keeps "
                "its copy (30 days).",
            )
        else:
            release(job, retry_delay(job.attempts, first=5.0, cap=1800.0))
