"""Configuration is parsed strictly: a bad value stops start-up and names the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from avatarsite.env import Env
from tests.helpers import ROOT


def test_bool_accepts_common_spellings():
    env = Env({"A": "yes", "B": "0", "C": "TRUE"})
    assert (env.bool("A"), env.bool("B"), env.bool("C"), env.bool("MISSING", True)) == (
        True,
        False,
        True,
        True,
    )


@pytest.mark.parametrize(
    ("environ", "call", "fragment"),
    [
        ({"DEBUG": "maybe"}, lambda e: e.bool("DEBUG"), "DEBUG='maybe' is not a yes/no value"),
        ({"N": "ten"}, lambda e: e.int("N", 1), "N='ten' is not a whole number"),
        ({"N": "0"}, lambda e: e.int("N", 1, minimum=1), "N=0 is too small"),
        ({"U": "ftp://x"}, lambda e: e.url("U"), "U='ftp://x' is not a valid URL"),
        ({"U": "http://"}, lambda e: e.url("U"), "U='http://' is not a valid URL"),
    ],
)
def test_bad_values_name_the_variable(environ, call, fragment):
    with pytest.raises(ImproperlyConfigured, match=fragment.replace("(", r"\(")):
        call(Env(environ))


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("DEBUG", "perhaps", "DEBUG='perhaps'"),
        ("KLING_MAX_CONCURRENCY", "lots", "KLING_MAX_CONCURRENCY='lots'"),
        ("KLING_MAX_AUDIO_SECONDS", "301", "KLING_MAX_AUDIO_SECONDS=301 is too large"),
        ("KLING_ACCESS_KEY", "only-half", "KLING_ACCESS_KEY and KLING_SECRET_KEY go together"),
        ("PUBLIC_BASE_URL", "example.com", "PUBLIC_BASE_URL='example.com'"),
        ("DATABASE_URL", "nonsense://x", "DATABASE_URL"),
        ("Q_POLL_MS", "1", "Q_POLL_MS=1 is too small: the minimum is 10"),
        ("PRIVATE_URL_ALLOWLIST", "10.0.0.0/8,intranet", "PRIVATE_URL_ALLOWLIST: 'intranet'"),
        ("TRUSTED_PROXIES", "10.0.0.300", "TRUSTED_PROXIES: '10.0.0.300'"),
        ("PROXY_COUNT", "one", "PROXY_COUNT='one'"),
        ("STORAGE_URL", "http://bucket/media", "STORAGE_URL='http://bucket/media' is not an obj"),
        ("STORAGE_URL", "s3://Bad_Bucket", "STORAGE_URL='s3://Bad_Bucket' is not an object"),
        ("STORAGE_URL", "s3://bucket/a/../b", "STORAGE_URL='s3://bucket/a/../b': the prefix"),
        ("STORAGE_LINK_SECONDS", "5", "STORAGE_LINK_SECONDS=5 is too small"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT='xml' is unknown: use one of text, json"),
        ("METRICS_ALLOWLIST", "10.0.0.0/33", "METRICS_ALLOWLIST: '10.0.0.0/33'"),
        ("WORKER_HEARTBEAT_MAX_AGE", "1", "WORKER_HEARTBEAT_MAX_AGE=1 is too small"),
    ],
)
def test_start_up_stops_with_a_message(name, value, fragment, tmp_path):
    env = {**os.environ, name: value, "DATA_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert fragment in proc.stderr


def _settings_of(env_changes: dict[str, str], tmp_path, expr: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATA_DIR": str(tmp_path), **env_changes}
    env["DJANGO_SETTINGS_MODULE"] = "avatarsite.settings"
    code = f"import django; django.setup(); from django.conf import settings; print({expr})"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_storage_url_selects_s3_storage_and_allows_its_origin(tmp_path):
    proc = _settings_of(
        {
            "STORAGE_URL": "s3://studio-media/prod/files",
            "AWS_S3_ENDPOINT_URL": "https://minio.internal:9000",
            "AWS_ACCESS_KEY_ID": "key",
            "AWS_SECRET_ACCESS_KEY": "secret",
        },
        tmp_path,
        "settings.STORAGES['default']['BACKEND'], "
        "settings.STORAGES['default']['OPTIONS']['bucket_name'], "
        "settings.STORAGES['default']['OPTIONS']['location'], "
        "settings.CONTENT_SECURITY_POLICY['DIRECTIVES']['media-src'][-1]",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [
        "storages.backends.s3.S3Storage",
        "studio-media",
        "prod/files",
        "https://minio.internal:9000",
    ]


def test_half_a_storage_key_pair_stops_start_up(tmp_path):
    proc = _settings_of(
        {"STORAGE_URL": "s3://studio-media", "AWS_ACCESS_KEY_ID": "k"}, tmp_path, "1"
    )
    assert proc.returncode != 0
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together" in proc.stderr
