"""How a call to Kling failed: the error kinds callers branch on, and the reading of Kling's
business codes, envelopes and HTTP statuses into them.

Every failure is a `KlingError` whose `kind` says what the caller can do about it and whose
`outcome_unknown` says whether a create may have gone through anyway: in that case the caller
must look the task up by its `external_task_id` before submitting again.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

# Kling's business codes (its API documentation, "Error codes").
AUTH_RENEW_CODES = frozenset({1003, 1004})  # token not yet valid / expired: mint a new one once
OPERATOR_CODES = frozenset({1000, 1001, 1002, 1003, 1004, 1100, 1101, 1102})
PERMANENT_CODES = frozenset({1103, 1200, 1201, 1202, 1300, 1301, 1304})
NOT_FOUND_CODES = frozenset({1203})
RETRYABLE_CODES = frozenset({1302, 1303, 5000, 5001, 5002})
SERVER_CODES = frozenset({5000, 5001, 5002})

_DUPLICATE_RE = re.compile(
    r"duplicat|already exist|(external[ _]?task[ _]?id|external id).*(exist|unique|used|repeat)",
    re.IGNORECASE,
)
_NOT_FOUND_RE = re.compile(r"not (be )?found|not exist|does not exist|no such", re.IGNORECASE)


class ErrorKind(StrEnum):
    RETRYABLE = "retryable"  # try again later (with backoff); nothing is wrong with the request
    PERMANENT = "permanent"  # this request will never succeed: show the message to the user
    OPERATOR = "operator"  # credentials, account or balance: a person must act; pause submissions
    NOT_FOUND = "not_found"  # Kling has no such task
    DUPLICATE = "duplicate"  # a task with this external_task_id already exists: adopt it


class KlingError(Exception):
    """Anything that went wrong talking to Kling, classified so the caller can branch on `kind`.

    `outcome_unknown` is True when a request that creates something may have reached Kling and
    been acted on (read timeout, connection lost after sending, 5xx on create, unreadable
    reply). Retrying blindly could then create a second task; look it up by external id first.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        request_id: str | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.http_status = http_status
        self.message = message
        self.request_id = request_id
        self.outcome_unknown = outcome_unknown

    @property
    def retryable(self) -> bool:
        return self.kind == ErrorKind.RETRYABLE

    def __str__(self) -> str:
        details = [f"kind {self.kind}"]
        if self.code is not None:
            details.append(f"code {self.code}")
        if self.http_status is not None:
            details.append(f"HTTP {self.http_status}")
        if self.request_id:
            details.append(f"request {self.request_id}")
        if self.outcome_unknown:
            details.append("outcome unknown")
        return f"{self.message} ({', '.join(details)})"

    def __repr__(self) -> str:
        return f"KlingError({self})"


def _as_code(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def business_error(body: dict[str, Any]) -> tuple[int | None, str] | None:
    """(code, message) if the envelope reports an error, None if it reports success.

    The code is None when the body says "error" without a business code.

    Kling puts `code` at the top; a gateway may answer `{"code": 500, "data": {"code": 1303,
    "message": ...}}` or `{"error": {"code": ..., "message": ...}}`: the innermost business
    code wins because it is the one that says what happened.
    """
    code = _as_code(body.get("code"))
    message = str(body.get("message") or body.get("msg") or "")
    for key in ("data", "error"):
        nested = body.get(key)
        if isinstance(nested, dict) and "task_id" not in nested:
            inner = _as_code(nested.get("code"))
            if inner not in (None, 0):
                code = inner
                message = str(nested.get("message") or nested.get("msg") or message)
    if code in (None, 0) and isinstance(body.get("error"), str):
        return None, body["error"]
    if code in (None, 0):
        return None
    return code, message


def classify(
    code: int | None, message: str, http_status: int | None, *, creating: bool, lookup: bool
) -> tuple[ErrorKind, bool]:
    """(kind, outcome_unknown) for an error reply. Branches on the business code, not on HTTP.

    `creating`: the request creates a task (duplicates and unknown outcomes only exist there).
    `lookup`: the request fetches one task, so "not found" wording means NOT_FOUND.
    """
    if code is not None and code > 0:
        return _classify_code(code, message, http_status, creating=creating, lookup=lookup)
    return _classify_http_status(message, http_status, creating=creating)


def _classify_code(
    code: int, message: str, http_status: int | None, *, creating: bool, lookup: bool
) -> tuple[ErrorKind, bool]:
    """classify() for a reply that carries a business code."""
    if creating and code not in RETRYABLE_CODES and _DUPLICATE_RE.search(message):
        return ErrorKind.DUPLICATE, False
    if code in NOT_FOUND_CODES or (lookup and _NOT_FOUND_RE.search(message)):
        return ErrorKind.NOT_FOUND, False
    if code in RETRYABLE_CODES:
        return ErrorKind.RETRYABLE, creating and code in SERVER_CODES
    if code in OPERATOR_CODES:
        return ErrorKind.OPERATOR, False
    if code in PERMANENT_CODES:
        return ErrorKind.PERMANENT, False
    if code >= 5000 or (http_status or 0) >= 500:
        return ErrorKind.RETRYABLE, creating
    return ErrorKind.PERMANENT, False


def _classify_http_status(
    message: str, http_status: int | None, *, creating: bool
) -> tuple[ErrorKind, bool]:
    """classify() for a reply with no usable business code: fall back on the HTTP status."""
    status = http_status or 0
    if status == 404:
        return ErrorKind.NOT_FOUND, False
    if status in (401, 403):
        return ErrorKind.OPERATOR, False
    if status == 429:
        return ErrorKind.RETRYABLE, False
    if 400 <= status < 500:
        if creating and _DUPLICATE_RE.search(message):
            return ErrorKind.DUPLICATE, False
        return ErrorKind.PERMANENT, False
    return ErrorKind.RETRYABLE, creating
