"""Benchmark the dashboard against its targets, at 10,000 jobs in one team.

Run from the repository root:  .venv/bin/python bench/dashboard.py [--jobs N] [--requests N]

What is measured: the server time of whole requests through Django's full middleware stack
(django.test.Client, logged in, SQLite in a fresh temporary directory), for these URLs in the
same process:
  - the floor: a trivial view that returns HttpResponse("ok"), mounted by this script, behind
    login_required, as every studio page is: Django reads the session and the user for it
    (two queries, about two thirds of the floor). The same view without the login is printed
    beside it as the "bare floor", which no signed-in page can reach: those two queries alone
    take about 2x its time;
  - the dashboard (`/`): the first page of cards, newest first, of a team with N jobs;
  - Django admin's changelist of the same jobs (`/admin/jobs/avatarjob/`, as a superuser).
Each URL is warmed up, then requested many times, interleaved, so a busy neighbour slows all
three alike; figures are medians. SQL queries are counted for one request of each.

Targets: the dashboard's queries do not grow with the number of jobs (at most 10); its median is
at most 4x the floor and below the admin changelist. The last line printed is the summary, e.g.
    dashboard: 6.5 ms median, 5 queries (floor 1.9 ms -> 3.5x; bare floor 0.6 ms -> 11.4x;
    admin changelist 146.9 ms, 6 queries) at 10,000 jobs
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import types
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_QUERIES = 10
TARGET_FLOOR_MULTIPLE = 4.0


def setup_django(data_dir: Path) -> None:
    """A fresh SQLite database in data_dir, whatever the caller's environment points at."""
    for name in ("DATABASE_URL", "REDIS_URL", "MEDIA_ROOT", "DEBUG"):
        os.environ.pop(name, None)
    os.environ["DATA_DIR"] = str(data_dir)
    os.environ["ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
    os.environ["DJANGO_SETTINGS_MODULE"] = "avatarsite.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    # As in production (`make run`): hashed static names come from collectstatic's manifest.
    call_command("collectstatic", interactive=False, verbosity=0)


def mount_floor() -> None:
    """Serve the project's URLs plus /floor/, a view that does nothing, from one urlconf."""
    from django.conf import settings
    from django.contrib.auth.decorators import login_required
    from django.http import HttpResponse
    from django.urls import include, path

    def floor(request):  # noqa: ANN001, ANN202 - the smallest possible view
        return HttpResponse("ok")

    module = types.ModuleType("bench_urls")
    module.urlpatterns = [
        path("floor/", floor),
        # The floor of a studio page: the same, behind the login every one of them has.
        path("floor-login/", login_required(floor)),
        path("", include(settings.ROOT_URLCONF)),
    ]
    sys.modules["bench_urls"] = module
    settings.ROOT_URLCONF = "bench_urls"


def make_user(scratch: Path, *, superuser: bool):  # noqa: ANN201
    """alice, her personal team, and a portrait and a 3 s voice-over in its library."""
    from django.contrib.auth.models import User

    from jobs.media.audio import validate_audio
    from jobs.media.portraits import validate_portrait
    from jobs.models import Team
    from jobs.services.assets import asset_store
    from tests.conftest import make_audio_file, make_portrait_bytes

    make = User.objects.create_superuser if superuser else User.objects.create_user
    user = make("alice", "alice@example.com", "alice-pass-1")
    team = Team.objects.get(memberships__user=user)
    (scratch / "face.jpg").write_bytes(make_portrait_bytes())
    portrait = asset_store(team=team, user=user, valid=validate_portrait(scratch / "face.jpg"))
    audio = asset_store(
        team=team, user=user, valid=validate_audio(make_audio_file(scratch / "v.mp3", 3.0))
    )
    return user, team, portrait, audio


def make_team(jobs: int, scratch: Path):  # noqa: ANN201
    """A superuser's team with `jobs` jobs: mostly done, some failed, the newest few running."""
    from django.utils import timezone

    from jobs.models import AvatarJob

    user, team, portrait, audio = make_user(scratch, superuser=True)
    now = timezone.now()
    S = AvatarJob.Status
    rows = []
    for i in range(jobs):
        created = now - timedelta(minutes=i)
        if i < 4:
            status = (S.QUEUED, S.QUEUED, S.PROCESSING, S.DOWNLOADING)[i]
        elif i % 50 == 7:
            status = S.FAILED
        else:
            status = S.SUCCEEDED
        done = status in (S.SUCCEEDED, S.FAILED)
        rows.append(
            AvatarJob(
                team=team,
                created_by=user,
                portrait=portrait,
                audio=audio,
                prompt=f"Take {i}: smile and nod",
                mode=AvatarJob.Mode.DRAFT,
                status=status,
                created=created,
                processing_at=created + timedelta(seconds=2) if status != S.QUEUED else None,
                finished_at=created + timedelta(seconds=40) if done else None,
                poster=f"results/{team.code}/p{i}.jpg" if status == S.SUCCEEDED else "",
                video=f"results/{team.code}/v{i}.mp4" if status == S.SUCCEEDED else "",
                duration=3.0 if status == S.SUCCEEDED else None,
                error_code="render_failed" if status == S.FAILED else "",
                error_message="The renderer stopped." if status == S.FAILED else "",
            )
        )
    for row in rows:
        row.external_task_id = str(row.code)
    AvatarJob.objects.bulk_create(rows, batch_size=2000)
    return user


def count_queries(client, url: str) -> int:  # noqa: ANN001
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200, url
    return len(queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300, help="timed requests per URL")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        scratch = Path(tmp)
        setup_django(scratch)
        mount_floor()
        from django.test import Client

        from jobs import cards

        user = make_team(args.jobs, scratch)
        client = Client()
        client.force_login(user)
        urls = {
            "floor": "/floor-login/",
            "bare floor": "/floor/",
            "dashboard": "/",
            "admin": "/admin/jobs/avatarjob/",
        }
        queries = {name: count_queries(client, url) for name, url in urls.items()}
        for url in urls.values():  # warm-up: template compilation, caches, SQLite pages
            for _ in range(20):
                client.get(url)
        times: dict[str, list[float]] = {name: [] for name in urls}
        for _ in range(args.requests):
            for name, url in urls.items():
                started = time.perf_counter()
                client.get(url)
                times[name].append((time.perf_counter() - started) * 1000)
        median = {name: statistics.median(values) for name, values in times.items()}
        cards._estimates.clear()

    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name in urls:
        print(
            f"{name:>11}: median {median[name]:.2f} ms, p90 "
            f"{statistics.quantiles(times[name], n=10)[-1]:.2f} ms, {queries[name]} queries"
        )
    multiple = median["dashboard"] / median["floor"]
    missed = []
    if queries["dashboard"] > TARGET_QUERIES:
        missed.append(f"queries > {TARGET_QUERIES}")
    if multiple > TARGET_FLOOR_MULTIPLE:
        missed.append(f"more than {TARGET_FLOOR_MULTIPLE:.0f}x the floor")
    if median["dashboard"] >= median["admin"]:
        missed.append("not below the admin changelist")
    print("targets met" if not missed else f"TARGET MISSED: {', '.join(missed)}")
    print(
        f"dashboard: {median['dashboard']:.1f} ms median, {queries['dashboard']} queries "
        f"(floor {median['floor']:.1f} ms -> {multiple:.1f}x; bare floor "
        f"{median['bare floor']:.1f} ms -> {median['dashboard'] / median['bare floor']:.1f}x; "
        f"admin changelist {median['admin']:.1f} ms, {queries['admin']} queries) "
        f"at {args.jobs:,} jobs"
    )


if __name__ == "__main__":
    main()
