"""A fake Kling on loopback: the avatar API's HTTP contract, with faults on demand.

Tests, benchmarks and offline staging point the real `KlingClient` at it, so everything that
matters about talking to Kling (auth, validation, the task lifecycle, 1303 when the account's
slots are full, timeouts after a task was created, duplicate external ids, callbacks that arrive
twice or out of order) is exercised over real HTTP without a key or a network.

    with KlingSimulator(SimulatorConfig(processing_seconds=0.2)) as sim:
        client = KlingClient(sim.base_url, api_key=sim.config.api_key)
        ...
        sim.snapshot()["creates_by_external_id"]

It serves the same routes under "" and "/kling" (like the gateways), plus test hooks:
`GET /_sim/stats`, `POST /_sim/config` and `GET /_sim/files/<name>` (result videos and TTS
audio; the URLs in task results point there).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import io
import itertools
import json
import logging
import math
import queue
import random
import re
import shutil
import socket
import struct
import tempfile
import threading
import time
import uuid
import wave
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jwt
import requests
from PIL import Image, UnidentifiedImageError

from jobs.ffmpeg import FFmpegError, decoded_audio_seconds
from jobs.voices import get_voice

logger = logging.getLogger(__name__)

CREATE_PATH = "/v1/videos/avatar/image2video"
IMAGE_MAX_BYTES = 10 * 1024 * 1024
SOUND_MAX_BYTES = 5 * 1024 * 1024
BODY_MAX_BYTES = 32 * 1024 * 1024
PROMPT_MAX_CHARS = 2500
TTS_MAX_CHARS = 1000
JWT_LEEWAY = 5  # seconds of clock skew forgiven on exp/nbf
TICK_SECONDS = 0.05  # how often statuses advance and callbacks go out
UNITS_PER_SECOND = {"std": Decimal("0.4"), "pro": Decimal("0.8")}  # pro ≈ 2× std
RISK_CONTROL_MESSAGE = "Failure to pass the risk control system (simulated content risk)"

MESSAGES = {
    1000: "Authentication failed",
    1001: "Authorization is empty",
    1002: "Authorization is invalid",
    1003: "Authorization is not yet valid",
    1004: "Authorization has expired",
    1100: "Account exception",
    1101: "Account in arrears",
    1102: "Resource pack depleted or expired",
    1103: "Unauthorized access to the requested API or model",
    1200: "Invalid request parameters",
    1201: "Invalid parameters",
    1202: "The requested method is invalid",
    1203: "The requested resource does not exist",
    1300: "Platform policy triggered",
    1301: "Content security policy triggered",
    1302: "The API request is too fast, exceeding the platform's rate limit",
    1303: "Concurrency or QPS exceeds the resource pack limit",
    1304: "IP allow-list policy triggered",
    5000: "Server internal error",
    5001: "Server temporarily unavailable (maintenance)",
    5002: "Server internal timeout",
}


def http_status_for(code: int) -> int:
    """The HTTP status Kling pairs with a business code (the table in Kling's API documentation)."""
    if 1000 <= code <= 1004:
        return 401
    if code == 1103:
        return 403
    if code == 1203:
        return 404
    if 1100 <= code <= 1102 or 1302 <= code <= 1304:
        return 429
    return {5000: 500, 5001: 503, 5002: 504}.get(code, 500 if code >= 5000 else 400)


@dataclass
class SimulatorConfig:
    """What the fake Kling accepts and how it misbehaves. Change at run time with `configure`."""

    # Both auth styles are accepted: Bearer api_key (gateways) or a JWT really verified
    # against access_key/secret_key (official).
    access_key: str = "sim-access"
    # ≥ 32 bytes, like real Kling secrets, so PyJWT does not warn about a short HMAC key.
    secret_key: str = "sim-secret-for-the-kling-simulator"  # noqa: S105 (public test value)
    api_key: str = "sim-api-key"
    max_concurrency: int = 5  # tasks in submitted/processing beyond this → 429 + 1303
    max_audio_seconds: int = 300
    # Statuses advance on a monotonic clock: submitted → processing → succeed/failed.
    submitted_seconds: float = 0.5
    processing_seconds: float = 2.0
    fail_rate: float = 0.0  # tasks that end "failed" with a content-risk message
    error_rates: dict[int, float] = field(default_factory=dict)  # code → chance, on creates
    query_error_rates: dict[int, float] = field(default_factory=dict)  # same, on queries/lists
    latency: float = 0.0  # seconds added to every API reply
    # Faults that strike after the task WAS created (the client cannot know it was):
    slow_reply_rate: float = 0.0  # reply delayed by slow_reply_seconds (past a client timeout)
    slow_reply_seconds: float = 5.0
    drop_rate: float = 0.0  # connection closed without a reply
    malformed_rate: float = 0.0  # reply is truncated, invalid JSON
    # Callbacks (bare task object POSTed to callback_url on every status change):
    callback_drop_rate: float = 0.0
    callback_duplicate_rate: float = 0.0
    callback_reorder: bool = False  # hold a task's callbacks and send them newest-first at the end
    lookup_by_external_id: bool = True  # False: GET by external id fails like some gateways
    # Text to speech: errors on demand, and the reply Kling's docs leave open (a status other
    # than succeed, with no audio in it).
    tts_error_rates: dict[int, float] = field(default_factory=dict)  # code → chance
    tts_pending_rate: float = 0.0  # answer "processing" with no audios
    # GET /account/costs: the one pack's size (remaining = this minus what tasks used), and
    # errors on demand (code → chance, e.g. {5000: 1.0} for a failing endpoint).
    costs_total_units: float = 10000.0
    costs_error_rates: dict[int, float] = field(default_factory=dict)
    video_factory: Callable[[bytes, bytes], bytes] | None = None  # (image, audio) → MP4 bytes
    seed: int | None = None  # for reproducible faults

    def public(self) -> dict[str, Any]:
        """The JSON-friendly part (everything but the factory)."""
        data = asdict(self)
        data.pop("video_factory")
        return data


class SimError(Exception):
    """A Kling error reply; `reason` is a short category for the stats."""

    def __init__(self, code: int, message: str = "", *, reason: str = "validation") -> None:
        super().__init__(message or MESSAGES.get(code, "Error"))
        self.code = code
        self.message = message or MESSAGES.get(code, "Error")
        self.reason = reason


@dataclass
class _Task:
    task_id: str
    external_task_id: str
    mode: str
    callback_url: str
    watermark: bool
    audio_seconds: float
    will_fail: bool
    render_key: str
    created_mono: float
    created_ms: int
    updated_ms: int
    status: str = "submitted"
    status_msg: str = ""
    video_name: str = ""
    held_callbacks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status in ("succeed", "failed")

    @property
    def units(self) -> Decimal:
        if self.status != "succeed":
            return Decimal("0")
        return (UNITS_PER_SECOND[self.mode] * Decimal(str(self.audio_seconds))).quantize(
            Decimal("0.01")
        )


@dataclass
class _Audio:
    audio_id: str
    data: bytes
    seconds: float
    name: str


@dataclass
class _Reply:
    status: int
    payload: Any
    fault: str | None = None  # "slow" | "drop" | "malformed"
    content_type: str = "application/json"


def _now_ms() -> int:
    return int(time.time() * 1000)


def sine_wav(seconds: float, *, rate: int = 8000, frequency: float = 220.0) -> bytes:
    """A mono 16-bit WAV of a tone with a syllable-like swell: offline stand-in for speech."""
    count = int(seconds * rate)
    samples = (
        int(
            9000
            * (0.6 + 0.4 * math.sin(2 * math.pi * 3 * n / rate))
            * math.sin(2 * math.pi * frequency * n / rate)
        )
        for n in range(count)
    )
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(struct.pack(f"<{count}h", *samples))
    return out.getvalue()


def speech_wav(text: str, *, voice_id: str, speed: float) -> tuple[bytes, float]:
    """(WAV, seconds) of `text` read offline by eSpeak NG (jobs.tts), as long as speech takes.

    Falls back on the tone when eSpeak NG cannot be loaded (or Django is not set up), so the
    simulator still answers; the tone lasts about as long as the text would.
    """
    try:
        from jobs.tts.espeak import espeak_wav

        voice = get_voice(voice_id)
        if voice is not None:
            return espeak_wav(text, voice=voice, speed=speed)
    except Exception:  # whatever stops eSpeak NG here, the simulator must still answer
        logger.warning(
            "Kling simulator: eSpeak NG unavailable, answering TTS with a tone", exc_info=True
        )
    seconds = round(max(1.0, len(text) / 15 / speed), 1)
    return sine_wav(seconds), seconds


def sniff_audio(data: bytes) -> str | None:
    """ "wav", "mp3", "m4a" or "aac" from the first bytes; None for anything else."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[4:8] == b"ftyp":
        return "m4a"
    if data[:3] == b"ID3":
        return "mp3"
    if len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0:
        return "aac" if data[1] & 0x06 == 0 else "mp3"  # ADTS has layer bits 00
    return None


def draft_video_factory(image: bytes, audio: bytes) -> bytes:
    """The default result video: the project's draft renderer on the task's own inputs."""
    from jobs.engines.render import render_draft

    with tempfile.TemporaryDirectory(prefix="kling-sim-render-") as tmp:
        root = Path(tmp)
        suffix = ".png" if image[:8] == b"\x89PNG\r\n\x1a\n" else ".jpg"
        portrait = root / f"portrait{suffix}"
        portrait.write_bytes(image)
        sound = root / f"audio.{sniff_audio(audio) or 'wav'}"
        sound.write_bytes(audio)
        workdir = root / "work"
        workdir.mkdir()
        result = render_draft(portrait=portrait, audio=sound, workdir=workdir, lip_sync=False)
        return Path(result.video).read_bytes()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sim: KlingSimulator) -> None:
        self.sim = sim
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (timeouts, drops) are part of the game, not worth a traceback.
        logger.debug(
            "Kling simulator: connection from %s ended badly", client_address, exc_info=True
        )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real API behind a load balancer
    server_version = "KlingSimulator/1.0"
    timeout = 60  # idle keep-alive connections end eventually
    server: _Server

    def do_GET(self) -> None:
        self.server.sim._handle(self, "GET")

    def do_POST(self) -> None:
        self.server.sim._handle(self, "POST")

    def do_PUT(self) -> None:
        self.server.sim._handle(self, "PUT")

    def do_DELETE(self) -> None:
        self.server.sim._handle(self, "DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("Kling simulator: " + format, *args)


class KlingSimulator:
    """A real HTTP server on loopback speaking Kling's avatar API. Thread-safe; start/stop once."""

    def __init__(
        self, config: SimulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or SimulatorConfig()
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._rng = random.Random(self.config.seed)
        self._ids = itertools.count(860_000_000_000_000_000 + self._rng.randrange(10**12) * 1000)
        self._tasks: dict[str, _Task] = {}  # by task_id, in creation order
        self._by_external: dict[str, str] = {}
        self._active: set[str] = set()  # task ids holding a concurrency slot
        self._audios: dict[str, _Audio] = {}
        self._renders: dict[str, Future[str]] = {}
        self._audio_seconds_cache: dict[str, float] = {}
        self._last_costs_query = 0.0
        self._stopping = threading.Event()
        self._callbacks: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._pool: ThreadPoolExecutor | None = None
        self.files_dir: Path | None = None
        # stats
        self.creates_by_external_id: Counter[str] = Counter()
        self.requests_by_endpoint: Counter[str] = Counter()
        self.rejected_by_code: Counter[int] = Counter()
        self.rejected_by_reason: Counter[str] = Counter()
        self.callbacks: Counter[str] = Counter()
        self.auth_styles: Counter[str] = Counter()
        self.audio_inputs: Counter[str] = Counter()  # creates by "audio_id" / "sound_file"
        self.tasks_created = 0
        self.peak_concurrency = 0
        self.renders = 0
        self.render_cache_hits = 0
        self._tokens_seen: set[str] = set()
        self.last_jwt: dict[str, Any] | None = None

    # --- lifecycle ---

    @property
    def root_url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/kling"

    def start(self) -> KlingSimulator:
        self._server = _Server((self.host, self.port), self)  # first: it may fail (port in use)
        self.port = self._server.server_address[1]
        self.files_dir = Path(tempfile.mkdtemp(prefix="kling-sim-"))
        # Few render workers: rendering is CPU-bound ffmpeg, and identical inputs hit the cache.
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kling-sim-render")
        for target, name in (
            (self._serve, "kling-sim-http"),
            (self._tick_loop, "kling-sim-ticker"),
            (self._callback_loop, "kling-sim-callbacks"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        logger.info("Kling simulator listening on %s", self.base_url)
        return self

    def _serve(self) -> None:
        assert self._server is not None
        self._server.serve_forever(poll_interval=0.05)

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._server.connections_lock:
            open_connections = list(self._server.connections)
        for conn in open_connections:  # end keep-alive connections so no thread serves on
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=2)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self.files_dir is not None:
            shutil.rmtree(self.files_dir, ignore_errors=True)
        self._server = None

    def __enter__(self) -> KlingSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def configure(self, **changes: Any) -> None:
        """Change options at run time (faults, limits, timings); unknown names raise ValueError."""
        known = {f.name for f in fields(SimulatorConfig)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"Unknown simulator options: {', '.join(sorted(unknown))}")
        for name in ("error_rates", "query_error_rates", "tts_error_rates", "costs_error_rates"):
            if name in changes:
                changes[name] = {int(k): float(v) for k, v in (changes[name] or {}).items()}
        with self._lock:
            for name, value in changes.items():
                setattr(self.config, name, value)
            if "seed" in changes:
                self._rng.seed(changes["seed"])

    def snapshot(self) -> dict[str, Any]:
        """The counters, for tests and benchmarks (also served as JSON at /_sim/stats)."""
        with self._lock:
            statuses = Counter(t.status for t in self._tasks.values())
            return {
                "tasks_created": self.tasks_created,
                "creates_by_external_id": dict(self.creates_by_external_id),
                "requests_by_endpoint": dict(self.requests_by_endpoint),
                "rejected_by_code": dict(self.rejected_by_code),
                "rejected_by_reason": dict(self.rejected_by_reason),
                "current_concurrency": len(self._active),
                "peak_concurrency": self.peak_concurrency,
                "tasks_by_status": dict(statuses),
                "callbacks": dict(self.callbacks),
                "renders": self.renders,
                "render_cache_hits": self.render_cache_hits,
                "auth_styles": dict(self.auth_styles),
                "audio_inputs": dict(self.audio_inputs),
                "distinct_tokens": len(self._tokens_seen),
                "last_jwt": self.last_jwt,
            }

    def wait_until_finished(self, timeout: float = 30) -> bool:
        """Block until no task holds a slot (every task succeeded or failed); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                self._advance_locked()
                if not self._active:
                    return True
            time.sleep(TICK_SECONDS)
        return False

    # --- background work ---

    def _tick_loop(self) -> None:
        while not self._stopping.wait(TICK_SECONDS):
            with self._lock:
                self._advance_locked()

    def _advance_locked(self) -> None:
        """Move every unfinished task along its timeline (caller holds the lock)."""
        cfg = self.config
        now = time.monotonic()
        for task_id in list(self._active):
            task = self._tasks[task_id]
            elapsed = now - task.created_mono
            if task.status == "submitted" and elapsed >= cfg.submitted_seconds:
                self._set_status_locked(task, "processing")
            done_at = cfg.submitted_seconds + cfg.processing_seconds
            if task.status != "processing" or elapsed < done_at:
                continue
            if task.will_fail:
                self._set_status_locked(task, "failed", RISK_CONTROL_MESSAGE)
                continue
            render = self._renders[task.render_key]
            if not render.done():
                continue  # the task succeeds only once its video exists
            if (error := render.exception()) is not None:
                self._set_status_locked(task, "failed", f"Video generation failed: {error}")
            else:
                task.video_name = render.result()
                self._set_status_locked(task, "succeed")

    def _set_status_locked(self, task: _Task, status: str, message: str = "") -> None:
        task.status = status
        task.status_msg = message
        task.updated_ms = max(_now_ms(), task.updated_ms)
        if task.finished:
            self._active.discard(task.task_id)
        self._emit_callback_locked(task)

    def _emit_callback_locked(self, task: _Task) -> None:
        if not task.callback_url:
            return
        cfg = self.config
        body = self._task_json(task, full=True)
        if cfg.callback_reorder:
            task.held_callbacks.append(body)
            if not task.finished:
                return
            bodies, task.held_callbacks = list(reversed(task.held_callbacks)), []
        else:
            bodies = [body]
        for item in bodies:
            if self._rng.random() < cfg.callback_drop_rate:
                self.callbacks["dropped"] += 1
                continue
            self._callbacks.put((task.callback_url, item))
            if self._rng.random() < cfg.callback_duplicate_rate:
                self.callbacks["duplicated"] += 1
                self._callbacks.put((task.callback_url, item))

    def _callback_loop(self) -> None:
        session = requests.Session()
        while not self._stopping.is_set():
            try:
                url, body = self._callbacks.get(timeout=TICK_SECONDS)
            except queue.Empty:
                continue
            try:
                response = session.post(url, json=body, timeout=(2, 5))
                outcome = "sent" if response.ok else "failed"
            except requests.RequestException:
                outcome = "failed"
            with self._lock:
                self.callbacks[outcome] += 1
        session.close()

    def _render(self, key: str, image: bytes, audio: bytes) -> str:
        factory = self.config.video_factory or draft_video_factory
        data = factory(image, audio)
        assert self.files_dir is not None
        name = f"video-{key[:32]}.mp4"
        (self.files_dir / name).write_bytes(data)
        return name

    # --- HTTP plumbing ---

    def _handle(self, handler: _Handler, method: str) -> None:
        url = urlsplit(handler.path)
        path = unquote(url.path)
        if path == "/kling" or path.startswith("/kling/"):
            path = path[len("/kling") :]
        path = path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        if length > BODY_MAX_BYTES:
            handler.close_connection = True
            error = SimError(1200, "The request body is too large")
            self._write(handler, _Reply(413, self._envelope_error(error)))
            return
        body = handler.rfile.read(length) if length else b""

        if path.startswith("/_sim/"):
            self._write(handler, self._hook(method, path, body))
            return

        endpoint, route = self._route(method, path)
        with self._lock:
            self.requests_by_endpoint[endpoint] += 1
        if self.config.latency:
            self._stopping.wait(self.config.latency)
        try:
            self._check_auth(handler.headers.get("Authorization"))
            reply = route(body, query)
        except SimError as exc:
            with self._lock:
                self.rejected_by_code[exc.code] += 1
                self.rejected_by_reason[exc.reason] += 1
            reply = _Reply(http_status_for(exc.code), self._envelope_error(exc))
        except Exception:  # a simulator bug must still look like a Kling 5000, not a hang
            logger.exception("Kling simulator failed on %s %s", method, path)
            reply = _Reply(500, self._envelope_error(SimError(5000)))
        self._write(handler, reply)

    def _route(
        self, method: str, path: str
    ) -> tuple[str, Callable[[bytes, dict[str, str]], _Reply]]:
        def wrong_method(body: bytes, query: dict[str, str]) -> _Reply:
            raise SimError(1202, f"{method} is not allowed on {path}", reason="method")

        def not_found(body: bytes, query: dict[str, str]) -> _Reply:
            raise SimError(1203, f"No such endpoint: {path}", reason="not_found")

        if path == CREATE_PATH:
            if method == "POST":
                return "create", self._create
            return ("list", self._list) if method == "GET" else ("create", wrong_method)
        if path.startswith(CREATE_PATH + "/") and path.count("/") == CREATE_PATH.count("/") + 1:
            task_ref = path.rsplit("/", 1)[1]
            if method != "GET":
                return "query", wrong_method
            return "query", lambda body, query: self._query(task_ref)
        if path == "/v1/audio/tts":
            return "tts", self._tts if method == "POST" else wrong_method
        if path == "/account/costs":
            return "costs", self._costs if method == "GET" else wrong_method
        return "unknown", not_found

    def _write(self, handler: _Handler, reply: _Reply) -> None:
        try:
            if reply.fault == "drop":
                handler.close_connection = True  # the server closes the socket: no reply at all
                return
            if reply.fault == "slow":
                self._stopping.wait(self.config.slow_reply_seconds)
            if isinstance(reply.payload, Path):
                handler.send_response(reply.status)
                handler.send_header("Content-Type", reply.content_type)
                handler.send_header("Content-Length", str(reply.payload.stat().st_size))
                handler.end_headers()
                with reply.payload.open("rb") as source:
                    shutil.copyfileobj(source, handler.wfile, 64 * 1024)
                return
            body = json.dumps(reply.payload).encode()
            if reply.fault == "malformed":
                body = body[: len(body) // 2]
            handler.send_response(reply.status)
            handler.send_header("Content-Type", reply.content_type)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            handler.close_connection = True  # the client gave up (e.g. its read timeout)

    @staticmethod
    def _envelope(data: Any) -> dict[str, Any]:
        return {"code": 0, "message": "SUCCEED", "request_id": str(uuid.uuid4()), "data": data}

    @staticmethod
    def _envelope_error(exc: SimError) -> dict[str, Any]:
        return {
            "code": exc.code,
            "message": exc.message,
            "request_id": str(uuid.uuid4()),
            "data": None,
        }

    def _hook(self, method: str, path: str, body: bytes) -> _Reply:
        if path == "/_sim/stats" and method == "GET":
            self._count("stats")
            return _Reply(200, self.snapshot())
        if path == "/_sim/config" and method == "POST":
            self._count("config")
            try:
                changes = json.loads(body or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("expected a JSON object")
                self.configure(**changes)
            except (ValueError, TypeError) as exc:
                return _Reply(400, {"error": str(exc)})
            return _Reply(200, self.config.public())
        if path.startswith("/_sim/files/") and method == "GET":
            self._count("files")
            name = path.rsplit("/", 1)[1]
            file = self.files_dir / name if self.files_dir else None
            if not re.fullmatch(r"[\w.-]+", name) or file is None or not file.is_file():
                return _Reply(404, {"error": "no such file"})
            kind = "video/mp4" if name.endswith(".mp4") else "audio/wav"
            return _Reply(200, file, content_type=kind)
        return _Reply(404, {"error": "no such hook"})

    def _count(self, endpoint: str) -> None:
        with self._lock:
            self.requests_by_endpoint[endpoint] += 1

    # --- auth ---

    def _check_auth(self, header: str | None) -> None:
        """Bearer api_key, or Kling's JWT verified for real (signature, iss, exp, nbf)."""
        cfg = self.config
        if not header or not header.strip():
            raise SimError(1001, reason="auth")
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise SimError(1002, "Authorization must be 'Bearer <token>'", reason="auth")
        if cfg.api_key and hmac.compare_digest(token.encode(), cfg.api_key.encode()):
            with self._lock:
                self.auth_styles["api_key"] += 1
            return
        try:
            unverified = {
                "header": jwt.get_unverified_header(token),
                "claims": jwt.decode(token, options={"verify_signature": False}),
            }
        except jwt.InvalidTokenError:
            raise SimError(1002, reason="auth") from None
        with self._lock:
            self.auth_styles["jwt"] += 1
            self._tokens_seen.add(token)
            self.last_jwt = unverified
        try:
            jwt.decode(
                token,
                cfg.secret_key,
                algorithms=["HS256"],
                issuer=cfg.access_key,
                leeway=JWT_LEEWAY,
                options={"require": ["iss", "exp", "nbf"]},
            )
        except jwt.ExpiredSignatureError:
            raise SimError(1004, reason="auth") from None
        except jwt.ImmatureSignatureError:
            raise SimError(1003, reason="auth") from None
        except jwt.InvalidTokenError as exc:
            raise SimError(1002, f"Authorization is invalid: {exc}", reason="auth") from None

    # --- endpoints ---

    def _inject(self, rates: dict[int, float]) -> None:
        with self._lock:
            for code, rate in rates.items():
                if rate > 0 and self._rng.random() < rate:
                    raise SimError(int(code), reason="injected")

    def _create(self, raw: bytes, query: dict[str, str]) -> _Reply:
        body = _json_object(raw)
        external = body.get("external_task_id") or ""
        if not isinstance(external, str) or len(external) > 200:
            raise SimError(1201, "external_task_id must be a string of at most 200 characters")
        if external:
            with self._lock:
                self.creates_by_external_id[external] += 1
        self._inject(self.config.error_rates)

        image = self._load_image(body.get("image"))
        audio, seconds = self._load_audio(body)
        prompt = body.get("prompt") or ""
        if not isinstance(prompt, str) or len(prompt) > PROMPT_MAX_CHARS:
            raise SimError(1201, f"prompt must be text of at most {PROMPT_MAX_CHARS} characters")
        mode = body.get("mode") or "std"
        if mode not in UNITS_PER_SECOND:
            raise SimError(1201, f"mode must be std or pro, not {mode!r}")
        callback_url = body.get("callback_url") or ""
        if not isinstance(callback_url, str) or (
            callback_url and not callback_url.startswith(("http://", "https://"))
        ):
            raise SimError(1201, "callback_url must be an http(s) URL")
        watermark = body.get("watermark_info") or {}
        if not isinstance(watermark, dict) or not isinstance(watermark.get("enabled", False), bool):
            raise SimError(1201, 'watermark_info must be {"enabled": true|false}')

        cfg = self.config
        with self._lock:
            if external and external in self._by_external:
                raise SimError(1201, "external_task_id already exists", reason="duplicate")
            if len(self._active) >= cfg.max_concurrency:
                raise SimError(1303, reason="concurrency")
            now_ms = _now_ms()
            task = _Task(
                task_id=str(next(self._ids)),
                external_task_id=external,
                mode=mode,
                callback_url=callback_url,
                watermark=bool(watermark.get("enabled", False)),
                audio_seconds=seconds,
                will_fail=self._rng.random() < cfg.fail_rate,
                render_key=hashlib.sha256(
                    hashlib.sha256(image).digest() + hashlib.sha256(audio).digest()
                ).hexdigest(),
                created_mono=time.monotonic(),
                created_ms=now_ms,
                updated_ms=now_ms,
            )
            self._tasks[task.task_id] = task
            if external:
                self._by_external[external] = task.task_id
            self._active.add(task.task_id)
            self.tasks_created += 1
            self.peak_concurrency = max(self.peak_concurrency, len(self._active))
            if not task.will_fail:
                if task.render_key in self._renders:
                    self.render_cache_hits += 1
                else:
                    self.renders += 1
                    assert self._pool is not None
                    self._renders[task.render_key] = self._pool.submit(
                        self._render, task.render_key, image, audio
                    )
            self._emit_callback_locked(task)
            fault = self._pick_fault_locked()
            data = self._task_json(task, full=False)
        logger.debug("Kling simulator created task %s (%s) fault=%s", task.task_id, external, fault)
        return _Reply(200, self._envelope(data), fault)

    def _pick_fault_locked(self) -> str | None:
        cfg = self.config
        roll = self._rng.random()
        rates = (
            ("slow", cfg.slow_reply_rate),
            ("drop", cfg.drop_rate),
            ("malformed", cfg.malformed_rate),
        )
        for fault, rate in rates:
            if roll < rate:
                return fault
            roll -= rate
        return None

    def _query(self, task_ref: str) -> _Reply:
        self._inject(self.config.query_error_rates)
        with self._lock:
            self._advance_locked()
            task = self._tasks.get(task_ref)
            if task is None and self.config.lookup_by_external_id:
                task = self._tasks.get(self._by_external.get(task_ref, ""))
            if task is None:
                if not self.config.lookup_by_external_id and not task_ref.isdigit():
                    raise SimError(1201, "task_id must be a numeric task id")
                raise SimError(1203, f"Task {task_ref} not found", reason="not_found")
            return _Reply(200, self._envelope(self._task_json(task, full=True)))

    def _list(self, raw: bytes, query: dict[str, str]) -> _Reply:
        try:
            page = int(query.get("pageNum", "1"))
            size = int(query.get("pageSize", "30"))
        except ValueError:
            raise SimError(1201, "pageNum and pageSize must be integers") from None
        if not 1 <= page <= 1000:
            raise SimError(1201, "pageNum must be between 1 and 1000")
        if not 1 <= size <= 500:
            raise SimError(1201, "pageSize must be between 1 and 500")
        self._inject(self.config.query_error_rates)
        with self._lock:
            self._advance_locked()
            newest_first = list(reversed(self._tasks.values()))
            items = [
                self._task_json(task, full=True)
                for task in newest_first[(page - 1) * size : page * size]
            ]
        return _Reply(200, self._envelope(items))

    def _tts(self, raw: bytes, query: dict[str, str]) -> _Reply:
        body = _json_object(raw)
        text = body.get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > TTS_MAX_CHARS:
            raise SimError(1201, f"text must be 1 to {TTS_MAX_CHARS} characters")
        voice_id = body.get("voice_id")
        if not isinstance(voice_id, str) or not voice_id:
            raise SimError(1201, "voice_id is required")
        language = body.get("voice_language")
        if language not in ("zh", "en"):
            raise SimError(1201, "voice_language must be zh or en")
        voice = get_voice(voice_id)
        if voice is None:
            raise SimError(1201, f"voice_id {voice_id} is not a known voice")
        if voice.language != language:
            raise SimError(
                1201, f"voice_id {voice_id} speaks {voice.language}: voice_language must match"
            )
        speed = body.get("voice_speed", 1.0)
        if isinstance(speed, bool) or not isinstance(speed, int | float) or not 0.8 <= speed <= 2.0:
            raise SimError(1201, "voice_speed must be between 0.8 and 2.0")
        if abs(speed * 10 - round(speed * 10)) > 1e-6:
            raise SimError(1201, "voice_speed must have at most one decimal")
        self._inject(self.config.tts_error_rates)
        now_ms = _now_ms()
        with self._lock:
            audio_id = str(next(self._ids))
            pending = self._rng.random() < self.config.tts_pending_rate
        if pending:
            task = {"task_id": audio_id, "task_status": "processing", "task_status_msg": ""}
            return _Reply(200, self._envelope({**task, "task_result": {"audios": []}}))
        data, seconds = speech_wav(text, voice_id=voice_id, speed=float(speed))
        seconds = round(seconds, 3)
        with self._lock:
            name = f"tts-{audio_id}.wav"
            assert self.files_dir is not None
            (self.files_dir / name).write_bytes(data)
            self._audios[audio_id] = _Audio(audio_id, data, seconds, name)
        return _Reply(
            200,
            self._envelope(
                {
                    "task_id": audio_id,
                    "task_status": "succeed",
                    "task_status_msg": "",
                    "created_at": now_ms,
                    "updated_at": now_ms,
                    "task_result": {
                        "audios": [
                            {
                                "id": audio_id,
                                "url": f"{self.root_url}/_sim/files/{name}",
                                "duration": f"{seconds:.1f}",
                            }
                        ]
                    },
                }
            ),
        )

    def _costs(self, raw: bytes, query: dict[str, str]) -> _Reply:
        try:
            start, end = int(query["start_time"]), int(query["end_time"])
        except (KeyError, ValueError):
            raise SimError(1201, "start_time and end_time (Unix ms) are required") from None
        if start > end:
            raise SimError(1201, "start_time must not be after end_time")
        self._inject(self.config.costs_error_rates)
        with self._lock:
            now = time.monotonic()
            if now - self._last_costs_query < 1.0:
                raise SimError(1302, "At most one costs query per second", reason="rate_limit")
            self._last_costs_query = now
            used = sum((t.units for t in self._tasks.values()), Decimal("0"))
        total = Decimal(str(self.config.costs_total_units))
        return _Reply(
            200,
            self._envelope(
                {
                    "code": 0,
                    "msg": "success",
                    "resource_pack_subscribe_infos": [
                        {
                            "resource_pack_name": "Simulator pack",
                            "resource_pack_id": "sim-pack-1",
                            "resource_pack_type": "decreasing_total",
                            "total_quantity": float(total),
                            "remaining_quantity": float(total - used),
                            "purchase_time": start,
                            "effective_time": start,
                            "invalid_time": end + 30 * 24 * 3600 * 1000,
                            "status": "online",
                        }
                    ],
                }
            ),
        )

    # --- validation helpers ---

    def _payload_bytes(self, value: Any, what: str, limit: int) -> bytes:
        """A create field's bytes: fetched when it is a URL, decoded when it is bare base64."""
        if not isinstance(value, str) or not value.strip():
            raise SimError(1201, f"{what} is required")
        if value.startswith("data:"):
            raise SimError(
                1201, f"{what} must be a URL or bare base64, without a 'data:...;base64,' prefix"
            )
        if value.startswith(("http://", "https://")):
            return _fetch(value, what, limit)
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise SimError(1201, f"{what} is neither a URL nor valid base64") from None
        if not data:
            raise SimError(1201, f"{what} is empty")
        return data

    def _load_image(self, value: Any) -> bytes:
        data = self._payload_bytes(value, "image", IMAGE_MAX_BYTES)
        if len(data) > IMAGE_MAX_BYTES:
            raise SimError(1201, "image must not exceed 10 MB")
        try:
            with Image.open(io.BytesIO(data)) as img:
                kind, (width, height) = img.format, img.size
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
            raise SimError(1201, "image must be a JPG or PNG file") from None
        if kind not in ("JPEG", "PNG"):
            raise SimError(1201, f"image must be a JPG or PNG file, not {kind}")
        if width < 300 or height < 300:
            raise SimError(
                1201, f"image is {width}x{height} px: width and height must be at least 300 px"
            )
        if not 1 / 2.5 <= width / height <= 2.5:
            raise SimError(1201, f"image aspect ratio {width}:{height} is outside 1:2.5 to 2.5:1")
        return data

    def _load_audio(self, body: dict[str, Any]) -> tuple[bytes, float]:
        audio_id = str(body.get("audio_id") or "")
        sound = body.get("sound_file") or ""
        if bool(audio_id) == bool(sound):
            raise SimError(1201, "Exactly one of audio_id and sound_file must be given")
        with self._lock:
            self.audio_inputs["audio_id" if audio_id else "sound_file"] += 1
        if audio_id:
            with self._lock:
                audio = self._audios.get(audio_id)
            if audio is None:
                raise SimError(1201, f"audio_id {audio_id} is unknown or expired")
            data, seconds = audio.data, audio.seconds
        else:
            data = self._payload_bytes(sound, "sound_file", SOUND_MAX_BYTES)
            if len(data) > SOUND_MAX_BYTES:
                raise SimError(1201, "sound_file must not exceed 5 MB")
            if sniff_audio(data) is None:
                raise SimError(1201, "sound_file must be an mp3, wav, m4a or aac file")
            seconds = self._audio_seconds(data)
        limit = self.config.max_audio_seconds
        if seconds < 2:
            raise SimError(1201, f"Audio is {seconds:.1f} s long: it must last at least 2 s")
        if seconds > limit:
            raise SimError(1201, f"Audio is {seconds:.1f} s long: it must last at most {limit} s")
        return data, seconds

    def _audio_seconds(self, data: bytes) -> float:
        """Decoded duration, cached by content: benchmarks send one file hundreds of times."""
        key = hashlib.sha256(data).hexdigest()
        with self._lock:
            if key in self._audio_seconds_cache:
                return self._audio_seconds_cache[key]
        with tempfile.NamedTemporaryFile(suffix=f".{sniff_audio(data)}", dir=self.files_dir) as f:
            f.write(data)
            f.flush()
            try:
                seconds = decoded_audio_seconds(f.name)
            except FFmpegError:
                raise SimError(1201, "sound_file could not be decoded") from None
        with self._lock:
            self._audio_seconds_cache[key] = seconds
        return seconds

    # --- representation ---

    def _task_json(self, task: _Task, *, full: bool) -> dict[str, Any]:
        """The task as Kling shows it: short in a create reply, full in queries and callbacks."""
        data: dict[str, Any] = {
            "task_id": task.task_id,
            "task_status": task.status,
            "task_info": {"external_task_id": task.external_task_id},
            "created_at": task.created_ms,
            "updated_at": task.updated_ms,
        }
        if not full:
            return data
        videos = []
        if task.status == "succeed":
            url = f"{self.root_url}/_sim/files/{task.video_name}"
            videos.append(
                {
                    "id": f"{task.task_id}01",
                    "url": url,
                    "watermark_url": url,
                    "duration": f"{task.audio_seconds:.3f}",
                }
            )
        data.update(
            task_status_msg=task.status_msg,
            task_result={"videos": videos},
            final_unit_deduction=str(task.units),
            watermark_info={"enabled": task.watermark},
        )
        return data


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise SimError(1200, "The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise SimError(1200, "The request body must be a JSON object")
    return body


def _fetch(url: str, what: str, limit: int) -> bytes:
    """Download an input the way Kling does; anything unreachable is the caller's error (1201)."""
    try:
        with requests.get(url, stream=True, timeout=(5, 10)) as response:
            if response.status_code != 200:
                raise SimError(1201, f"{what} URL answered HTTP {response.status_code}")
            data = bytearray()
            for chunk in response.iter_content(64 * 1024):
                data.extend(chunk)
                if len(data) > limit:
                    raise SimError(1201, f"{what} must not exceed {limit // (1024 * 1024)} MB")
            return bytes(data)
    except requests.RequestException as exc:
        raise SimError(1201, f"{what} URL could not be fetched: {exc.__class__.__name__}") from None
