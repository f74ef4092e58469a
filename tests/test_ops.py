"""The operators' endpoints: /healthz names the dependency that is down (503) and recovers (200);
/metrics is open only to METRICS_TOKEN or METRICS_ALLOWLIST and counts the studio's real jobs;
LOG_FORMAT=json writes one JSON object per line with the job's code on job lines."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import time

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from django_q.conf import Conf
from prometheus_client.parser import text_string_to_metric_families

from avatarsite.logformat import JsonFormatter
from jobs import heartbeat
from jobs.models import AvatarJob, KlingAccount
from jobs.services.jobs import job_advance
from tests.helpers import ROOT, new_job

pytestmark = pytest.mark.django_db


def dead_port() -> int:
    """A loopback port nothing listens on (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(client, *, detail: bool = True) -> tuple[int, dict]:
    """/healthz as a monitor holding the metrics token sees it (the reasons), or as anyone."""
    if not detail:
        response = client.get("/healthz")
    else:
        with override_settings(METRICS_TOKEN="monitor-secret"):
            response = client.get("/healthz", HTTP_AUTHORIZATION="Bearer monitor-secret")
    return response.status_code, response.json()


@pytest.fixture
def alive() -> None:
    heartbeat.beat()


# --- /healthz ------------------------------------------------------------------------------


def test_healthy_studio_answers_200_naming_every_check(client, alive, s3):
    status, body = health(client)
    assert status == 200, body
    assert body == {
        "status": "ok",
        "failing": [],
        "checks": dict.fromkeys(
            ["database", "cache", "queue", "storage", "worker_heartbeat"], "ok"
        ),
    }
    assert s3.object_keys() == []  # the storage check deleted its test file


def test_stopped_object_storage_fails_storage_and_recovers(client, alive, s3):
    s3.stop()
    status, body = health(client)
    assert (status, body["failing"]) == (503, ["storage"])
    s3.start()
    assert health(client)[0] == 200


def test_dead_cache_fails_the_cache_and_recovers(client, alive, settings):
    good = settings.CACHES
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{dead_port()}/0",
        }
    }
    status, body = health(client)
    assert status == 503
    # The heartbeat lives in the cache too, so it cannot be read either.
    assert body["failing"] == ["cache", "worker_heartbeat"], body
    settings.CACHES = good
    heartbeat.beat()
    assert health(client)[0] == 200


def test_dead_broker_fails_the_queue_and_recovers(client, alive, monkeypatch):
    # django-q2 reads Q_CLUSTER once into Conf: point that at a Redis nobody runs.
    with monkeypatch.context() as m:
        m.setattr(Conf, "ORM", None)
        m.setattr(Conf, "DJANGO_REDIS", None)
        m.setattr(Conf, "REDIS", f"redis://127.0.0.1:{dead_port()}/0")
        status, body = health(client)
        assert (status, body["failing"]) == (503, ["queue"])
        assert "unreachable" in body["checks"]["queue"]
    assert health(client)[0] == 200


def test_anyone_sees_which_check_fails_but_not_why(client, settings):
    from django.core.cache import cache

    cache.delete(heartbeat.HEARTBEAT_KEY)
    status, body = health(client, detail=False)
    assert (status, body["failing"]) == (503, ["worker_heartbeat"])
    assert body["checks"]["worker_heartbeat"] == "failing"
    assert "no worker has written a heartbeat" in health(client)[1]["checks"]["worker_heartbeat"]


def test_stale_or_missing_worker_heartbeat_fails_and_recovers(client, settings):
    settings.WORKER_HEARTBEAT_MAX_AGE = 60
    from django.core.cache import cache

    cache.delete(heartbeat.HEARTBEAT_KEY)
    status, body = health(client)
    assert (status, body["failing"]) == (503, ["worker_heartbeat"])
    assert "no worker has written a heartbeat" in body["checks"]["worker_heartbeat"]
    heartbeat.beat(now=time.time() - 300)
    status, body = health(client)
    assert (status, body["failing"]) == (503, ["worker_heartbeat"])
    assert "300 s old (limit 60 s)" in body["checks"]["worker_heartbeat"]
    heartbeat.beat()
    assert health(client)[0] == 200


@pytest.mark.slow
def test_a_running_worker_writes_its_heartbeat(worker, client):
    from django.core.cache import cache

    cache.delete(heartbeat.HEARTBEAT_KEY)
    deadline = time.monotonic() + 60
    while heartbeat.age() is None and time.monotonic() < deadline:
        time.sleep(0.3)
    assert heartbeat.age() is not None and heartbeat.age() < 15
    assert health(client)[1]["checks"]["worker_heartbeat"] == "ok"


# --- /metrics ------------------------------------------------------------------------------


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


@pytest.mark.parametrize(
    ("token", "allowlist", "headers", "allowed"),
    [
        ("", [], {}, False),  # neither set: nobody
        ("s3cret-metrics", [], {}, False),
        ("s3cret-metrics", [], {"HTTP_AUTHORIZATION": "Bearer wrong"}, False),
        ("s3cret-metrics", [], {"HTTP_AUTHORIZATION": "Bearer s3cret-metrics"}, True),
        ("", ["10.0.0.0/8"], {}, False),  # the test client comes from 127.0.0.1
        ("", ["127.0.0.0/8"], {}, True),
        ("s3cret-metrics", ["127.0.0.1/32"], {"HTTP_AUTHORIZATION": "Bearer wrong"}, False),
    ],
)
def test_metrics_open_only_to_the_token_or_the_allowlist(
    client, settings, token, allowlist, headers, allowed
):
    import ipaddress

    settings.METRICS_TOKEN = token
    settings.METRICS_ALLOWLIST = [ipaddress.ip_network(n) for n in allowlist]
    response = client.get("/metrics", **headers)
    if allowed:
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/plain")
        assert b"avatarsite_jobs" in response.content
    else:
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert b"METRICS_TOKEN" in response.content and b"avatarsite_" not in response.content


def test_metrics_count_the_studios_real_jobs(
    client, settings, team, owner, portrait, audio, queued, done, failed
):
    settings.METRICS_TOKEN = "t0ken"
    settings.KLING_MAX_CONCURRENCY = 4
    new_job(team, owner, portrait, audio, mode="std", status=AvatarJob.Status.SUBMITTED)
    new_job(team, owner, portrait, audio, mode="pro", status="failed", error_code="1301")
    account = KlingAccount.get()
    account.paused_until, account.pause_code = timezone.now() + timezone.timedelta(hours=1), "1102"
    account.save()
    heartbeat.beat(now=time.time() - 7)
    client.get(reverse("login"))  # one request for django-prometheus to count
    found = samples(client.get("/metrics", HTTP_AUTHORIZATION="Bearer t0ken").content.decode())

    def jobs(status: str, mode: str) -> float:
        return found[("avatarsite_jobs", (("mode", mode), ("status", status)))]

    assert (jobs("queued", "draft"), jobs("succeeded", "draft"), jobs("failed", "draft")) == (
        1,
        1,
        1,
    )
    assert (jobs("submitted", "std"), jobs("failed", "pro"), jobs("canceled", "std")) == (1, 1, 0)
    assert found[("avatarsite_job_errors", (("code", "render_failed"), ("mode", "draft")))] == 1
    assert found[("avatarsite_job_errors", (("code", "1301"), ("mode", "pro")))] == 1
    assert found[("avatarsite_kling_slots_in_use", ())] == 1
    assert found[("avatarsite_kling_slots_limit", ())] == 4
    assert found[("avatarsite_kling_paused", (("code", "1102"),))] == 1
    assert found[("avatarsite_queue_depth", ())] >= 0
    assert 6 <= found[("avatarsite_worker_heartbeat_age_seconds", ())] < 60
    # The finished draft spent 12 s rendering (tests/helpers.finish).
    rendering = (("mode", "draft"), ("stage", "rendering"))
    assert found[("avatarsite_job_stage_seconds_count", rendering)] == 1
    assert found[("avatarsite_job_stage_seconds_sum", rendering)] == pytest.approx(12, abs=1)

    def bucket(le: str) -> float:
        labels = tuple(sorted({**dict(rendering), "le": le}.items()))
        return found[("avatarsite_job_stage_seconds_bucket", labels)]

    assert (bucket("5"), bucket("15"), bucket("+Inf")) == (0, 1, 1)
    # django-prometheus's own: requests and the database.
    assert any(name == "django_http_requests_total_by_method_total" for name, _ in found)
    assert any(name.startswith("django_db_execute") for name, _ in found)


# --- LOG_FORMAT=json -----------------------------------------------------------------------


def test_json_log_lines_carry_the_job_code(queued):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("jobs")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        job_advance(job_id=queued.pk)  # a real draft render, logged as the worker logs it
        logging.getLogger("jobs.test").exception("boom\nsecond line", exc_info=ValueError("x"))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    lines = stream.getvalue().splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one whole object
    about_job = [e for e in entries if e.get("job") == str(queued.code)]
    assert about_job and about_job[0]["message"].startswith(f"stored the result of {queued.code}")
    assert {"time", "level", "logger", "message"} <= set(about_job[0])
    last = entries[-1]
    assert last["message"] == "boom\nsecond line" and "ValueError: x" in last["exception"]


def test_log_format_json_setting_makes_the_console_write_json(tmp_path):
    env = {**os.environ, "LOG_FORMAT": "json", "DATA_DIR": str(tmp_path)}
    code = (
        "import logging; "
        "logging.getLogger('jobs.engines.draft').warning('render failed', extra={'job': 'c0de'})"
    )
    proc = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    line = json.loads(proc.stderr.strip().splitlines()[-1])
    assert (line["level"], line["logger"], line["job"]) == ("WARNING", "jobs.engines.draft", "c0de")
