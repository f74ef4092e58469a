"""What Kling's API docs describe, as a caller writes it: sign a JWT from the key pair, make a
voice-over with text to speech, start an avatar task with its audio_id, poll until it ends,
download the video. Nothing in it knows about the studio: tests/test_kling_tools_live.py runs
it unchanged against the studio, with only the environment changed.

    KLING_BASE_URL=https://api-singapore.klingai.com KLING_ACCESS_KEY=… KLING_SECRET_KEY=… \
        python kling_docs_script.py portrait.jpg out.mp4 [mode]

Prints one JSON line per step; exits 1 if the task fails.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time

import jwt
import requests

BASE = os.environ["KLING_BASE_URL"].rstrip("/")


def token() -> str:
    now = int(time.time())
    payload = {"iss": os.environ["KLING_ACCESS_KEY"], "exp": now + 1800, "nbf": now - 5}
    return jwt.encode(payload, os.environ["KLING_SECRET_KEY"], headers={"alg": "HS256"})


def call(method: str, path: str, **kwargs: object) -> dict:
    headers = {"Authorization": f"Bearer {token()}", "Content-Type": "application/json"}
    reply = requests.request(method, BASE + path, headers=headers, timeout=120, **kwargs)
    body = reply.json()
    if body.get("code") != 0:
        raise SystemExit(f"{method} {path}: {reply.status_code} {body}")
    return body["data"]


def main() -> int:
    portrait, out = sys.argv[1], sys.argv[2]
    mode = sys.argv[3] if len(sys.argv) > 3 else "std"
    tts = call(
        "POST",
        "/v1/audio/tts",
        json={
            "text": "Hello! This avatar was made by a script written from Kling's API docs.",
            "voice_id": "oversea_male1",
            "voice_language": "en",
            "voice_speed": 1.0,
        },
    )
    audio_id = tts["task_result"]["audios"][0]["id"]
    print(json.dumps({"step": "tts", "status": tts["task_status"], "audio_id": audio_id}))
    with open(portrait, "rb") as fh:
        image = base64.b64encode(fh.read()).decode()
    task = call(
        "POST",
        "/v1/videos/avatar/image2video",
        json={"image": image, "audio_id": audio_id, "prompt": "", "mode": mode},
    )
    print(json.dumps({"step": "create", "task_id": task["task_id"]}))
    for _ in range(240):
        task = call("GET", f"/v1/videos/avatar/image2video/{task['task_id']}")
        if task["task_status"] in ("succeed", "failed"):
            break
        time.sleep(0.5)
    print(json.dumps({"step": "done", "task": task}))
    if task["task_status"] != "succeed":
        return 1
    video = task["task_result"]["videos"][0]
    with open(out, "wb") as fh:
        fh.write(requests.get(video["url"], timeout=120).content)
    print(json.dumps({"step": "saved", "path": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
