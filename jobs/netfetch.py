"""HTTP to URLs that API callers give us, without letting them reach inside our network (SSRF).

The Kling-compatible API fetches `image`/`sound_file` URLs and POSTs status changes to
`callback_url`. A caller could name http://169.254.169.254/ (cloud metadata), http://10.0.0.5/
or a name that resolves to 127.0.0.1, so every request here:

- resolves the host itself and refuses it unless EVERY address it resolves to is public
  (loopback, private, link-local, CGNAT, multicast, reserved, unspecified and IPv6 forms that
  embed such an IPv4 address are all refused; decimal/octal/hex IPv4 spellings such as
  http://2130706433/ resolve to what they mean, so they are caught the same way);
- connects to the address it checked (the connection is pinned to that IP while the Host header
  and TLS SNI/certificate check keep the name), so DNS cannot answer differently the second time;
- never follows redirects by itself: `fetch` follows up to MAX_REDIRECTS hops, checking each
  new URL like the first; `post_json` follows none;
- caps size while streaming, and gives every request a wall-clock deadline enforced at the
  socket (jobs/deadline.py: connect, TLS, status line, headers and body in all), so a slow,
  trickling or endless answer costs seconds, not a worker.

`settings.ALLOW_PRIVATE_URLS` turns the address check off (local testing against loopback
servers); `settings.PRIVATE_URL_ALLOWLIST` (ip_network objects, parsed from the environment at
start-up by avatarsite/settings.py; optional) trusts a few
private networks while the check stays on, e.g. an office asset server.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import certifi
import urllib3
from django.conf import settings
from requests.utils import requote_uri
from urllib3.exceptions import HTTPError as Urllib3Error

from jobs.deadline import (
    DeadlineExceeded,
    DeadlineHTTPConnectionPool,
    DeadlineHTTPSConnectionPool,
    current,
    deadline,
)

MAX_URL_CHARS = 2000
MAX_REDIRECTS = 3
DNS_TIMEOUT = 5.0  # seconds; getaddrinfo itself has no timeout
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 5.0  # silence between two reads: past this a server is taken as gone
CHUNK = 64 * 1024
USER_AGENT = "avatarsite (+Kling-compatible API)"
CA_BUNDLE: str | None = None  # None: certifi's bundle, as requests uses (tests point it at theirs)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # IPv6 that translates to the IPv4 in its tail
_CGNAT = ipaddress.ip_network("100.64.0.0/10")  # shared address space (Alibaba's metadata too)


class UrlRefused(Exception):
    """The URL is not one we will connect to; `str()` says why, in words for the caller."""


class FetchError(Exception):
    """The URL was acceptable but the request failed (network, HTTP status, size, time)."""


class TooLarge(FetchError):
    """The answer is bigger than the caller's limit (declared, or found while streaming)."""


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (the checked addresses) and what to ask for."""

    url: str
    scheme: str
    host: str  # the name (or IP literal) for Host, SNI and the certificate
    port: int
    request_target: str  # path and query, as sent on the request line
    addresses: tuple[str, ...]  # resolved and checked, in the resolver's order

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class Fetched:
    content: bytes
    content_type: str  # the media type without parameters, lower case ("" if none)
    url: str  # the final URL, after redirects


# --- the address policy ---------------------------------------------------------------------


def address_problem(address: str | IPAddress) -> str | None:
    """Why we must not connect to `address` ("a loopback address", ...), or None if it is public.

    Stricter than `ip.is_global` alone, which in Python 3.11 calls multicast global and does not
    look inside IPv4-mapped, NAT64 or 6to4 IPv6 addresses.
    """
    try:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ip.ipv4_mapped or ip
        if isinstance(ip, ipaddress.IPv6Address):
            problem = _embedded_problem(ip)
            if problem:
                return problem
    return _range_problem(ip)


def _embedded_problem(ip: ipaddress.IPv6Address) -> str | None:
    """The problem with the IPv4 address a NAT64 or 6to4 `ip` stands for, if any."""
    embedded = _embedded_ipv4(ip)
    if embedded is None:
        return None
    problem = address_problem(embedded)
    return f"{problem} (inside the IPv6 address {ip})" if problem else None


def _range_problem(ip: IPAddress) -> str | None:
    """Which non-public range `ip` itself lies in, in words, or None if it is public."""
    if ip.is_unspecified:
        return "the unspecified address (it means this machine)"
    if ip.is_loopback:
        return "a loopback address (this machine)"
    if ip.is_link_local:
        return "a link-local address (cloud metadata services live there)"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "a shared (carrier-grade NAT) address"
    if ip.is_private:
        return "a private network address"
    if ip.is_reserved or not ip.is_global:
        return "a reserved address"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a NAT64 or 6to4 IPv6 address stands for, if it is one."""
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def _allowlist() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return list(settings.PRIVATE_URL_ALLOWLIST)  # already parsed (and checked) at start-up


def _allowed(address: str, allow_private: bool) -> str | None:
    """The problem with connecting to `address` under the current policy, or None."""
    if allow_private:
        return None
    problem = address_problem(address)
    if problem is None:
        return None
    ip = ipaddress.ip_address(address)
    if any(ip in network for network in _allowlist()):
        return None
    return problem


# --- parsing and resolving ------------------------------------------------------------------


def _resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, with a time limit (getaddrinfo has none).

    A fresh daemon thread per lookup: a pool would not survive django-q2 forking its workers.
    """
    result: dict[str, Any] = {}

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            result["addresses"] = list(dict.fromkeys(str(info[4][0]) for info in infos))
        except (OSError, UnicodeError) as exc:
            result["error"] = exc

    thread = threading.Thread(target=lookup, name="netfetch-dns", daemon=True)
    thread.start()
    limit = current()
    wait = DNS_TIMEOUT if limit is None else min(DNS_TIMEOUT, limit.left())
    thread.join(wait)
    if "addresses" in result:
        return result["addresses"]
    if "error" in result:
        raise UrlRefused(f"the host {host} could not be found")
    raise UrlRefused(f"looking up the host {host} took longer than {wait:g} s")


def check_url(url: str, *, allow_private: bool | None = None) -> Target:
    """Parse, resolve and check a URL; raise UrlRefused with the reason if it must not be used."""
    if allow_private is None:
        allow_private = settings.ALLOW_PRIVATE_URLS
    url = _checked_text(url)
    scheme, host, port, request_target = _split_url(url)
    addresses = _resolve(host, port)
    if not addresses:
        raise UrlRefused(f"the host {host} has no addresses")
    # Every address must pass: a name that answers one public and one private address could
    # be tried in any order by a client, so it is refused outright.
    for address in addresses:
        problem = _allowed(address, allow_private)
        if problem:
            where = host if host == address else f"{host} resolves to {address}, which"
            raise UrlRefused(f"{where} is {problem}: only public internet addresses can be used")
    return Target(
        url=url,
        scheme=scheme,
        host=host,
        port=port,
        request_target=request_target,
        addresses=tuple(addresses),
    )


def _checked_text(url: str) -> str:
    """The URL without surrounding space, if it is a string of an acceptable length and
    characters."""
    if not isinstance(url, str) or not url.strip():
        raise UrlRefused("the URL is empty")
    url = url.strip()
    if len(url) > MAX_URL_CHARS:
        raise UrlRefused(f"the URL is {len(url):,} characters long: the limit is {MAX_URL_CHARS:,}")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise UrlRefused("the URL contains control characters")
    return url


def _split_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, request target) of an http(s) URL without credentials."""
    try:
        parts = urlsplit(requote_uri(url))
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"the URL is not valid ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UrlRefused("only http:// and https:// URLs can be used")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("URLs with a user name or password (user:pass@host) are not supported")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UrlRefused("the URL has no host name")
    try:
        host.encode("idna")
    except UnicodeError:
        raise UrlRefused(f"the host name {host!r} is not valid") from None
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    return scheme, host, port or (443 if scheme == "https" else 80), target


# --- the pinned connection -------------------------------------------------------------------


def _pool(target: Target, address: str, timeout: urllib3.Timeout) -> urllib3.HTTPConnectionPool:
    """A one-connection pool to `address` that still speaks to `target.host` (Host, SNI, cert)."""
    if target.scheme == "https":
        return DeadlineHTTPSConnectionPool(
            address,
            target.port,
            timeout=timeout,
            retries=False,
            maxsize=1,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=CA_BUNDLE or certifi.where(),
        )
    return DeadlineHTTPConnectionPool(
        address, target.port, timeout=timeout, retries=False, maxsize=1
    )


def _open(
    target: Target,
    method: str,
    *,
    timeout: urllib3.Timeout,
    headers: dict[str, str],
    body: bytes | None = None,
) -> tuple[urllib3.BaseHTTPResponse, urllib3.HTTPConnectionPool]:
    """Send the request to the first checked address that accepts a connection."""
    last: Exception | None = None
    for address in target.addresses:
        pool = _pool(target, address, timeout)
        try:
            response = pool.urlopen(
                method,
                target.request_target,
                body=body,
                headers={"Host": target.host_header, "User-Agent": USER_AGENT, **headers},
                redirect=False,
                retries=False,
                preload_content=False,
                assert_same_host=False,
            )
        except (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError) as e:
            pool.close()
            last = e
            continue
        except (Urllib3Error, OSError) as exc:
            pool.close()
            raise FetchError(_network_error(exc)) from None
        return response, pool
    raise FetchError(_network_error(last))


def _network_error(exc: BaseException | None) -> str:
    if isinstance(exc, urllib3.exceptions.SSLError):
        return "the TLS connection failed (certificate or protocol problem)"
    # NewConnectionError subclasses ConnectTimeoutError in urllib3 2: test it first.
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return "the server refused the connection"
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return "the server did not accept a connection in time"
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return "the server stopped answering"
    return f"the request failed ({exc.__class__.__name__ if exc else 'no address'})"


def _read_capped(response: urllib3.BaseHTTPResponse, *, max_bytes: int) -> bytes:
    """The body, refusing to hold more than max_bytes (the deadline around it cuts it short)."""
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise TooLarge(f"the file is {_mb(int(length))}: the limit is {_mb(max_bytes)}")
    parts: list[bytes] = []
    size = 0
    try:
        while True:
            chunk = response.read1(CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(f"the file is larger than {_mb(max_bytes)}")
            parts.append(chunk)
    except (Urllib3Error, OSError) as exc:
        raise FetchError(_network_error(exc)) from None
    return b"".join(parts)


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


# --- what callers use ------------------------------------------------------------------------


def fetch(
    url: str,
    *,
    max_bytes: int,
    total_timeout: float = 20.0,
    allow_private: bool | None = None,
    max_redirects: int = MAX_REDIRECTS,
) -> Fetched:
    """GET a file from a caller's URL, checked and pinned at every hop; raise on any problem.

    `total_timeout` is wall-clock time for everything, redirects included (DNS, connect, TLS,
    headers, body), enforced at the socket. Raises UrlRefused (the URL or a redirect target may
    not be used) or FetchError (it could not be downloaded); both carry a sentence for the caller.
    """
    hosts = [_host_of(url)]
    try:
        with deadline(total_timeout):
            return _fetch_hops(
                url,
                hosts,
                max_bytes=max_bytes,
                allow_private=allow_private,
                max_redirects=max_redirects,
            )
    except DeadlineExceeded:
        raise FetchError(_too_slow(hosts[-1], total_timeout)) from None


def _fetch_hops(
    url: str,
    hosts: list[str],
    *,
    max_bytes: int,
    allow_private: bool | None,
    max_redirects: int,
) -> Fetched:
    """`fetch` inside its deadline; appends each hop's host to `hosts` (for the error)."""
    current_url = url
    timeout = urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT)
    for _hop in range(max_redirects + 1):
        target = check_url(current_url, allow_private=allow_private)
        hosts.append(target.host)
        response, pool = _open(
            target,
            "GET",
            timeout=timeout,
            headers={"Accept": "*/*", "Accept-Encoding": "identity"},
        )
        try:
            if response.status in (301, 302, 303, 307, 308):
                location = response.headers.get("Location", "")
                if not location:
                    raise FetchError(f"the server answered HTTP {response.status} with no Location")
                current_url = urljoin(target.url, location)
                continue
            if response.status != 200:
                raise FetchError(f"the server answered HTTP {response.status} {response.reason}")
            content = _read_capped(response, max_bytes=max_bytes)
            content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            return Fetched(content=content, content_type=content_type, url=target.url)
        finally:
            response.release_conn()
            pool.close()
    raise FetchError(f"the URL redirected more than {max_redirects} times")


def _host_of(url: str) -> str:
    try:
        return urlsplit(str(url).strip()).hostname or "the URL"
    except ValueError:
        return "the URL"


def _too_slow(host: str, seconds: float) -> str:
    return f"the server at {host} took longer than {seconds:g} s to finish answering"


def post_json(
    url: str,
    body: Any,
    *,
    timeout: float = 5.0,
    allow_private: bool | None = None,
) -> int:
    """POST `body` as JSON to a caller's URL (no redirects followed); return the HTTP status.

    `timeout` is wall-clock time for the whole exchange, enforced at the socket. Raises
    UrlRefused or FetchError like `fetch`. Only the first 64 KB of the answer is read: a
    callback receiver has nothing to tell us.
    """
    host = _host_of(url)
    data = json.dumps(body, separators=(",", ":")).encode()
    status: int | None = None
    try:
        with deadline(timeout) as limit:
            target = check_url(url, allow_private=allow_private)
            response, pool = _open(
                target,
                "POST",
                timeout=urllib3.Timeout(connect=min(CONNECT_TIMEOUT, timeout), read=timeout),
                headers={"Content-Type": "application/json", "Accept": "*/*"},
                body=data,
            )
            # Headers cut short by the deadline end like complete ones: only count an answer
            # that was in before the time ran out.
            if not limit.expired:
                status = response.status
            try:
                with contextlib.suppress(Urllib3Error, OSError):
                    response.read(CHUNK)  # the status line is what counts, not the rest
            finally:
                response.release_conn()
                pool.close()
    except DeadlineExceeded:
        pass  # an answer that was in before the time ran out still counts
    if status is None:
        raise FetchError(_too_slow(host, timeout))
    return status
