"""The Kling simulator speaks Kling's contract over real loopback HTTP (no mocks).

Its images, base64 and fast config (a tiny video factory) are in tests/helpers.py, shared with
tests/test_kling_client.py and the other tests that run the simulator.
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from jobs.kling.simulator import KlingSimulator, sine_wav
from tests.helpers import b64, fast_config, jpeg, tiny_video_factory

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "sim-api-key"
CREATE = "/v1/videos/avatar/image2video"


class Receiver:
    """A loopback HTTP server that records POSTed JSON bodies and serves fixed files by path."""

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        self.files = files or {}
        self.bodies: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def do_GET(self) -> None:
                data = receiver.files.get(self.path)
                self.send_response(200 if data is not None else 404)
                self.send_header("Content-Length", str(len(data or b"")))
                self.end_headers()
                self.wfile.write(data or b"")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for(predicate: Callable[[], Any], timeout: float = 10, interval: float = 0.03) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def make_sim() -> Iterator[Callable[..., KlingSimulator]]:
    started: list[KlingSimulator] = []

    def make(**changes: Any) -> KlingSimulator:
        sim = KlingSimulator(fast_config(**changes)).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def sim(make_sim: Callable[..., KlingSimulator]) -> KlingSimulator:
    return make_sim()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def post(sim: KlingSimulator, body: dict[str, Any], path: str = CREATE) -> requests.Response:
    return requests.post(
        sim.base_url + path, json=body, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10
    )


def get(sim: KlingSimulator, path: str, **params: Any) -> requests.Response:
    return requests.get(
        sim.base_url + path,
        params=params,
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=10,
    )


def create_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"image": b64(jpeg()), "sound_file": b64(sine_wav(3)), "mode": "std"}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def assert_refused(response: requests.Response, code: int, text: str = "") -> None:
    payload = response.json()
    assert payload["code"] == code, payload
    assert text.lower() in payload["message"].lower(), payload


# --- create validation ---------------------------------------------------------------------


def test_image_that_is_not_base64_is_refused(sim: KlingSimulator) -> None:
    response = post(sim, create_body(image="not base64!!"))
    assert response.status_code == 400
    assert_refused(response, 1201, "base64")


def test_data_uri_prefix_is_refused_for_image_and_sound(sim: KlingSimulator) -> None:
    image = post(sim, create_body(image="data:image/jpeg;base64," + b64(jpeg())))
    sound = post(sim, create_body(sound_file="data:audio/wav;base64," + b64(sine_wav(3))))
    assert_refused(image, 1201, "data:")
    assert_refused(sound, 1201, "data:")
    assert sim.snapshot()["tasks_created"] == 0


@pytest.mark.parametrize(
    "audio", [{"audio_id": "123", "sound_file": b64(b"RIFF")}, {"sound_file": None}]
)
def test_exactly_one_audio_field_is_required(sim: KlingSimulator, audio: dict[str, Any]) -> None:
    assert_refused(post(sim, create_body(**audio)), 1201, "exactly one of audio_id and sound_file")


def test_small_image_is_refused_with_its_size(sim: KlingSimulator) -> None:
    assert_refused(post(sim, create_body(image=b64(jpeg(200, 400)))), 1201, "200x400 px")


def test_extreme_aspect_ratio_is_refused(sim: KlingSimulator) -> None:
    assert_refused(post(sim, create_body(image=b64(jpeg(300, 800)))), 1201, "aspect ratio")


def test_gif_is_refused(sim: KlingSimulator) -> None:
    assert_refused(post(sim, create_body(image=b64(jpeg(400, 400, "GIF")))), 1201, "JPG or PNG")


def test_audio_shorter_than_two_seconds_is_refused(sim: KlingSimulator) -> None:
    response = post(sim, create_body(sound_file=b64(sine_wav(1.9))))
    assert_refused(response, 1201, "1.9 s long: it must last at least 2 s")


def test_audio_longer_than_the_maximum_is_refused(make_sim) -> None:
    sim = make_sim(max_audio_seconds=3)
    assert_refused(post(sim, create_body(sound_file=b64(sine_wav(3.5)))), 1201, "at most 3 s")


def test_sound_that_is_not_audio_is_refused(sim: KlingSimulator) -> None:
    assert_refused(post(sim, create_body(sound_file=b64(jpeg()))), 1201, "mp3, wav, m4a or aac")


def test_invalid_mode_and_long_prompt_are_refused(sim: KlingSimulator) -> None:
    assert_refused(post(sim, create_body(mode="turbo")), 1201, "mode")
    assert_refused(post(sim, create_body(prompt="x" * 2501)), 1201, "prompt")


@pytest.mark.parametrize(
    ("params", "ok"),
    [
        ({"pageSize": 0}, False),
        ({"pageSize": 501}, False),
        ({"pageNum": 0}, False),
        ({"pageNum": 1001}, False),
        ({"pageNum": 1000, "pageSize": 500}, True),
    ],
)
def test_list_validates_page_bounds(sim: KlingSimulator, params: dict[str, int], ok: bool) -> None:
    response = get(sim, CREATE, **params)
    if ok:
        payload = response.json()
        assert (payload["code"], payload["data"]) == (0, [])
    else:
        assert_refused(response, 1201, "between")


def test_urls_for_image_and_sound_are_fetched(sim: KlingSimulator) -> None:
    files = Receiver({"/face.png": jpeg(fmt="PNG"), "/voice.wav": sine_wav(2.5)})
    try:
        response = post(
            sim, create_body(image=files.url + "/face.png", sound_file=files.url + "/voice.wav")
        )
        missing = post(sim, create_body(image=files.url + "/nope.png"))
    finally:
        files.close()
    assert response.json()["code"] == 0
    assert_refused(missing, 1201, "HTTP 404")


# --- the task lifecycle ---------------------------------------------------------------------


def test_task_advances_to_succeed_with_a_downloadable_mp4(sim: KlingSimulator) -> None:
    created = post(sim, create_body(external_task_id="job-1")).json()
    data = created["data"]
    assert created["code"] == 0 and created["message"] == "SUCCEED" and created["request_id"]
    assert data["task_id"].isdigit() and data["task_status"] == "submitted"
    assert data["task_info"] == {"external_task_id": "job-1"}
    assert data["created_at"] > 10**12  # milliseconds

    seen = set()

    def finished() -> dict[str, Any] | None:
        task = get(sim, f"{CREATE}/{data['task_id']}").json()["data"]
        seen.add(task["task_status"])
        return task if task["task_status"] == "succeed" else None

    task = wait_for(finished)
    assert "processing" in seen
    video = task["task_result"]["videos"][0]
    assert isinstance(video["duration"], str) and float(video["duration"]) == pytest.approx(3)
    assert task["final_unit_deduction"] == "1.20"
    mp4 = requests.get(video["url"], timeout=10)
    assert mp4.status_code == 200 and mp4.content[4:8] == b"ftyp"
    # The same task is reachable by its external id.
    assert get(sim, f"{CREATE}/job-1").json()["data"]["task_id"] == data["task_id"]


def test_pro_costs_about_twice_std(sim: KlingSimulator) -> None:
    std = post(sim, create_body(mode="std")).json()["data"]["task_id"]
    pro = post(sim, create_body(mode="pro")).json()["data"]["task_id"]
    assert sim.wait_until_finished(10)
    units = {
        tid: float(get(sim, f"{CREATE}/{tid}").json()["data"]["final_unit_deduction"])
        for tid in (std, pro)
    }
    assert units[pro] == pytest.approx(2 * units[std])


def test_failed_tasks_say_why_and_cost_nothing(make_sim) -> None:
    sim = make_sim(fail_rate=1.0)
    task_id = post(sim, create_body()).json()["data"]["task_id"]
    assert sim.wait_until_finished(10)
    task = get(sim, f"{CREATE}/{task_id}").json()["data"]
    assert task["task_status"] == "failed"
    assert "risk" in task["task_status_msg"]
    assert task["task_result"]["videos"] == [] and task["final_unit_deduction"] == "0"


def test_identical_inputs_are_rendered_once(sim: KlingSimulator) -> None:
    for _ in range(3):
        assert post(sim, create_body()).json()["code"] == 0
    assert sim.wait_until_finished(10)
    stats = sim.snapshot()
    assert (stats["renders"], stats["render_cache_hits"]) == (1, 2)
    assert stats["tasks_by_status"] == {"succeed": 3}


def test_concurrency_limit_answers_1303_and_tracks_the_peak(make_sim) -> None:
    sim = make_sim(max_concurrency=2, processing_seconds=0.5)
    assert [post(sim, create_body()).json()["code"] for _ in range(2)] == [0, 0]
    refused = post(sim, create_body())
    assert refused.status_code == 429
    assert_refused(refused, 1303)
    stats = sim.snapshot()
    assert stats["peak_concurrency"] == 2 and stats["current_concurrency"] == 2
    assert stats["rejected_by_code"] == {1303: 1}
    assert stats["rejected_by_reason"] == {"concurrency": 1}
    assert sim.wait_until_finished(10)
    assert post(sim, create_body()).json()["code"] == 0  # a freed slot is usable again


def test_same_external_id_twice_is_refused_and_counted(sim: KlingSimulator) -> None:
    assert post(sim, create_body(external_task_id="job-x")).json()["code"] == 0
    assert_refused(post(sim, create_body(external_task_id="job-x")), 1201, "already exists")
    stats = sim.snapshot()
    assert stats["creates_by_external_id"] == {"job-x": 2}
    assert stats["tasks_created"] == 1 and stats["rejected_by_reason"] == {"duplicate": 1}


def test_unknown_task_is_404_with_1203(sim: KlingSimulator) -> None:
    response = get(sim, f"{CREATE}/999")
    assert response.status_code == 404
    assert_refused(response, 1203)


def test_external_id_lookup_can_be_disabled_like_some_gateways(make_sim) -> None:
    sim = make_sim(lookup_by_external_id=False)
    task_id = post(sim, create_body(external_task_id="job-g")).json()["data"]["task_id"]
    assert_refused(get(sim, f"{CREATE}/job-g"), 1201)
    assert get(sim, f"{CREATE}/{task_id}").json()["code"] == 0


def test_tts_makes_an_audio_id_that_create_accepts(sim: KlingSimulator) -> None:
    tts = post(
        sim,
        {
            "text": "Hello there, this is a test of the voice.",
            "voice_id": "uk_man2",
            "voice_language": "en",
            "voice_speed": 1.0,
        },
        path="/v1/audio/tts",
    ).json()
    audio = tts["data"]["task_result"]["audios"][0]
    assert tts["data"]["task_status"] == "succeed" and float(audio["duration"]) >= 2
    assert requests.get(audio["url"], timeout=10).content[:4] == b"RIFF"
    created = post(sim, create_body(sound_file=None, audio_id=audio["id"])).json()
    assert created["code"] == 0
    assert_refused(post(sim, create_body(sound_file=None, audio_id="42")), 1201, "audio_id")


@pytest.mark.parametrize(
    "change",
    [{"voice_language": "fr"}, {"voice_speed": 2.5}, {"text": "x" * 1001}, {"voice_id": ""}],
)
def test_tts_validates_its_fields(sim: KlingSimulator, change: dict[str, Any]) -> None:
    body = {"text": "Hello", "voice_id": "uk_man2", "voice_language": "en", **change}
    assert_refused(post(sim, body, path="/v1/audio/tts"), 1201)


def test_costs_report_remaining_units_and_are_rate_limited(sim: KlingSimulator) -> None:
    now = int(time.time() * 1000)
    first = get(sim, "/account/costs", start_time=now - 1000, end_time=now).json()
    pack = first["data"]["resource_pack_subscribe_infos"][0]
    assert pack["remaining_quantity"] == pack["total_quantity"]
    assert_refused(get(sim, "/account/costs", start_time=now - 1000, end_time=now), 1302)


# --- auth ----------------------------------------------------------------------------------


def _jwt(sim: KlingSimulator, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": sim.config.access_key, "exp": now + 1800, "nbf": now - 5, **claims}
    return jwt.encode(payload, sim.config.secret_key, algorithm="HS256")


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, 1001),
        ("Bearer wrong-key", 1002),
        ("Basic abc", 1002),
        ("jwt:wrong-secret", 1002),
        ("jwt:wrong-iss", 1002),
        ("jwt:expired", 1004),
        ("jwt:not-yet-valid", 1003),
        ("jwt:ok", 0),
        (f"Bearer {API_KEY}", 0),
    ],
)
def test_auth_is_really_checked(sim: KlingSimulator, header: str | None, code: int) -> None:
    now = int(time.time())
    other_secret = "another-secret-of-at-least-32-bytes!"
    tokens = {
        "jwt:wrong-secret": jwt.encode(
            {"iss": sim.config.access_key, "exp": now + 60, "nbf": now - 5},
            other_secret,
            algorithm="HS256",
        ),
        "jwt:wrong-iss": _jwt(sim, iss="someone-else"),
        "jwt:expired": _jwt(sim, exp=now - 60),
        "jwt:not-yet-valid": _jwt(sim, nbf=now + 60),
        "jwt:ok": _jwt(sim),
    }
    if header in tokens:
        header = f"Bearer {tokens[header]}"
    response = requests.get(
        sim.base_url + CREATE, headers={"Authorization": header} if header else {}, timeout=10
    )
    assert response.json()["code"] == code
    if code:
        assert response.status_code == 401


# --- callbacks -----------------------------------------------------------------------------


def test_callbacks_post_the_bare_task_on_each_status_change(
    sim: KlingSimulator, receiver: Receiver
) -> None:
    post(sim, create_body(external_task_id="job-cb", callback_url=receiver.url + "/hook"))
    wait_for(lambda: len(receiver.bodies) == 3)
    assert [b["task_status"] for b in receiver.bodies] == ["submitted", "processing", "succeed"]
    last = receiver.bodies[-1]
    assert "code" not in last and last["task_info"]["external_task_id"] == "job-cb"
    assert last["task_result"]["videos"][0]["url"]
    # The simulator counts a delivery once its POST has returned, just after the receiver has
    # the body: wait for the count rather than read it in that gap.
    wait_for(lambda: sim.snapshot()["callbacks"] == {"sent": 3}, timeout=5)


def test_callbacks_can_be_duplicated(make_sim, receiver: Receiver) -> None:
    sim = make_sim(callback_duplicate_rate=1.0)
    post(sim, create_body(callback_url=receiver.url))
    wait_for(lambda: len(receiver.bodies) == 6)
    statuses = [b["task_status"] for b in receiver.bodies]
    assert statuses == ["submitted"] * 2 + ["processing"] * 2 + ["succeed"] * 2


def test_callbacks_can_be_dropped(make_sim, receiver: Receiver) -> None:
    sim = make_sim(callback_drop_rate=1.0)
    post(sim, create_body(callback_url=receiver.url))
    assert sim.wait_until_finished(10)
    time.sleep(0.2)
    assert receiver.bodies == [] and sim.snapshot()["callbacks"] == {"dropped": 3}


def test_callbacks_can_arrive_newest_first(make_sim, receiver: Receiver) -> None:
    sim = make_sim(callback_reorder=True)
    post(sim, create_body(callback_url=receiver.url))
    wait_for(lambda: len(receiver.bodies) == 3)
    assert [b["task_status"] for b in receiver.bodies] == ["succeed", "processing", "submitted"]


# --- hooks, prefixes and the command -------------------------------------------------------


def test_stats_and_config_hooks(sim: KlingSimulator) -> None:
    post(sim, create_body(external_task_id="job-s"))
    stats = requests.get(sim.root_url + "/_sim/stats", timeout=10).json()
    assert stats["tasks_created"] == 1 and stats["creates_by_external_id"] == {"job-s": 1}
    assert stats["requests_by_endpoint"]["create"] == 1

    changed = requests.post(
        sim.base_url + "/_sim/config", json={"error_rates": {"5000": 1.0}}, timeout=10
    )
    assert changed.json()["error_rates"] == {"5000": 1.0}
    refused = post(sim, create_body())
    assert refused.status_code == 500
    assert_refused(refused, 5000)
    assert sim.snapshot()["rejected_by_reason"] == {"injected": 1}
    bad = requests.post(sim.root_url + "/_sim/config", json={"nonsense": 1}, timeout=10)
    assert bad.status_code == 400 and "nonsense" in bad.json()["error"]


def test_routes_are_served_with_and_without_the_kling_prefix(sim: KlingSimulator) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    for base in (sim.root_url, sim.base_url):
        assert requests.get(base + CREATE, headers=headers, timeout=10).json()["code"] == 0


@pytest.mark.skipif(
    importlib.util.find_spec("jobs.engines.draft") is None,
    reason="jobs.engines.draft (the draft renderer the default video factory uses) is not there",
)
def test_default_video_factory_uses_the_draft_renderer(make_sim) -> None:
    sim = make_sim(video_factory=None, processing_seconds=0.05)
    task_id = post(sim, create_body()).json()["data"]["task_id"]
    assert sim.wait_until_finished(120)
    task = get(sim, f"{CREATE}/{task_id}").json()["data"]
    assert task["task_status"] == "succeed", task["task_status_msg"]
    video = requests.get(task["task_result"]["videos"][0]["url"], timeout=10).content
    assert video[4:8] == b"ftyp" and video != tiny_video_factory(b"", b"")


def test_command_prints_the_settings_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "kling_simulator",
            "--port",
            "0",
            "--concurrency",
            "3",
            "--error-rate",
            "1302=0.5",
            "--seed",
            "1",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
        bufsize=0,  # unbuffered, so select() sees every line still to be read
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 30
        assert proc.stdout is not None
        while len(lines) < 4 and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                line = proc.stdout.readline().decode()
                if not line:
                    break
                lines.append(line.strip())
        if len(lines) < 4:
            proc.terminate()
            pytest.fail(f"no settings printed: {lines} {proc.communicate(timeout=10)[1][-2000:]}")
        settings = dict(line.split("=", 1) for line in lines)
        assert list(settings) == [
            "KLING_BASE_URL",
            "KLING_API_KEY",
            "KLING_ACCESS_KEY",
            "KLING_SECRET_KEY",
        ]
        assert settings["KLING_BASE_URL"].startswith("http://127.0.0.1:")
        stats = requests.get(settings["KLING_BASE_URL"] + "/_sim/stats", timeout=10).json()
        assert stats["tasks_created"] == 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0
