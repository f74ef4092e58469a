"""Strict parsing of configuration from the environment.

Every getter raises ImproperlyConfigured naming the variable and saying what a good
value looks like, so a typo stops start-up instead of silently falling back.
"""

from __future__ import annotations

import builtins
import ipaddress
import os
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}
# S3's bucket naming rules (what AWS, MinIO, R2 and Backblaze all accept).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class Env:
    # The getters are named after the types they return, so inside the class those names
    # mean the methods: signatures after `def str` spell the types as builtins.*.

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def raw(self, name: str) -> str | None:
        value = self.environ.get(name)
        return None if value is None else value.strip()

    def str(self, name: str, default: str = "") -> str:
        value = self.raw(name)
        return default if value is None or value == "" else value

    def bool(self, name: builtins.str, default: builtins.bool = False) -> builtins.bool:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() in TRUE_WORDS:
            return True
        if value.lower() in FALSE_WORDS:
            return False
        raise ImproperlyConfigured(f"{name}={value!r} is not a yes/no value: use 1/0, true/false.")

    def int(
        self,
        name: builtins.str,
        default: builtins.int,
        *,
        minimum: builtins.int | None = None,
        maximum: builtins.int | None = None,
    ) -> builtins.int:
        value = self.raw(name)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except ValueError:
            raise ImproperlyConfigured(f"{name}={value!r} is not a whole number.") from None
        if minimum is not None and number < minimum:
            raise ImproperlyConfigured(f"{name}={number} is too small: the minimum is {minimum}.")
        if maximum is not None and number > maximum:
            raise ImproperlyConfigured(f"{name}={number} is too large: the maximum is {maximum}.")
        return number

    def decimal(
        self,
        name: builtins.str,
        default: builtins.str,
        *,
        minimum: builtins.str | None = None,
        maximum: builtins.str | None = None,
    ) -> Decimal:
        """A decimal number such as `0.4`; `default`, `minimum` and `maximum` are written
        as strings so no float rounding creeps in."""
        value = self.raw(name)
        text = default if value is None or value == "" else value
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ImproperlyConfigured(f"{name}={value!r} is not a number, e.g. 0.4.") from None
        if not number.is_finite():
            raise ImproperlyConfigured(f"{name}={value!r} is not a number, e.g. 0.4.")
        if minimum is not None and number < Decimal(minimum):
            raise ImproperlyConfigured(f"{name}={number} is too small: the minimum is {minimum}.")
        if maximum is not None and number > Decimal(maximum):
            raise ImproperlyConfigured(f"{name}={number} is too large: the maximum is {maximum}.")
        return number

    def list(
        self, name: builtins.str, default: builtins.list[builtins.str]
    ) -> builtins.list[builtins.str]:
        value = self.raw(name)
        if value is None or value == "":
            return list(default)
        return [item.strip() for item in value.split(",") if item.strip()]

    def networks(
        self, name: builtins.str
    ) -> builtins.list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """Comma-separated IP networks (CIDRs, or single addresses), e.g. 10.0.0.0/8, ::1."""
        networks = []
        for item in self.list(name, []):
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ImproperlyConfigured(
                    f"{name}: {item!r} is not an IP network: give CIDRs like 10.1.0.0/16 or "
                    "addresses like 192.168.1.5, separated by commas."
                ) from None
        return networks

    def url(
        self,
        name: builtins.str,
        default: builtins.str = "",
        *,
        schemes: tuple[builtins.str, ...] = ("http", "https"),
    ) -> builtins.str:
        value = self.str(name, default)
        if not value:
            return ""
        parsed = urlparse(value)
        if parsed.scheme not in schemes or not parsed.netloc:
            allowed = " or ".join(f"{s}://" for s in schemes)
            raise ImproperlyConfigured(
                f"{name}={value!r} is not a valid URL: "
                f"it must start with {allowed} and name a host."
            )
        return value.rstrip("/")

    def choice(
        self, name: builtins.str, default: builtins.str, choices: tuple[builtins.str, ...]
    ) -> builtins.str:
        value = self.str(name, default).lower()
        if value not in choices:
            raise ImproperlyConfigured(
                f"{name}={value!r} is unknown: use one of {', '.join(choices)}."
            )
        return value

    def s3_location(self, name: builtins.str) -> tuple[builtins.str, builtins.str] | None:
        """`s3://bucket/optional/prefix` as (bucket, prefix); None when unset (local files)."""
        value = self.str(name)
        if not value:
            return None
        parsed = urlparse(value)
        bucket, prefix = parsed.netloc, parsed.path.strip("/")
        extra = parsed.query or parsed.fragment or parsed.params
        if parsed.scheme != "s3" or not _BUCKET.fullmatch(bucket) or extra:
            raise ImproperlyConfigured(
                f"{name}={value!r} is not an object storage URL: use s3://bucket or "
                "s3://bucket/prefix (a bucket name is 3-63 lowercase letters, digits, dots and "
                "hyphens); leave it unset for files on this machine."
            )
        if "//" in prefix or any(part in {".", ".."} for part in prefix.split("/")):
            raise ImproperlyConfigured(
                f"{name}={value!r}: the prefix {prefix!r} must be plain path segments."
            )
        return bucket, prefix
