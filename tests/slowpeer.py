"""A misbehaving HTTP peer on loopback (raw sockets, one thread per connection), for the
deadline tests and bench/slowpeer.py.

The first path segment picks how it misbehaves:

- `/ok`: a prompt, complete answer (proves the process still serves other requests);
- `/slow-status`: the status line one byte a tick;
- `/trickle-headers`: `200 OK`, then one header line a tick, forever;
- `/trickle-body`: headers with a large Content-Length, then one byte a tick;
- `/endless-body`: no Content-Length, small pieces a tick, forever;
- `/silent`: reads the request and never answers.

A connection that says nothing (TLS ClientHello included) is answered by nothing: pointing an
https:// URL at the server gives a TLS handshake that never completes.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

OK_BODY = b'{"code":0,"message":"ok","data":{}}'


class SlowPeer:
    def __init__(self, tick: float = 0.2) -> None:
        self.tick = tick
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.listener.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.stopped = threading.Event()
        self.connections: list[socket.socket] = []
        self.lock = threading.Lock()
        self.paths: list[str] = []

    def __enter__(self) -> SlowPeer:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.stopped.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        with self.lock:
            for conn in self.connections:
                with contextlib.suppress(OSError):
                    conn.close()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            path = self._read_request(conn)
            if path is None:
                self.stopped.wait()  # said nothing HTTP (a TLS hello?): say nothing either
                return
            with self.lock:
                self.paths.append(path)
            mode = path.split("?")[0].strip("/").split("/")[0]
            getattr(self, "_" + mode.replace("-", "_"), self._ok)(conn)

    def _read_request(self, conn: socket.socket) -> str | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
            if not data[:1].isalpha():
                return None
        head, _, rest = data.partition(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
                while len(rest) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    rest += chunk
        return head.split(b" ")[1].decode()

    def _forever(self, conn: socket.socket, piece: bytes) -> None:
        while not self.stopped.wait(self.tick):
            conn.sendall(piece)

    def _ok(self, conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(OK_BODY)}\r\nConnection: close\r\n\r\n".encode()
            + OK_BODY
        )

    def _slow_status(self, conn: socket.socket) -> None:
        for byte in b"HTTP/1.1 200 OK\r\n":
            if self.stopped.wait(self.tick):
                return
            conn.sendall(bytes([byte]))
        self._forever(conn, b"X")

    def _trickle_headers(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        count = 0
        while not self.stopped.wait(self.tick):
            count += 1
            conn.sendall(f"X-Trickle-{count}: {time.monotonic():.3f}\r\n".encode())

    def _trickle_body(self, conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 1000000\r\n\r\n"
        )
        self._forever(conn, b"x")

    def _endless_body(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nConnection: close\r\n\r\n")
        self._forever(conn, b"x" * 100)

    def _silent(self, conn: socket.socket) -> None:
        self.stopped.wait()
