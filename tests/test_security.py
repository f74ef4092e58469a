"""Production safety: deploy checks, a strict CSP, brute-force protection."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.django_db


def test_deploy_check_passes_with_production_settings(tmp_path):
    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "PUBLIC_BASE_URL": "https://studio.example.com",
        "ALLOWED_HOSTS": "studio.example.com",
        "DATA_DIR": str(tmp_path),
    }
    proc = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no issues" in proc.stdout


def test_pages_carry_a_strict_csp(client, owner):
    client.force_login(owner)
    csp = client.get("/")["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp


def test_repeated_wrong_passwords_lock_the_login(client, owner, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
        assert response.status_code == 200
        assert "do not match" in response.content.decode()
    last = client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    assert last.status_code == 429
    locked = client.post("/accounts/login/", {"username": "alice", "password": "alice-pass-1"})
    assert locked.status_code == 429
    assert "Too many wrong passwords" in locked.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_right_password_logs_in(client, owner):
    response = client.post("/accounts/login/", {"username": "alice", "password": "alice-pass-1"})
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(owner.pk)
