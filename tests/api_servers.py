"""Loopback HTTP servers for the API tests: real sockets, programmable answers, a record of
every request (so a test can prove that a refused URL was never even connected to)."""

from __future__ import annotations

import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Hit:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)
    send_length: bool = True  # False: no Content-Length, close to end the body
    trickle: float = 0.0  # seconds between 1 KB pieces (a slow server)


class LoopbackServer:
    """Answers GET/POST by path from `routes`; POSTs with no route take `post_statuses` in turn
    (then 204). Use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Answer] = {}
        self.post_statuses: list[int] = []
        self.hits: list[Hit] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path
                with server.lock:
                    server.hits.append(
                        Hit(self.command, path, dict(self.headers), body, time.monotonic())
                    )
                    answer = server.routes.get(path)
                    if answer is None and self.command == "POST":
                        status = server.post_statuses.pop(0) if server.post_statuses else 204
                        answer = Answer(status=status)
                answer = answer or Answer(status=404, body=b"not here")
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                if answer.send_length:
                    self.send_header("Content-Length", str(len(answer.body)))
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                try:
                    if answer.trickle:
                        for start in range(0, len(answer.body), 1024):
                            self.wfile.write(answer.body[start : start + 1024])
                            self.wfile.flush()
                            time.sleep(answer.trickle)
                    else:
                        self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://{host}:{self.port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def serve(self, path: str, body: bytes, content_type: str = "application/octet-stream") -> str:
        self.routes[path] = Answer(body=body, content_type=content_type)
        return f"{self.url}{path}"

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        self.routes[path] = Answer(status=status, headers={"Location": location})
        return f"{self.url}{path}"

    def posts(self, path: str | None = None) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.method == "POST" and (path is None or h.path == path)]

    def requests_to(self, path: str) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.path == path]
