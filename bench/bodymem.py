"""Benchmark a web worker's memory for the largest API body accepted and a hostile one refused.

Run from the repository root:  .venv/bin/python bench/bodymem.py [--runs N]

What is measured: the growth of a worker's resident memory while Django's WSGI handler (the
whole middleware stack, as gunicorn runs it) answers one request to the Kling-compatible API's
create endpoint:
- "accepted": the largest body it takes, a draft job with a noise PNG just under 10 MB and a
  WAV just under 5 MB, both as base64 (about 20 MB of JSON); validated, stored and queued;
- "refused": 22 MB of empty objects (`[{},{},...]`), which json.loads would turn into
  7 million dicts (about 540 MB) and which the structure cap refuses before parsing;
- "oversized": 300 MB claimed by Content-Length, refused by the middleware without reading;
- "uncapped": for comparison, the 22 MB of empty objects with the structure cap switched off.

How: a setup child migrates a throw-away database in a temporary DATA_DIR, makes a user, a
team and an API token, and writes the inputs. Every measured run is a fresh Python subprocess
that sets up Django, sends one small create request (warming up, as a running server is),
builds the body, then resets the kernel's peak-RSS mark (`/proc/self/clear_refs` 5) and
handles the request; the growth is VmHWM after minus VmRSS before, so the body the client
holds is not counted, but every copy the server makes of it is. The parent never imports
Django. Figures are medians over the runs.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "avatarsite.settings")

TARGET_MB = 100
CREATE = "/kling/v1/videos/avatar/image2video"
HOST = "127.0.0.1"


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise SystemExit(f"no {field} in /proc/self/status")


def make_inputs(workdir: Path) -> None:
    """A database with a token, a portrait and a voice-over each just under their limits."""
    import wave

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from PIL import Image

    from jobs.media.limits import AUDIO_MAX_BYTES, PORTRAIT_MAX_BYTES
    from jobs.models import Team
    from jobs.services.api_tokens import api_token_create

    call_command("migrate", verbosity=0, interactive=False)
    call_command("createcachetable", verbosity=0)
    user = get_user_model().objects.create_user("bench", "bench@example.com", "bench-pass-1")
    team = Team.objects.get(memberships__user=user, personal=True)
    (workdir / "token").write_text(api_token_create(user=user, team=team, name="bench")[1])

    side = int(((PORTRAIT_MAX_BYTES - 100 * 1024) / 3) ** 0.5) - 8
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=0)
    (workdir / "portrait.png").write_bytes(out.getvalue())
    frames = (AUDIO_MAX_BYTES - 100 * 1024) // 2
    with wave.open(str(workdir / "voice.wav"), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(44100)
        file.writeframes((bytes(range(200)) * (frames // 100 + 1))[: frames * 2])
    small = Image.new("RGB", (400, 500), (200, 170, 150))
    out = io.BytesIO()
    small.save(out, "JPEG")
    (workdir / "warm.jpg").write_bytes(out.getvalue())
    with wave.open(str(workdir / "warm.wav"), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(8000)
        file.writeframes((bytes(range(200)) * 400)[: 8000 * 2 * 3])


def create_body(portrait: bytes, voice: bytes) -> bytes:
    image, sound = base64.b64encode(portrait).decode(), base64.b64encode(voice).decode()
    return json.dumps({"image": image, "sound_file": sound, "mode": "draft"}).encode()


class SocketLike:
    """A request body that hands out new bytes on every read, as a socket does (io.BytesIO
    returns its own buffer when asked for all of it: no copy, which would flatter the figures).
    """

    def __init__(self, body: bytes) -> None:
        self.size = len(body)
        self._stream = io.BytesIO(body)

    def read(self, size: int = -1) -> bytes:
        size = self.size if size < 0 else size
        pieces = []
        while size > 0 and (piece := self._stream.read(min(size, 65536))):
            pieces.append(piece)
            size -= len(piece)
        return b"".join(pieces)

    def readline(self, size: int = -1) -> bytes:
        return self._stream.readline(size)


def call(handler: Any, token: str, stream: SocketLike, length: int) -> int:
    """One request through the WSGI handler; the HTTP status."""
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": CREATE,
        "SERVER_NAME": HOST,
        "SERVER_PORT": "80",
        "HTTP_HOST": HOST,
        "wsgi.url_scheme": "http",
        "wsgi.input": stream,
        "wsgi.errors": sys.stderr,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(length),
        "HTTP_AUTHORIZATION": f"Bearer {token}",
    }
    statuses: list[str] = []
    result = handler(environ, lambda status, headers, exc_info=None: statuses.append(status))
    b"".join(result)
    result.close()
    return int(statuses[0].split()[0])


def measure(mode: str, workdir: Path) -> dict[str, float]:
    """Run inside a fresh child: warm up, build the body, reset the peak, handle it."""
    from django.core.wsgi import get_wsgi_application

    handler = get_wsgi_application()
    token = (workdir / "token").read_text()
    warm = create_body((workdir / "warm.jpg").read_bytes(), (workdir / "warm.wav").read_bytes())
    assert call(handler, token, SocketLike(warm), len(warm)) == 200, "the warm-up failed"
    length = None
    if mode == "accepted":
        body = create_body(
            (workdir / "portrait.png").read_bytes(), (workdir / "voice.wav").read_bytes()
        )
        expected = 200
    elif mode in ("refused", "uncapped"):
        if mode == "uncapped":  # for comparison: the same body without the structure cap
            import jobs.api.inputs

            jobs.api.inputs._check_json_shape = lambda raw: None  # type: ignore[assignment]
        count = 22 * 2**20 // 3
        body = b"[" + b"{}," * (count - 1) + b"{}]"
        expected = 400
    elif mode == "oversized":
        body, length, expected = b"{}", 300 * 2**20, 413
    else:
        raise SystemExit(f"unknown mode {mode}")
    stream = SocketLike(body)
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = status_kb("VmRSS")
    status = call(handler, token, stream, stream.size if length is None else length)
    growth = (status_kb("VmHWM") - before) / 1024
    if status != expected:
        raise SystemExit(f"{mode}: HTTP {status}, expected {expected}")
    return {"growth_mb": growth, "body_mb": (length or stream.size) / 2**20}


def run_child(mode: str, workdir: Path) -> dict[str, float]:
    env = {**os.environ, "DATA_DIR": str(workdir / "data"), "LOG_LEVEL": "ERROR"}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(workdir)],
        capture_output=True,
        check=True,
        cwd=ROOT,
        env=env,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1]) if out.strip() else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import django

        django.setup()
        mode, workdir = args.child[0], Path(args.child[1])
        if mode == "make":
            make_inputs(workdir)
        else:
            print(json.dumps(measure(mode, workdir)))
        return

    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-bodymem-") as tmp:
        workdir = Path(tmp)
        run_child("make", workdir)
        for mode in ("accepted", "refused", "oversized", "uncapped"):
            runs = 1 if mode == "uncapped" else args.runs
            results[mode] = [run_child(mode, workdir) for _ in range(runs)]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"runs: {args.runs} fresh processes each, medians; load average {load}")
    medians = {m: statistics.median(r["growth_mb"] for r in runs) for m, runs in results.items()}
    for mode, runs in results.items():
        growth = medians[mode]
        each = ", ".join(f"{r['growth_mb']:.0f}" for r in runs)
        ok = "met" if growth < TARGET_MB else "MISSED"
        if mode == "uncapped":
            ok = "none (the old behaviour, for comparison)"
        print(
            f"{mode}: body {runs[0]['body_mb']:.1f} MB, RSS growth {growth:.0f} MB "
            f"(runs: {each}); target under {TARGET_MB} MB: {ok}"
        )
    print(
        f"bodymem: RSS growth accepted {medians['accepted']:.0f} MB, refused "
        f"{medians['refused']:.0f} MB (uncapped {medians['uncapped']:.0f} MB), oversized "
        f"{medians['oversized']:.0f} MB"
    )


if __name__ == "__main__":
    main()
