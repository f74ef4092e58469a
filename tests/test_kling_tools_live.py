"""Kling's own tools, unchanged, against the studio behind HTTPS: the public npm client
`kling-api` (installed from the npm registry by the test run) with a key pair from
`create_api_token --pair`, and a Python script written from Kling's docs (TTS, then an avatar
task with that audio_id, then polling), in draft mode with no Kling key and in std mode against
the Kling simulator. The studio sits behind a TLS-terminating proxy with a certificate made
now (tests/tls.py), as in the README's deployment recipe."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from django.core.management import call_command

from jobs.kling.simulator import KlingSimulator
from jobs.models import Asset, AvatarJob
from tests.helpers import (
    Worker,
    fast_config,
    make_audio_file,
    make_portrait_bytes,
    simulated_kling,
    subprocess_env,
)
from tests.tls import TlsProxy, make_certificate

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
NPM_PACKAGE = "kling-api@1"  # https://www.npmjs.com/package/kling-api
NPM_CACHE = ROOT / "var" / "npm" / "kling-api"


@pytest.fixture(autouse=True)
def fast_passwords(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def https_studio(transactional_db, live_server, settings, tmp_path) -> Iterator[dict[str, Any]]:
    """The live server behind HTTPS on [::1]: (url, cert). As in production behind a proxy,
    Django believes X-Forwarded-Proto (settings.py sets this when PUBLIC_BASE_URL is https)."""
    cert, key = make_certificate(tmp_path)
    upstream = urlsplit(live_server.url)
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "[::1]", "localhost", "127.0.0.1"]
    with TlsProxy((upstream.hostname or "127.0.0.1", upstream.port or 80), cert, key) as proxy:
        yield {"url": proxy.url, "cert": cert, "proxy": proxy}


@pytest.fixture
def key_pair(owner, team) -> tuple[str, str]:
    out = StringIO()
    call_command("create_api_token", owner.username, "--pair", "--name", "kling tools", stdout=out)
    *_, access_key, secret = out.getvalue().strip().splitlines()
    return access_key, secret


@pytest.fixture
def inputs(tmp_path) -> dict[str, Path]:
    portrait = tmp_path / "portrait.jpg"
    portrait.write_bytes(make_portrait_bytes())
    return {"portrait": portrait, "recording": make_audio_file(tmp_path / "hello.mp3", 3.0)}


@pytest.fixture
def sim(settings) -> Iterator[KlingSimulator]:
    with simulated_kling(settings, fast_config(max_concurrency=5)) as simulator:
        yield simulator


def sim_env(media_root: Path, simulator: KlingSimulator) -> dict[str, str]:
    return subprocess_env(
        media_root,
        KLING_BASE_URL=simulator.base_url,
        KLING_API_KEY=simulator.config.api_key,
        KLING_ACCESS_KEY="",
        KLING_SECRET_KEY="",
        KLING_POLL_SECONDS="1",
        KLING_HTTP_TIMEOUT="5",
        PUBLIC_BASE_URL="",
    )


def no_kling_env(media_root: Path) -> dict[str, str]:
    return subprocess_env(
        media_root, KLING_API_KEY="", KLING_ACCESS_KEY="", KLING_SECRET_KEY="", PUBLIC_BASE_URL=""
    )


def kling_api_module() -> Path:
    """The npm package's entry module, installed into var/npm once (npm at test time only)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are not installed: the npm client test needs them")
    module = NPM_CACHE / "node_modules" / "kling-api" / "dist" / "api.js"
    if not module.exists():
        NPM_CACHE.mkdir(parents=True, exist_ok=True)
        try:
            result = subprocess.run(
                [
                    "npm",
                    "install",
                    "--prefix",
                    str(NPM_CACHE),
                    "--no-audit",
                    "--no-fund",
                    "--no-save",
                    NPM_PACKAGE,
                ],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.skip("npm install kling-api timed out: is the npm registry reachable?")
        if result.returncode != 0 or not module.exists():
            pytest.skip(
                f"npm install {NPM_PACKAGE} failed (registry unreachable?): "
                f"{result.stderr.strip()[-300:]}"
            )
    return module


def steps(output: str) -> dict[str, Any]:
    return {line["step"]: line for line in map(json.loads, output.splitlines()) if line}


def is_mp4(path: Path) -> bool:
    return path.stat().st_size > 0 and path.read_bytes()[4:8] == b"ftyp"


# --- HTTPS in front ------------------------------------------------------------------------


def test_the_studio_answers_over_https_with_https_links(https_studio, key_pair):
    from tests.test_api_kling_tools import sign

    reply = requests.get(
        f"{https_studio['url']}/kling/v1/videos/avatar/image2video",
        headers={"Authorization": f"Bearer {sign(*key_pair)}"},
        verify=str(https_studio["cert"]),
        timeout=30,
    )
    assert reply.status_code == 200 and reply.json()["code"] == 0
    doc = requests.get(
        f"{https_studio['url']}/kling/openapi.json", verify=str(https_studio["cert"]), timeout=30
    ).json()
    assert doc["servers"][0]["url"].startswith(https_studio["url"])
    # And a client that does not trust the certificate refuses it.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{https_studio['url']}/kling/openapi.json", timeout=30)


# --- the npm client --------------------------------------------------------------------------


def test_the_npm_kling_api_client_makes_and_downloads_avatars(
    https_studio, key_pair, inputs, sim, media_root, tmp_path, team
):
    module = kling_api_module()
    out_dir = tmp_path / "npm-out"
    env = {
        **os.environ,
        "KLING_API_MODULE": str(module),
        "STUDIO_URL": https_studio["url"],
        "NODE_EXTRA_CA_CERTS": str(https_studio["cert"]),
        "KLING_ACCESS_KEY": key_pair[0],
        "KLING_SECRET_KEY": key_pair[1],
        "PORTRAIT": str(inputs["portrait"]),
        "RECORDING": str(inputs["recording"]),
        "OUT_DIR": str(out_dir),
        "NODE_ENV": "development",
    }
    with Worker(sim_env(media_root, sim), tmp_path / "worker.log"):
        result = subprocess.run(
            ["node", str(ROOT / "tests" / "kling_npm_client.mjs")],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-2000:]
    got = steps(result.stdout)
    assert got["create-std"]["code"] == 0
    assert got["succeed-std"]["task"]["task_status"] == "succeed"
    assert got["succeed-draft"]["task"]["task_status"] == "succeed"
    for name in ("saved-std", "saved-draft"):
        (path,) = got[name]["paths"]
        assert is_mp4(Path(path)), name
    jobs = {job.mode: job for job in AvatarJob.objects.filter(team=team)}
    assert set(jobs) == {"std", "draft"}
    assert jobs["std"].client_external_id == "npm-std-1"
    assert sim.snapshot()["tasks_created"] == 1  # the draft never went to Kling
    assert got["costs"]["code"] == 0
    assert "resource_pack_subscribe_infos" in got["costs"]["data"]
    assert (got["wrong-secret"]["code"], got["wrong-secret"]["httpStatus"]) == (1002, 401)
    assert (got["expired"]["code"], got["expired"]["httpStatus"]) == (1004, 401)
    assert (got["not-yet-valid"]["code"], got["not-yet-valid"]["httpStatus"]) == (1003, 401)


# --- a script written from Kling's docs ------------------------------------------------------


def run_docs_script(https_studio, key_pair, inputs, tmp_path, mode: str) -> dict[str, Any]:
    out = tmp_path / f"{mode}.mp4"
    env = {
        **os.environ,
        "KLING_BASE_URL": https_studio["url"],
        "KLING_ACCESS_KEY": key_pair[0],
        "KLING_SECRET_KEY": key_pair[1],
        "REQUESTS_CA_BUNDLE": str(https_studio["cert"]),
    }
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests" / "kling_docs_script.py"),
            str(inputs["portrait"]),
            str(out),
            mode,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-2000:]
    assert is_mp4(out)
    return steps(result.stdout)


def test_the_docs_script_runs_as_a_draft_with_no_kling_key(
    https_studio, key_pair, inputs, settings, media_root, tmp_path, team
):
    settings.KLING_API_KEY = settings.KLING_ACCESS_KEY = settings.KLING_SECRET_KEY = ""
    with Worker(no_kling_env(media_root), tmp_path / "worker.log"):
        got = run_docs_script(https_studio, key_pair, inputs, tmp_path, "draft")
    voice = Asset.objects.get(code=got["tts"]["audio_id"])
    assert voice.team == team and voice.voice_engine == "espeak"  # the offline voice
    job = AvatarJob.objects.get(code=got["create"]["task_id"])
    assert job.mode == "draft" and job.audio == voice


def test_the_docs_script_runs_on_std_against_the_kling_simulator(
    https_studio, key_pair, inputs, sim, media_root, tmp_path, team
):
    with Worker(sim_env(media_root, sim), tmp_path / "worker.log"):
        got = run_docs_script(https_studio, key_pair, inputs, tmp_path, "std")
    voice = Asset.objects.get(code=got["tts"]["audio_id"])
    assert voice.voice_engine == "kling" and voice.kling_audio_id  # in the library at once
    job = AvatarJob.objects.get(code=got["create"]["task_id"])
    assert job.mode == "std" and job.audio == voice
    stats = sim.snapshot()
    assert stats["tasks_created"] == 1
    # Fresh, so Kling got its own audio id rather than our copy.
    assert stats["audio_inputs"].get("audio_id") == 1, stats["audio_inputs"]
