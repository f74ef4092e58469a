"""Benchmark checking a 500-row batch: how long, and how many queries per row.

Run from the repository root:  .venv/bin/python bench/batch.py [--runs N]

The batch: 500 rows on a fresh SQLite database. Half name library files (a portrait and a
voice-over already in the team's library), half name files in a ZIP (10 distinct portraits and
10 distinct recordings, 3 s MP3s, each named by many rows), and every fifth row is a script with
a {first_name} placeholder instead of a recording. What is timed is `batch_check` alone: the
CSV parsed, the ZIP opened and each distinct member validated once (ffmpeg for the audio), the
library looked up, every row judged, the quota summed. Synthesis is excluded: it happens only at
the confirmation. Queries are counted with Django's CaptureQueriesContext. Figures are medians
over the runs (a fresh ZIP file handle each run, the same database).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROWS = 500
TARGET_SECONDS = 10.0


def setup(data_dir: Path) -> None:
    """A fresh SQLite database in data_dir, whatever the caller's environment points at."""
    for name in ("DATABASE_URL", "REDIS_URL", "MEDIA_ROOT", "DEBUG"):
        os.environ.pop(name, None)
    os.environ["DATA_DIR"] = str(data_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "avatarsite.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        setup(work)
        from django.contrib.auth.models import User
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from jobs.media.audio import validate_audio
        from jobs.media.portraits import validate_portrait
        from jobs.models import Team
        from jobs.services.assets import asset_store
        from jobs.services.batches import batch_check
        from tests.helpers import make_audio_file, make_portrait_bytes

        user = User.objects.create_user("bench", password="x")
        team = Team.objects.get(memberships__user=user)
        team.quota_draft_seconds = 1_000_000  # a limit, so the month's usage is summed too
        team.save()
        (work / "lib.jpg").write_bytes(make_portrait_bytes())
        lib_portrait = asset_store(team=team, user=user, valid=validate_portrait(work / "lib.jpg"))
        lib_audio = asset_store(
            team=team, user=user, valid=validate_audio(make_audio_file(work / "lib.mp3", 3.0))
        )
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
            for i in range(10):
                z.writestr(f"faces/p{i}.jpg", make_portrait_bytes((480 + i * 8, 600)))
                voice = make_audio_file(work / f"v{i}.mp3", 3.0, frequency=200 + i * 20)
                z.write(voice, f"voices/v{i}.mp3")
        lines = ["name,portrait,audio,script,mode,first_name"]
        for n in range(ROWS):
            library = n % 2 == 0
            portrait = lib_portrait.name if library else f"p{n % 10}.jpg"
            if n % 5 == 0:
                script = '"Hello {first_name}, welcome to the team. We are glad to have you."'
                lines.append(f"Row {n},{portrait},,{script},draft,Person {n}")
            else:
                audio = lib_audio.name if library else f"voices/v{n % 10}.mp3"
                lines.append(f"Row {n},{portrait},{audio},,draft,")
        text = "\n".join(lines) + "\n"
        seconds, queries = [], []
        for _ in range(args.runs):
            archive.seek(0)
            with CaptureQueriesContext(connection) as captured:
                start = time.perf_counter()
                check = batch_check(team=team, csv_text=text, archive=archive)
                seconds.append(time.perf_counter() - start)
            assert check.ok, check.lines()[:5]
            queries.append(len(captured.captured_queries))
        median = statistics.median(seconds)
        q = statistics.median(queries)
        runs = ", ".join(f"{s:.2f}" for s in seconds)
        print(
            f"batch check, {ROWS} rows (half library, half ZIP of 20 files, 1 in 5 scripts), "
            f"{args.runs} runs: median {median:.2f} s (runs {runs}), "
            f"{q:.0f} queries = {q / ROWS:.3f} per row; target < {TARGET_SECONDS:.0f} s"
        )
        if median >= TARGET_SECONDS:
            sys.exit(1)


if __name__ == "__main__":
    main()
