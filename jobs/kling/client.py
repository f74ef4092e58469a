"""The one place that talks HTTP to Kling's avatar API (or a gateway that re-exposes it).

It owns the base URL, auth (official JWT or a gateway's Bearer key) and timeouts: every request
and download has a wall-clock deadline enforced at the socket (jobs/deadline.py), so a server
that trickles its headers or body cannot hold a worker past it. Failures are
raised as `errors.KlingError` (classified there from Kling's business codes) and replies are
handed back as the dataclasses of `replies`.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import jwt
import requests
from django.conf import settings
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from jobs.deadline import DeadlineExceeded, deadline, mount_deadline_adapter
from jobs.kling.errors import AUTH_RENEW_CODES, ErrorKind, KlingError, business_error, classify
from jobs.kling.replies import (
    KlingAudio,
    KlingResourcePack,
    KlingTask,
    normalize_status,
    parse_audio,
    parse_float,
    parse_resource_packs,
    parse_task,
    parse_task_list,
    str_id,
)

logger = logging.getLogger(__name__)

CREATE_PATH = "/v1/videos/avatar/image2video"
TTS_PATH = "/v1/audio/tts"
COSTS_PATH = "/account/costs"

TOKEN_LIFETIME = 1800  # seconds, as Kling's docs prescribe
TOKEN_RENEW_MARGIN = 300  # mint a new token this long before the old one expires
CONNECT_TIMEOUT_CAP = 10.0  # a loopback or CDN connect never needs longer than this


_NOT_SENT_ERRORS = (
    NewConnectionError,
    NameResolutionError,
    ConnectTimeoutError,
    requests.ConnectTimeout,
)


def _was_sent(exc: BaseException) -> bool:
    """False only when the connection provably never opened (refused, DNS, connect timeout).

    requests wraps urllib3's errors a few layers deep (ConnectionError → MaxRetryError.reason →
    NewConnectionError), so walk args, `reason` and the exception chain.
    """
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, _NOT_SENT_ERRORS):
            return False
        stack.extend(item.args)
        stack.extend([getattr(item, "reason", None), item.__cause__, item.__context__])
    return True


# --- the client -----------------------------------------------------------------------------


class Writable(Protocol):
    """Where a download goes: a binary file, or anything with its write()."""

    def write(self, data: bytes, /) -> int: ...


class KlingClient:
    """Kling's avatar API over one `requests.Session`. Thread-safe; cheap to keep around.

    Auth: `api_key` (a gateway) is sent as `Bearer <api_key>`; otherwise `access_key` +
    `secret_key` mint Kling's HS256 JWT, reused until 5 minutes before it expires. `clock`
    (Unix seconds) is injectable so tests can age tokens without sleeping.
    """

    def __init__(
        self,
        base_url: str,
        *,
        access_key: str = "",
        secret_key: str = "",
        api_key: str = "",
        timeout: float = 30,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.access_key = access_key
        self.secret_key = secret_key
        self.api_key = api_key
        self.timeout = float(timeout)
        if session is None:
            session = requests.Session()
            mount_deadline_adapter(session)
        self.session = session
        self.clock = clock
        self._token_lock = threading.Lock()
        self._token: str | None = None
        self._token_exp = 0.0

    @classmethod
    def from_settings(cls, *, timeout: float | None = None) -> KlingClient:
        """A client configured from the settings as they are now (never read at import);
        `timeout` shortens KLING_HTTP_TIMEOUT (e.g. for a call a page waits on)."""
        limit = float(settings.KLING_HTTP_TIMEOUT)
        return cls(
            settings.KLING_BASE_URL,
            access_key=settings.KLING_ACCESS_KEY,
            secret_key=settings.KLING_SECRET_KEY,
            api_key=settings.KLING_API_KEY,
            timeout=limit if timeout is None else min(timeout, limit),
        )

    @property
    def uses_jwt(self) -> bool:
        return not self.api_key and bool(self.access_key and self.secret_key)

    # --- auth ---

    def _mint_token(self) -> str:
        now = int(self.clock())
        expires = now + TOKEN_LIFETIME
        payload = {"iss": self.access_key, "exp": expires, "nbf": now - 5}
        token = jwt.encode(
            payload, self.secret_key, algorithm="HS256", headers={"alg": "HS256", "typ": "JWT"}
        )
        self._token, self._token_exp = token, float(expires)
        return token

    def current_token(self) -> str:
        """The JWT to send now: the cached one unless it is within 5 minutes of expiring."""
        with self._token_lock:
            if self._token is None or self._token_exp - self.clock() < TOKEN_RENEW_MARGIN:
                return self._mint_token()
            return self._token

    def _renew_token(self, rejected: str) -> str:
        """A new token after Kling refused `rejected`; another thread may already have renewed."""
        with self._token_lock:
            if self._token is not None and self._token != rejected:
                return self._token
            return self._mint_token()

    def _auth_token(self) -> str | None:
        if self.api_key:
            return self.api_key
        if self.uses_jwt:
            return self.current_token()
        return None

    # --- transport ---

    def _timeouts(self, timeout: float | None = None) -> tuple[float, float]:
        read = self.timeout if timeout is None else min(timeout, self.timeout)
        return (min(read, CONNECT_TIMEOUT_CAP), read)

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        creating: bool = False,
        lookup: bool = False,
    ) -> tuple[Any, str | None]:
        """Send one API request; return (`data` of the envelope, request id) or raise KlingError.

        On 1003/1004 (token not yet valid / expired) a new JWT is minted and the request sent
        once more: a create refused at auth was not acted on, so repeating it is safe.
        """
        token = self._auth_token()
        try:
            return self._send(method, path, token, body, params, creating, lookup)
        except KlingError as exc:
            if not (self.uses_jwt and exc.code in AUTH_RENEW_CODES and token):
                raise
            logger.info("Kling refused the token (code %s); minting a new one", exc.code)
            token = self._renew_token(token)
        try:
            return self._send(method, path, token, body, params, creating, lookup)
        except KlingError as exc:
            if exc.code in AUTH_RENEW_CODES:
                exc.message = (
                    f"{exc.message}: a fresh token was refused too; check the server clock "
                    "and the access/secret keys"
                )
                exc.args = (exc.message,)
            raise

    def _send(
        self,
        method: str,
        path: str,
        token: str | None,
        body: dict[str, Any] | None,
        params: dict[str, Any] | None,
        creating: bool,
        lookup: bool,
    ) -> tuple[Any, str | None]:
        url = self.base_url + path
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        started = time.monotonic()
        try:
            with deadline(self.timeout):
                response = self.session.request(
                    method, url, json=body, params=params, headers=headers, timeout=self._timeouts()
                )
        except DeadlineExceeded as exc:
            raise KlingError(
                ErrorKind.RETRYABLE,
                f"Kling did not finish answering {method} {path} within {self.timeout:g} s",
                outcome_unknown=creating,
            ) from exc
        except (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
        ) as exc:
            raise KlingError(ErrorKind.OPERATOR, f"KLING_BASE_URL is not usable: {exc}") from exc
        except requests.ReadTimeout as exc:
            raise KlingError(
                ErrorKind.RETRYABLE,
                f"Kling did not answer {method} {path} within {self.timeout:g} s",
                outcome_unknown=creating,
            ) from exc
        except requests.RequestException as exc:
            sent = _was_sent(exc)
            raise KlingError(
                ErrorKind.RETRYABLE,
                f"Network error on {method} {path}: {exc.__class__.__name__}"
                + ("" if sent else " (not sent)"),
                outcome_unknown=creating and sent,
            ) from exc

        status = response.status_code
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            kind, unknown = classify(None, "", status, creating=creating, lookup=lookup)
            if 200 <= status < 300 or kind == ErrorKind.RETRYABLE:
                kind, unknown = ErrorKind.RETRYABLE, creating
            logger.warning("Kling %s %s: HTTP %s with an unreadable body", method, path, status)
            raise KlingError(
                kind,
                f"Kling answered {method} {path} with HTTP {status} and no readable JSON",
                http_status=status,
                outcome_unknown=unknown,
            )

        request_id = str_id(payload.get("request_id")) or response.headers.get("X-Request-Id")
        logger.debug(
            "Kling %s %s → HTTP %s code %s request %s in %.2f s",
            method,
            path,
            status,
            payload.get("code"),
            request_id,
            time.monotonic() - started,
        )
        error = business_error(payload)
        if error is None and status >= 400:
            error = (None, str(payload.get("message") or f"HTTP {status}"))
        if error is not None:
            code, message = error
            kind, unknown = classify(code, message, status, creating=creating, lookup=lookup)
            logger.warning(
                "Kling %s %s failed: HTTP %s code %s %r (request %s)",
                method,
                path,
                status,
                code,
                message,
                request_id,
            )
            raise KlingError(
                kind,
                message or f"Kling error {code}",
                code=code,
                http_status=status,
                request_id=request_id,
                outcome_unknown=unknown,
            )
        return payload.get("data"), request_id

    def _task_from(self, data: Any, request_id: str | None, *, creating: bool) -> KlingTask:
        if not isinstance(data, dict) or not (data.get("task_id") or data.get("id")):
            raise KlingError(
                ErrorKind.RETRYABLE,
                "Kling reported success but sent no task",
                request_id=request_id,
                outcome_unknown=creating,
            )
        return parse_task(data)

    # --- API ---

    def create_task(
        self,
        *,
        image: bytes | str,
        external_task_id: str,
        sound_file: bytes | str | None = None,
        audio_id: str | None = None,
        prompt: str = "",
        mode: str = "std",
        callback_url: str | None = None,
        watermark: bool | None = None,
    ) -> KlingTask:
        """Create an avatar task. Bytes are sent as bare base64 (Kling refuses a `data:` prefix);
        strings are URLs Kling fetches itself. Exactly one of `sound_file` / `audio_id`.

        Raises ValueError for a request Kling would refuse anyway, before any HTTP.
        """
        if bool(sound_file) == bool(audio_id):
            raise ValueError("Give exactly one of sound_file and audio_id.")
        if not external_task_id:
            raise ValueError("external_task_id is required: it is what makes a retry safe.")
        if mode not in ("std", "pro"):
            raise ValueError(f"mode must be 'std' or 'pro', not {mode!r}.")
        body: dict[str, Any] = {
            "image": _encode(image),
            "mode": mode,
            "external_task_id": external_task_id,
        }
        if sound_file:
            body["sound_file"] = _encode(sound_file)
        else:
            body["audio_id"] = audio_id
        if prompt:
            body["prompt"] = prompt
        if callback_url:
            body["callback_url"] = callback_url
        if watermark is not None:
            body["watermark_info"] = {"enabled": watermark}
        data, request_id = self._request("POST", CREATE_PATH, body=body, creating=True)
        task = self._task_from(data, request_id, creating=True)
        logger.info(
            "Kling task %s created for %s (request %s)", task.task_id, external_task_id, request_id
        )
        if not task.external_task_id:  # some gateways leave task_info out of the create reply
            task = replace(task, external_task_id=external_task_id)
        return task

    def get_task(self, task_id_or_external_id: str) -> KlingTask:
        """One task by Kling's task_id or our external_task_id; KlingError(NOT_FOUND) if absent."""
        path = f"{CREATE_PATH}/{quote(task_id_or_external_id, safe='')}"
        data, request_id = self._request("GET", path, lookup=True)
        return self._task_from(data, request_id, creating=False)

    def list_tasks(self, *, page: int = 1, page_size: int = 30) -> list[KlingTask]:
        """One page of tasks, newest first (pageNum 1..1000, pageSize 1..500)."""
        data, _ = self._request("GET", CREATE_PATH, params={"pageNum": page, "pageSize": page_size})
        return parse_task_list(data)

    def find_by_external_id(
        self,
        external_task_id: str,
        *,
        not_before: datetime | None = None,
        page_size: int = 100,
        max_pages: int = 10,
    ) -> KlingTask | None:
        """The task created with `external_task_id`, or None when it definitely does not exist.

        Asks for it by id first (official API); a deployment that cannot look up external ids
        answers "not found"/"invalid" for that, so the list is then scanned newest first.
        The scan stops at the end of the list, or at tasks created before `not_before` (pass the
        time the create was sent, minus a margin for clock skew). If neither is reached within
        `max_pages`, absence is not proven and KlingError(PERMANENT, outcome_unknown) is raised
        so the caller does not resubmit on a guess.
        """
        try:
            task = self.get_task(external_task_id)
        except KlingError as exc:
            if exc.kind not in (ErrorKind.NOT_FOUND, ErrorKind.PERMANENT):
                raise
            logger.info(
                "Kling lookup by external id %s answered %s; scanning the task list",
                external_task_id,
                exc.code or exc.http_status,
            )
        else:
            if task.external_task_id in ("", external_task_id):
                return task
        for page in range(1, max_pages + 1):
            tasks = self.list_tasks(page=page, page_size=page_size)
            for task in tasks:
                if task.external_task_id == external_task_id:
                    return task
            if len(tasks) < page_size:
                return None
            oldest = tasks[-1].created_at
            if not_before is not None and oldest is not None and oldest < not_before:
                return None
        raise KlingError(
            ErrorKind.PERMANENT,
            f"Could not tell whether a Kling task for {external_task_id} exists: not among the "
            f"newest {max_pages * page_size} tasks and this deployment cannot look it up by id",
            outcome_unknown=True,
        )

    def tts(
        self, *, text: str, voice_id: str, voice_language: str, voice_speed: float = 1.0
    ) -> KlingAudio:
        """Text to speech; the returned audio's `id` is an `audio_id` for create_task."""
        body = {
            "text": text,
            "voice_id": voice_id,
            "voice_language": voice_language,
            "voice_speed": round(voice_speed, 1),
        }
        data, request_id = self._request("POST", TTS_PATH, body=body)
        data = data if isinstance(data, dict) else {}
        result = data.get("task_result")
        if not isinstance(result, dict):
            result = {}
        audios = [a for a in result.get("audios") or [] if isinstance(a, dict)]
        if audios:
            return parse_audio(audios[0])
        status = normalize_status(data.get("task_status"))
        kind = ErrorKind.PERMANENT if status == "failed" else ErrorKind.RETRYABLE
        raise KlingError(
            kind,
            f"Kling's text-to-speech returned no audio (status {status}: "
            f"{data.get('task_status_msg') or 'no reason given'})",
            request_id=request_id,
        )

    def account_costs(self, *, start: datetime, end: datetime) -> list[KlingResourcePack]:
        """The account's resource packs (GET /account/costs) in the window `start`..`end`.

        Free, but Kling allows one request a second and its amounts may lag (up to 12 h).
        """
        params = {
            "start_time": int(start.timestamp() * 1000),
            "end_time": int(end.timestamp() * 1000),
        }
        data, _ = self._request("GET", COSTS_PATH, params=params)
        return parse_resource_packs(data)

    def download(self, url: str, dest: Writable, *, max_bytes: int, timeout: float) -> int:
        """Stream `url` into `dest`; return the number of bytes written.

        No Authorization header is sent: result URLs are pre-signed CDN links and our token
        must not leak there. Capped by size (PERMANENT "too large") and by total wall time
        (RETRYABLE). On error `dest` may hold a partial file: the caller discards it.
        """
        try:
            with (
                deadline(timeout),
                self.session.get(url, stream=True, timeout=self._timeouts(timeout)) as response,
            ):
                status = response.status_code
                if status != 200:
                    kind = (
                        ErrorKind.RETRYABLE
                        if status >= 500 or status in (408, 429)
                        else ErrorKind.PERMANENT
                    )
                    raise KlingError(
                        kind, f"Download failed with HTTP {status}", http_status=status
                    )
                declared = parse_float(response.headers.get("Content-Length"))
                if declared is not None and declared > max_bytes:
                    raise _too_large(max_bytes)
                written = 0
                for chunk in response.iter_content(chunk_size=64 * 1024):
                    written += len(chunk)
                    if written > max_bytes:
                        raise _too_large(max_bytes)
                    dest.write(chunk)
                return written
        except DeadlineExceeded as exc:
            raise KlingError(
                ErrorKind.RETRYABLE,
                f"The server at {_host(url)} did not finish sending the download within "
                f"{timeout:g} s",
            ) from exc
        except requests.RequestException as exc:
            raise KlingError(
                ErrorKind.RETRYABLE, f"Download failed: {exc.__class__.__name__}: {exc}"
            ) from exc


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or url
    except ValueError:
        return url


def _too_large(max_bytes: int) -> KlingError:
    return KlingError(
        ErrorKind.PERMANENT, f"The result file is too large (more than {max_bytes} bytes)"
    )


def _encode(value: bytes | str) -> str:
    """Bytes become bare base64 (no data: prefix, which Kling refuses); a string is a URL."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    return value
