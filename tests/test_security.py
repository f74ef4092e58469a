"""Production safety: deploy checks, a strict CSP, brute-force protection."""

from __future__ import annotations

import ipaddress
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


# --- the lockout behind a reverse proxy (PROXY_COUNT, TRUSTED_PROXIES) ---------------------


def _fail_until_locked(client, settings, **headers) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        last = client.post("/accounts/login/", {"username": "alice", "password": "x"}, **headers)
    assert last.status_code == 429


def _log_in(client, **headers) -> int:
    data = {"username": "alice", "password": "alice-pass-1"}
    return client.post("/accounts/login/", data, **headers).status_code


def test_behind_one_proxy_each_client_has_its_own_lock(client, owner, settings):
    settings.PROXY_COUNT = 1
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    _fail_until_locked(client, settings, HTTP_X_FORWARDED_FOR="198.51.100.7", **proxy)
    # The attacker's address stays locked, even when it puts another address first...
    spoofed = "203.0.113.9, 198.51.100.7"  # what the proxy makes of a forged header
    assert _log_in(client, HTTP_X_FORWARDED_FOR=spoofed, **proxy) == 429
    # ...while the real user, behind the same proxy, logs in.
    assert _log_in(client, HTTP_X_FORWARDED_FOR="198.51.100.8", **proxy) == 302


def test_without_a_proxy_the_header_is_ignored(client, owner, settings):
    settings.PROXY_COUNT = 0
    _fail_until_locked(client, settings, HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert _log_in(client, HTTP_X_FORWARDED_FOR="198.51.100.8") == 429  # spoofing is no escape


def test_trusted_proxies_limit_who_may_send_the_header(client, owner, settings):
    settings.PROXY_COUNT = 1
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    _fail_until_locked(
        client, settings, HTTP_X_FORWARDED_FOR="198.51.100.7", REMOTE_ADDR="192.0.2.1"
    )
    # Straight from the internet (not via the proxy): the header is not believed.
    assert _log_in(client, HTTP_X_FORWARDED_FOR="198.51.100.8", REMOTE_ADDR="192.0.2.1") == 429
    assert _log_in(client, HTTP_X_FORWARDED_FOR="198.51.100.8", REMOTE_ADDR="10.0.0.2") == 302
