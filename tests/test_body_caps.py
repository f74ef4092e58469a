"""Bodies refused before they are read (issue 13): by Content-Length in the first middleware,
while streaming in the first upload handler, and by structure before the API parses JSON.

Requests go through Django's test client and through a real socket to the live server, with
honest, lying and missing lengths; refused ones must leave no temporary file and never reach
CSRF or the view, and the largest legitimate request of each route must still pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import socket
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.handlers.asgi import ASGIHandler
from django.middleware.csrf import CsrfViewMiddleware
from django.test import Client
from django.urls import reverse
from PIL import Image

from jobs import bodycaps
from jobs.api.contract import BAD_PARAMETER, BAD_REQUEST, BODY_MAX_BYTES
from jobs.api.inputs import JSON_MAX_DEPTH, JSON_MAX_VALUES
from jobs.media.limits import AUDIO_MAX_BYTES, MB, PORTRAIT_MAX_BYTES
from jobs.models import Asset, AvatarJob
from jobs.services.api_tokens import api_token_create
from tests.helpers import b64, login

pytestmark = pytest.mark.django_db

CREATE = "/kling/v1/videos/avatar/image2video"
BOUNDARY = "----bodycapboundary"


# --- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture(autouse=True)
def upload_temp_dir(settings, tmp_path: Path) -> Path:
    """Every upload spooled to disk lands here, so a test can see that none is left."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(folder)
    return folder


@pytest.fixture
def ran(monkeypatch) -> list[str]:
    """Records 'csrf' when CsrfViewMiddleware sees a request and 'view' when a studio view or
    the API view starts: a refused body must reach neither."""
    seen: list[str] = []
    csrf_request = CsrfViewMiddleware.process_request

    def spy_csrf(self: CsrfViewMiddleware, request: Any) -> Any:
        seen.append("csrf")
        return csrf_request(self, request)

    monkeypatch.setattr(CsrfViewMiddleware, "process_request", spy_csrf)
    import jobs.api.views
    import jobs.views.job_new

    for module, name in ((jobs.views.job_new, "current_team"), (jobs.api.views, "json_body")):
        original = getattr(module, name)

        def spy(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            seen.append("view")
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)
    return seen


def big_portrait(target: int) -> bytes:
    """A valid PNG of noise a little under `target` bytes (noise does not compress)."""
    side = int((target / 3) ** 0.5) - 8
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=0)
    return out.getvalue()


def big_wav(target: int) -> bytes:
    """A valid mono 16-bit WAV a little under `target` bytes."""
    frames = (target - 4096) // 2
    out = io.BytesIO()
    with wave.open(out, "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(44100)
        # A quiet ramp, not silence: some checks refuse an all-zero voice-over.
        file.writeframes((bytes(range(200)) * (frames // 100 + 1))[: frames * 2])
    return out.getvalue()


@pytest.fixture(scope="session")
def largest() -> dict[str, bytes]:
    """A portrait and a voice-over each within 100 KB of their limits."""
    portrait = big_portrait(PORTRAIT_MAX_BYTES - 100 * 1024)
    audio = big_wav(AUDIO_MAX_BYTES - 100 * 1024)
    assert PORTRAIT_MAX_BYTES - 200 * 1024 < len(portrait) <= PORTRAIT_MAX_BYTES
    assert AUDIO_MAX_BYTES - 200 * 1024 < len(audio) <= AUDIO_MAX_BYTES
    return {"portrait": portrait, "audio": audio}


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    for name, (filename, data) in files.items():
        head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        parts.append(head.encode() + data + b"\r\n")
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def csrf_client() -> Client:
    """A browser-like client: CSRF is checked, and it holds a token, so CSRF would read the
    body (the case the issue is about) if the cap let it."""
    client = Client(enforce_csrf_checks=True)
    client.cookies["csrftoken"] = "a" * 32
    return client


def raw_request(live_server: Any, head: str, body_parts: Iterator[bytes]) -> tuple[int, bytes]:
    """Send a request by hand; return (status, body) of the answer, which may come before the
    body is sent in full (the server closes the connection after refusing)."""
    host, port = live_server.thread.host, live_server.thread.port
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(head.encode("latin-1"))
        try:
            for part in body_parts:
                sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused midway: the answer is waiting
        with contextlib.suppress(OSError):  # the server may have closed the connection
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def head_for(path: str, headers: dict[str, str], live_server: Any) -> str:
    lines = [f"POST {path} HTTP/1.1", f"Host: {live_server.thread.host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return "\r\n".join(lines) + "\r\n\r\n"


def megabytes(total: int, piece: int = 1 * MB) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * min(piece, total - sent)
        sent += piece


# --- the route table -----------------------------------------------------------------------


def test_caps_sit_a_little_above_each_routes_largest_request():
    new_job = bodycaps.cap_for("/jobs/new/").max_bytes
    assert (
        PORTRAIT_MAX_BYTES + AUDIO_MAX_BYTES < new_job <= PORTRAIT_MAX_BYTES + AUDIO_MAX_BYTES + MB
    )
    assert bodycaps.cap_for("/voiceovers/new/").max_bytes == new_job
    check = bodycaps.cap_for("/jobs/new/check/portrait/").max_bytes
    assert PORTRAIT_MAX_BYTES < check <= PORTRAIT_MAX_BYTES + MB
    for path in (CREATE, "/v1/videos/avatar/image2video", "/v1/anything"):
        assert bodycaps.cap_for(path).max_bytes == BODY_MAX_BYTES and bodycaps.cap_for(path).api
    assert bodycaps.cap_for("/admin/jobs/avatarjob/").max_bytes <= 3 * MB
    for path in ("/", "/accounts/login/", "/teams/new/", "/library/", "/api/tokens/"):
        assert bodycaps.cap_for(path).max_bytes <= 1 * MB


# --- refused by Content-Length: nothing reads the body -------------------------------------


def test_oversized_form_without_a_session_is_refused_before_csrf(ran, upload_temp_dir):
    cap = bodycaps.cap_for("/jobs/new/").max_bytes
    body = multipart({"csrfmiddlewaretoken": "a" * 32}, {"portrait": ("me.jpg", b"x" * cap)})
    response = csrf_client().post("/jobs/new/", body, content_type=MULTIPART)
    assert response.status_code == 413
    text = response.content.decode()
    assert "The request is too large" in text and "15.2 MB" in text and "Send smaller" in text
    assert (
        'href="/static/css/studio.css"' in text and "<script" not in text and "style=" not in text
    )
    assert "default-src 'none'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY" and response["X-Content-Type-Options"] == "nosniff"
    assert ran == [] and list(upload_temp_dir.iterdir()) == []
    assert not Asset.objects.exists() and not AvatarJob.objects.exists()


def test_small_routes_refuse_more_than_kilobytes(ran):
    response = csrf_client().post(
        "/accounts/login/",
        b"username=a&password=" + b"x" * (300 * 1024),
        content_type="application/x-www-form-urlencoded",
    )
    text = response.content.decode()
    assert response.status_code == 413 and "at most 256 KB" in text and "Shorten what" in text
    assert ran == []


def test_api_refuses_an_oversized_body_in_klings_envelope(client, ran):
    body = b'{"image": "' + b"A" * BODY_MAX_BYTES + b'"}'
    response = client.post(CREATE, body, content_type="application/json")
    assert response.status_code == 413
    envelope = response.json()
    assert envelope["code"] == BAD_REQUEST and envelope["data"] is None and envelope["request_id"]
    assert envelope["message"].startswith("body: The request is too large")
    assert envelope["message"].endswith("Send large files as URLs instead of base64.")
    assert ran == []


def test_a_body_of_unknown_length_is_refused(client, ran):
    response = client.post(
        "/accounts/login/", b"", content_type="text/plain", HTTP_TRANSFER_ENCODING="chunked"
    )
    assert response.status_code == 411 and "Content-Length" in response.content.decode()
    response = client.post(CREATE, b"", content_type="application/json", CONTENT_LENGTH="many")
    assert response.status_code == 411 and response.json()["code"] == BAD_REQUEST
    assert ran == []


# --- through a real socket to the live server ----------------------------------------------


def test_live_server_answers_a_300_mb_claim_without_waiting_for_it(
    live_server, ran, upload_temp_dir
):
    headers = {
        "Content-Type": MULTIPART,
        "Content-Length": str(300 * MB),
        "Cookie": "csrftoken=" + "a" * 32,
    }
    started = time.monotonic()
    status, body = raw_request(
        live_server, head_for("/jobs/new/", headers, live_server), megabytes(4 * MB)
    )
    assert status == 413 and b"The request is too large" in body and b"300.0 MB" in body
    assert time.monotonic() - started < 10
    assert ran == [] and list(upload_temp_dir.iterdir()) == []


def test_live_server_refuses_a_chunked_upload(live_server, ran, upload_temp_dir):
    headers = {"Content-Type": MULTIPART, "Transfer-Encoding": "chunked"}
    chunks = (f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in megabytes(20 * MB))
    status, body = raw_request(live_server, head_for("/jobs/new/", headers, live_server), chunks)
    assert status == 411 and b"Content-Length" in body
    status, body = raw_request(
        live_server, head_for(CREATE, {"Transfer-Encoding": "chunked"}, live_server), iter([])
    )
    assert status == 411 and json.loads(body)["code"] == BAD_REQUEST
    assert ran == [] and list(upload_temp_dir.iterdir()) == []


def test_live_server_reads_no_further_than_a_lying_content_length(
    live_server, ran, upload_temp_dir
):
    """Says 1 KB, sends 40 MB, with a CSRF cookie so that CSRF reads the body: Django reads
    the kilobyte it was promised and no more, so the rest never reaches a parser or the temp
    folder, and the request goes on as the short form it claimed to be (to the login page)."""
    body = multipart({"csrfmiddlewaretoken": "a" * 32}, {"portrait": ("me.jpg", b"x" * (40 * MB))})
    headers = {
        "Content-Type": MULTIPART,
        "Content-Length": "1024",
        "Cookie": "csrftoken=" + "a" * 32,
    }
    status, _ = raw_request(
        live_server, head_for("/jobs/new/", headers, live_server), iter([body[:MB], body[MB:]])
    )
    assert status == 302  # past CSRF, to login_required's redirect: no 500, no file
    assert "csrf" in ran and list(upload_temp_dir.iterdir()) == []


# --- refused while streaming: the upload handler -------------------------------------------


def asgi_post(path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    """A request straight to Django's ASGI handler, which hands the view the whole body
    whatever Content-Length says (it spools the body first)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    pieces = [body[i : i + MB] for i in range(0, len(body), MB)]
    answer: dict[str, Any] = {"body": b""}

    async def receive() -> dict[str, Any]:
        if pieces:
            return {"type": "http.request", "body": pieces.pop(0), "more_body": bool(pieces)}
        await asyncio.sleep(3600)  # the client stays connected (Django listens for a disconnect)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    asyncio.run(ASGIHandler()(scope, receive, send))
    return answer["status"], answer["body"]


def test_upload_handler_stops_a_stream_longer_than_its_content_length(ran, upload_temp_dir):
    """Says 1 MB, carries 15 MB of files and 3 MB more, without a session but with a CSRF
    cookie, so that CSRF reads the body: the handler stops it at the cap, deletes the
    temporary files already made, and the answer is the 413 page, not a 500."""
    body = multipart(
        {"csrfmiddlewaretoken": "a" * 32},
        {
            "portrait": ("me.png", b"p" * (PORTRAIT_MAX_BYTES - 1000)),
            "audio": ("voice.wav", b"a" * (AUDIO_MAX_BYTES - 1000)),
            "extra": ("more.bin", b"x" * (3 * MB)),
        },
    )
    headers = {
        "Content-Type": MULTIPART,
        "Content-Length": str(MB),
        "Cookie": "csrftoken=" + "a" * 32,
    }
    status, answer = asgi_post("/jobs/new/", headers, body)
    assert status == 413 and b"The request is too large" in answer
    assert ran.count("view") == 0
    assert list(upload_temp_dir.iterdir()) == []
    assert not Asset.objects.exists() and not AvatarJob.objects.exists()


def test_upload_handler_counts_every_part(rf, upload_temp_dir):
    """Direct: two parts whose sum passes the cap are stopped in the second one."""
    from django.core.files.uploadhandler import StopUpload

    request = rf.post("/jobs/new/check/portrait/")
    handler = bodycaps.BodyCapUploadHandler(request)
    handler.max_bytes = 10
    assert handler.receive_data_chunk(b"12345678", 0) == b"12345678"
    with pytest.raises(StopUpload) as stopped:
        handler.receive_data_chunk(b"123", 0)
    assert stopped.value.connection_reset
    with pytest.raises(bodycaps.BodyTooLarge):
        handler.upload_complete()
    assert request.body_cap_exceeded


# --- the largest legitimate requests still pass --------------------------------------------


def test_new_job_with_the_largest_portrait_and_voice_over_passes(
    client, owner, team, largest, upload_temp_dir
):
    response = login(client, owner).post(
        reverse("jobs:job-new"),
        {
            "portrait": SimpleUploadedFile("me.png", largest["portrait"], "image/png"),
            "audio": SimpleUploadedFile("voice.wav", largest["audio"], "audio/wav"),
            "mode": "draft",
            "prompt": "wave " * 400,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    job = AvatarJob.objects.get()
    assert job.team == team and job.portrait.size > PORTRAIT_MAX_BYTES - 300 * 1024
    assert list(upload_temp_dir.iterdir()) == []


def test_check_endpoint_takes_the_largest_portrait(client, owner, largest):
    response = login(client, owner).post(
        reverse("jobs:job-new-check", args=["portrait"]),
        {"portrait": SimpleUploadedFile("me.png", largest["portrait"], "image/png")},
    )
    assert response.status_code == 200 and Asset.objects.count() == 1


def test_api_create_near_21_mb_passes(client, owner, team, largest):
    token = api_token_create(user=owner, team=team, name="script")[1]
    body = json.dumps(
        {
            "image": b64(largest["portrait"]),
            "sound_file": b64(largest["audio"]),
            "mode": "draft",
            "prompt": "smile",
        }
    )
    assert 19.5 * MB < len(body) <= BODY_MAX_BYTES
    started = time.monotonic()
    reply = client.post(
        CREATE, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert reply.status_code == 200, reply.content[:500]
    assert reply.json()["code"] == 0 and AvatarJob.objects.get().team == team
    assert time.monotonic() - started < 30


# --- the JSON structure cap ----------------------------------------------------------------


@pytest.fixture
def token(owner, team) -> str:
    return api_token_create(user=owner, team=team, name="script")[1]


def api_post(client: Client, token: str, body: bytes) -> Any:
    return client.post(
        CREATE, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )


def test_a_body_of_empty_objects_is_refused_before_parsing(client, token, monkeypatch):
    parsed: list[int] = []
    loads = json.loads
    spy = SimpleNamespace(loads=lambda raw: parsed.append(len(raw)) or loads(raw))
    monkeypatch.setattr("jobs.api.inputs.json", spy)
    count = (22 * MB) // 3
    body = b"[" + b"{}," * (count - 1) + b"{}]"
    reply = api_post(client, token, body)
    assert parsed == []
    assert reply.status_code == 400
    envelope = reply.json()
    assert envelope["code"] == BAD_PARAMETER
    assert (
        envelope["message"].startswith("body: ") and f"{JSON_MAX_VALUES:,}" in envelope["message"]
    )


def test_deep_nesting_is_refused_with_its_limit(client, token):
    body = b'{"a": ' + b"[" * (JSON_MAX_DEPTH + 5) + b"]" * (JSON_MAX_DEPTH + 5) + b"}"
    envelope = api_post(client, token, body).json()
    assert envelope["code"] == BAD_PARAMETER and f"limit is {JSON_MAX_DEPTH}" in envelope["message"]


def test_commas_and_brackets_inside_strings_do_not_count(client, token, monkeypatch):
    """A prompt full of punctuation is text, not structure: it reaches the ordinary checks."""
    prompt = '{[, "quoted" \\\\ ]}' * 1500
    body = json.dumps({"image": "", "sound_file": "", "prompt": prompt, "mode": "draft"})
    envelope = api_post(client, token, body.encode()).json()
    assert envelope["code"] == BAD_PARAMETER
    assert "JSON values" not in envelope["message"] and "nested" not in envelope["message"]


def test_the_shape_check_is_fast_for_an_ordinary_large_body():
    from jobs.api.inputs import _check_json_shape

    body = json.dumps({"image": "A" * (14 * MB), "sound_file": "B" * (7 * MB), "mode": "std"})
    started = time.perf_counter()
    _check_json_shape(body.encode())
    assert time.perf_counter() - started < 0.25  # about 60 ms on one slow core


def test_check_endpoint_refusal_carries_the_sentence_studio_js_shows(client, owner, ran):
    """htmx swaps no 4xx answer: studio.js puts the page's [data-refusal] sentence under the
    field instead, so the sentence must be there and name the limit."""
    cap = bodycaps.cap_for("/jobs/new/check/portrait/").max_bytes
    body = multipart({}, {"portrait": ("me.png", b"x" * cap)})
    response = login(client, owner).post(
        "/jobs/new/check/portrait/", body, content_type=MULTIPART, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 413
    text = response.content.decode()
    assert "<p data-refusal>The request is too large: this address accepts at most 10.2 MB" in text
    assert ran == [] and not Asset.objects.exists()
