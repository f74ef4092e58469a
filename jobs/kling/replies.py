"""What Kling sends back, as small frozen dataclasses instead of raw JSON.

Parsing is tolerant on purpose: Kling and its gateways disagree on timestamps (ms or s), id
types, duration types and the spelling of "succeed".
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class KlingVideo:
    id: str
    url: str
    duration: float | None


@dataclass(frozen=True)
class KlingAudio:
    id: str
    url: str
    duration: float | None


@dataclass(frozen=True)
class KlingTask:
    task_id: str
    status: str  # normalized: "submitted" | "processing" | "succeed" | "failed"
    status_msg: str
    external_task_id: str
    created_at: datetime | None
    updated_at: datetime | None
    videos: tuple[KlingVideo, ...] = ()
    units: Decimal | None = None  # final_unit_deduction

    @property
    def is_finished(self) -> bool:
        return self.status in ("succeed", "failed")


@dataclass(frozen=True)
class KlingResourcePack:
    """One resource pack of GET /account/costs (amounts in Kling units; they may lag)."""

    name: str
    pack_id: str
    status: str  # Kling's word: "online", "runOut", "expired", ...
    total: Decimal | None
    used: Decimal | None
    remaining: Decimal | None
    effective_at: datetime | None
    expires_at: datetime | None

    @property
    def is_usable(self) -> bool:
        """Whether its remaining units can still be spent: online (or no status) and valid."""
        if self.status and self.status.lower() not in ("online", "active"):
            return False
        return self.expires_at is None or self.expires_at > datetime.now(UTC)


_STATUS_ALIASES = {
    "succeed": "succeed",
    "succeeded": "succeed",
    "success": "succeed",
    "successful": "succeed",
    "completed": "succeed",
    "complete": "succeed",
    "done": "succeed",
    "finished": "succeed",
    "failed": "failed",
    "fail": "failed",
    "failure": "failed",
    "error": "failed",
    "processing": "processing",
    "running": "processing",
    "in_progress": "processing",
    "generating": "processing",
    "submitted": "submitted",
    "queued": "submitted",
    "queueing": "submitted",
    "pending": "submitted",
    "created": "submitted",
    "waiting": "submitted",
}


def normalize_status(value: Any) -> str:
    """Map any provider's spelling onto Kling's four statuses.

    An unknown status is treated as "processing": not terminal, so the job keeps polling until
    its deadline rather than being failed or succeeded on a guess.
    """
    text = str(value or "").strip().lower().replace("-", "_").replace(" ", "_")
    status = _STATUS_ALIASES.get(text)
    if status is None:
        logger.warning("Kling task status %r is unknown; treating it as processing", value)
        return "processing"
    return status


def parse_timestamp(value: Any) -> datetime | None:
    """An aware UTC datetime from Unix seconds or milliseconds (or an ISO string); None if unusable.

    Values above 10^11 are milliseconds: as seconds they would be past the year 5000.
    """
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                return None
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    elif isinstance(value, int | float):
        number = float(value)
    else:
        return None
    if number <= 0:
        return None
    if number > 1e11:
        number /= 1000
    try:
        return datetime.fromtimestamp(number, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse_float(value: Any) -> float | None:
    """A float from a number or a numeric string ("5.033"); None otherwise."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def parse_decimal(value: Any) -> Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        return None


def str_id(value: Any) -> str:
    """Ids arrive as numbers or strings; store strings (and never "None")."""
    return "" if value is None else str(value).strip()


def parse_video(data: dict[str, Any]) -> KlingVideo:
    return KlingVideo(
        id=str_id(data.get("id")),
        url=str(data.get("url") or data.get("video_url") or ""),
        duration=parse_float(data.get("duration")),
    )


def parse_audio(data: dict[str, Any]) -> KlingAudio:
    return KlingAudio(
        id=str_id(data.get("id") or data.get("audio_id")),
        url=str(data.get("url") or data.get("audio_url") or ""),
        duration=parse_float(data.get("duration")),
    )


def parse_task(data: dict[str, Any]) -> KlingTask:
    """A KlingTask from the `data` of a create/query reply, a list item or a callback body."""
    info = _dict_at(data, "task_info")
    result = _dict_at(data, "task_result")
    videos = _list_at(result, "videos")
    external = info.get("external_task_id", data.get("external_task_id"))
    return KlingTask(
        task_id=str_id(data.get("task_id") or data.get("id")),
        status=normalize_status(data.get("task_status") or data.get("status")),
        status_msg=str(data.get("task_status_msg") or ""),
        external_task_id=str_id(external),
        created_at=parse_timestamp(data.get("created_at")),
        updated_at=parse_timestamp(data.get("updated_at")),
        videos=tuple(parse_video(v) for v in videos if isinstance(v, dict)),
        units=parse_decimal(data.get("final_unit_deduction")),
    )


def _dict_at(data: dict[str, Any], key: str) -> dict[str, Any]:
    """`data[key]` when it is an object, else an empty one."""
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _list_at(data: dict[str, Any], key: str) -> list[Any]:
    """`data[key]` when it is a list, else an empty one."""
    value = data.get(key)
    return value if isinstance(value, list) else []


def parse_task_list(data: Any) -> list[KlingTask]:
    """The tasks of a list reply: Kling sends a bare list; tolerate a gateway's
    {"list": [...]} wrapper."""
    return [parse_task(item) for item in _list_items(data) if isinstance(item, dict)]


def _list_items(data: Any) -> Iterable[Any]:
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for key in ("list", "tasks", "items", "records", "data"):
            if isinstance(data.get(key), list):
                return data[key]
    return []


def parse_resource_packs(data: Any) -> list[KlingResourcePack]:
    """The packs of a costs reply: `data.resource_pack_subscribe_infos[]` (a gateway may nest
    the list one level deeper, or send it bare)."""
    if isinstance(data, dict) and not isinstance(data.get("resource_pack_subscribe_infos"), list):
        data = _dict_at(data, "data") or data
    items = data.get("resource_pack_subscribe_infos") if isinstance(data, dict) else data
    packs = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        total = parse_decimal(item.get("total_quantity"))
        remaining = parse_decimal(item.get("remaining_quantity"))
        used = parse_decimal(item.get("used_quantity"))
        if used is None and total is not None and remaining is not None:
            used = total - remaining
        packs.append(
            KlingResourcePack(
                name=str(item.get("resource_pack_name") or item.get("resource_pack_id") or "pack"),
                pack_id=str_id(item.get("resource_pack_id")),
                status=str(item.get("status") or ""),
                total=total,
                used=used,
                remaining=remaining,
                effective_at=parse_timestamp(item.get("effective_time")),
                expires_at=parse_timestamp(item.get("invalid_time")),
            )
        )
    return packs
