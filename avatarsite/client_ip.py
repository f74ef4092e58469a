"""The address a request really came from, for the login lockout (django-axes).

Behind PROXY_COUNT reverse proxies, each of which appends the address it saw to
X-Forwarded-For, the client is the entry PROXY_COUNT places from the right: entries further
left were written by the client itself and prove nothing. With PROXY_COUNT=0 (the default)
the header is ignored, so sending one cannot escape a lockout. TRUSTED_PROXIES, when set,
also requires the direct peer to be one of those networks before the header is believed.

django-ipware was tried for this and left out: its proxy count excludes the proxy that talks to
Django, a count of 0 means "trust the left-most entry" (which the client writes), and a header
of any other length gives no address at all. A single nginx with `proxy_add_x_forwarded_for`
therefore either locks everyone together or lets a forged header escape the lock; this
callable, which axes asks first, follows the plain rule above instead.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def _address(text: str) -> str | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    """AXES_CLIENT_IP_CALLABLE: the client's address under PROXY_COUNT / TRUSTED_PROXIES."""
    peer = request.META.get("REMOTE_ADDR") or None
    count: int = settings.PROXY_COUNT
    if count == 0:
        return peer
    trusted = settings.TRUSTED_PROXIES
    if trusted:
        peer_ip = _address(peer or "")
        if peer_ip is None or not any(ipaddress.ip_address(peer_ip) in n for n in trusted):
            return peer  # not from our proxy: its header is the client's own words
    entries = [e for e in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if e.strip()]
    if len(entries) < count:
        return peer  # fewer hops than configured: nothing in the header can be trusted
    return _address(entries[-count]) or peer
