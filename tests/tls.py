"""HTTPS in front of the studio, as the README's deployment recipe puts it: a certificate made
at test time and a small TLS-terminating reverse proxy on loopback that sets
X-Forwarded-Proto (and X-Forwarded-For) the way nginx does in that recipe."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HEAD_MAX = 64 * 1024


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost, 127.0.0.1 and ::1; (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "avatarsite test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class TlsProxy:
    """HTTPS on `host` (a free port) in front of an HTTP upstream, one request per connection.

    Each request is forwarded with X-Forwarded-Proto: https (the client's own is dropped) and
    X-Forwarded-For appended, and answered with Connection: close, which keeps the proxy to a
    few lines while every client (axios, requests) still works. Use as a context manager.
    """

    def __init__(self, upstream: tuple[str, int], cert: Path, key: Path, host: str = "::1"):
        self.upstream = upstream
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, 0))
        self.listener.listen(32)
        self.port = self.listener.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"https://{shown}:{self.port}"
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> TlsProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                raw, peer = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(raw, peer), daemon=True).start()

    def _handle(self, raw: socket.socket, peer: tuple[str, ...]) -> None:
        raw.settimeout(30)
        try:
            with self.context.wrap_socket(raw, server_side=True) as client:
                head, body = _read_request(client)
                if head is None:
                    return
                self.requests += 1
                lines = head.split(b"\r\n")
                kept = [
                    line
                    for line in lines[1:]
                    if line and not line.lower().startswith((b"x-forwarded-proto:", b"connection:"))
                ]
                forwarded = [
                    lines[0],
                    *kept,
                    b"X-Forwarded-Proto: https",
                    b"X-Forwarded-For: " + peer[0].encode(),
                    b"Connection: close",
                ]
                with socket.create_connection(self.upstream, timeout=60) as up:
                    up.sendall(b"\r\n".join(forwarded) + b"\r\n\r\n" + body)
                    _relay_response(up, client)
        except (OSError, ssl.SSLError):
            pass  # a client that went away, or refused our certificate (a test says which)


def _read_request(client: ssl.SSLSocket) -> tuple[bytes | None, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        if not chunk or len(data) > HEAD_MAX:
            return None, b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = client.recv(min(1 << 20, length - len(body)))
        if not chunk:
            break
        body += chunk
    return head, body


def _relay_response(up: socket.socket, client: ssl.SSLSocket) -> None:
    """The upstream's answer, with Connection: close; then until the upstream closes."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = up.recv(65536)
        if not chunk:
            client.sendall(data)
            return
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
    client.sendall(b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n" + rest)
    while chunk := up.recv(1 << 20):
        client.sendall(chunk)
