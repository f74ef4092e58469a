"""Kling's avatar API: the HTTP client (client.py), how its calls fail (errors.py), what it
sends back (replies.py), its failures in a user's words (messages.py) and a simulator of it
(simulator.py)."""

from __future__ import annotations

from django.conf import settings


def is_configured() -> bool:
    """True when credentials for Kling are set (official key pair or a gateway's API key)."""
    return bool(settings.KLING_API_KEY or (settings.KLING_ACCESS_KEY and settings.KLING_SECRET_KEY))
