"""Wall-clock deadlines for outbound HTTP, enforced at the socket.

A socket timeout limits each read, not the request: a server that answers `200 OK` and then
sends one header line every few seconds never lets a read time out, and holds the request (and
the thread or worker waiting on it) for as long as it likes. So:

    with deadline(20):
        ...  # any HTTP through the connection classes below

keeps every socket those connections open or reuse inside the block, and a timer shuts them
down (`shutdown(SHUT_RDWR)`) when the time is up, so a blocked connect-then-TLS handshake, recv
or send returns at once. Leaving the block then raises `DeadlineExceeded` whatever happened
inside it (an error, or a body cut short that would otherwise look complete), and the caller
turns it into its own error in words.

The timer is a `threading.Timer` made per block: django-q2 forks its workers, so nothing is
started at import. The socket is registered before TLS (`_new_conn`), so a slow handshake is
covered, and again on every request, since a pooled keep-alive connection (requests' Session)
is reused without connecting again. The TCP connect itself is capped by the connect timeout,
which is shortened to the time left.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection


class DeadlineExceeded(Exception):
    """The block ran past its deadline; its sockets were shut down."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"did not finish within {seconds:g} s")
        self.seconds = seconds


class Deadline:
    """The sockets used within one `deadline()` block and the timer that shuts them down."""

    def __init__(self, seconds: float, parent: Deadline | None = None) -> None:
        self.seconds = seconds
        self.expires_at = time.monotonic() + seconds
        self.parent = parent
        self.expired = False
        self._closed = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.name = "deadline"

    def left(self) -> float:
        """Seconds until this deadline (or an outer, earlier one) passes; never below 0."""
        left = max(self.expires_at - time.monotonic(), 0.0)
        return min(left, self.parent.left()) if self.parent else left

    def watch(self, sock: socket.socket | None) -> None:
        """Shut `sock` down when the time is up (at once if it already is)."""
        if sock is None:
            return
        with self._lock:
            if not self._closed and sock not in self._sockets:
                self._sockets.append(sock)
            late = self.expired and not self._closed
        if late:
            _shut(sock)
        if self.parent:
            self.parent.watch(sock)

    def _expire(self) -> None:
        with self._lock:
            if self._closed:
                return
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def _start(self) -> None:
        self._timer.start()

    def _close(self) -> None:
        with self._lock:
            self._closed = True
            self._sockets.clear()
        self._timer.cancel()


def _shut(sock: socket.socket) -> None:
    # shutdown, not close: close would not wake a thread blocked in recv on the same socket,
    # and the owner still closes it in its own time.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


_current: ContextVar[Deadline | None] = ContextVar("deadline", default=None)


def current() -> Deadline | None:
    """The innermost deadline of this thread (context), if any."""
    return _current.get()


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[Deadline]:
    """Give HTTP inside the block `seconds` of wall-clock time in all; raise DeadlineExceeded
    on leaving it if they ran out (replacing whatever error the cut sockets caused)."""
    limit = Deadline(seconds, parent=_current.get())
    token = _current.set(limit)
    limit._start()
    try:
        yield limit
    except Exception as exc:
        limit._close()
        # A socket timeout equal to the time left can fire a moment before the timer does (a
        # busy machine runs the timer late): an error at or past the deadline is the deadline's.
        if limit.expired or time.monotonic() >= limit.expires_at:
            raise DeadlineExceeded(seconds) from exc
        raise
    else:
        limit._close()
        if limit.expired:
            raise DeadlineExceeded(seconds)
    finally:
        limit._close()
        _current.reset(token)


def _capped_connect_timeout(conn: HTTPConnection) -> None:
    limit = _current.get()
    if limit is None:
        return
    left = max(limit.left(), 0.01)
    timeout = conn.timeout
    if not isinstance(timeout, int | float) or timeout > left:
        conn.timeout = left


# --- urllib3 connections and pools that register their sockets -------------------------------


def _watch(sock: socket.socket | None) -> None:
    limit = _current.get()
    if limit is not None:
        limit.watch(sock)


class _Watched(HTTPConnection):
    """Registers its sockets with the current deadline (if any): new ones before TLS, and
    again on every request, since a reused keep-alive connection connects no more."""

    def _new_conn(self) -> socket.socket:
        _capped_connect_timeout(self)
        sock = super()._new_conn()
        _watch(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self.sock)
        super().request(*args, **kwargs)


class DeadlineHTTPConnection(_Watched, HTTPConnection):
    """An HTTPConnection whose sockets the current deadline (if any) can shut down."""


class DeadlineHTTPSConnection(_Watched, HTTPSConnection):
    """An HTTPSConnection whose raw socket is registered before the TLS handshake."""

    def connect(self) -> None:
        super().connect()
        _watch(self.sock)  # the TLS socket wraps the raw one; shut it down too


class DeadlineHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = DeadlineHTTPConnection


class DeadlineHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = DeadlineHTTPSConnection


_POOLS_BY_SCHEME = {"http": DeadlineHTTPConnectionPool, "https": DeadlineHTTPSConnectionPool}


class DeadlineAdapter(HTTPAdapter):
    """A requests adapter whose connections the current deadline can shut down."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS_BY_SCHEME

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _POOLS_BY_SCHEME
        return manager


def mount_deadline_adapter(session: Any) -> None:
    """Send a requests Session's http(s) traffic through DeadlineAdapter."""
    session.mount("https://", DeadlineAdapter())
    session.mount("http://", DeadlineAdapter())
