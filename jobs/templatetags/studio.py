"""Template helpers for the studio: durations in words, and where a job is in its lifecycle."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django import template
from django.urls import get_script_prefix, reverse

from jobs.models import AvatarJob

register = template.Library()

S = AvatarJob.Status

# The five stages a card shows, in order; several statuses can share one stage.
STAGES = ("Queued", "Sending", "Generating", "Saving", "Done")
_STAGE_OF = {
    S.QUEUED: 1,
    S.SUBMITTING: 2,
    S.SUBMITTED: 3,
    S.PROCESSING: 3,
    S.DOWNLOADING: 4,
    S.SUCCEEDED: 5,
}


@register.filter
def human_duration(seconds: float | None) -> str:
    """45 s, 2 min 05 s, 1 h 02 min: short enough for a card, exact enough to be useful."""
    if seconds is None:
        return ""
    total = max(int(round(float(seconds))), 0)
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@register.filter
def precise_duration(seconds: float | None) -> str:
    """Like human_duration, with a decimal under 10 s, where whole seconds say too little."""
    if seconds is not None and seconds < 10:
        return f"{seconds:.1f} s"
    return human_duration(seconds)


@register.filter
def clock(seconds: float | None) -> str:
    """A video length the way players show it: 0:12, 4:05, 1:02:03."""
    if seconds is None:
        return ""
    total = max(int(round(float(seconds))), 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@register.filter
def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


@register.filter
def ordinal_place(n: int | None) -> str:
    """1 -> "next in line", 3 -> "3rd in line"."""
    if n is None:
        return ""
    n = int(n)
    if n <= 1:
        return "next in line"
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix} in line"


@dataclass(frozen=True)
class Stage:
    """Where a job is, in words that do not depend on the time of the request.

    Cards are cached (cardcache), so what changes by the second (the time running, the time
    left) is counted in the browser by studio.js from `started` and `estimate`.
    """

    step: int  # 1..5; 0 when the job ended without a video (failed, canceled)
    label: str  # what the badge says
    detail: str  # one line under it: queue place, usual duration, the failure reason
    what: str = ""  # while generating: what is going on ("Rendering the draft")
    estimate: int | None = None  # while generating: seconds such jobs usually take
    started: datetime | None = None  # while generating: when it began

    @property
    def steps(self) -> list[tuple[str, str]]:
        """(name, "done" | "current" | "") for the five stages."""
        return [
            (name, "done" if i < self.step else "current" if i == self.step else "")
            for i, name in enumerate(STAGES, start=1)
        ]


@register.filter
def stage(job: AvatarJob) -> Stage:
    """Where the job is, in words, for cards and the job page.

    Reads `queue_ahead` (jobs queued before this one) and `estimate` (seconds a generation of
    this mode usually takes in this team) when the view attached them.
    """
    status = job.status
    step = _STAGE_OF.get(status, 0)
    if status == S.QUEUED:
        ahead = getattr(job, "queue_ahead", None)
        detail = ordinal_place(ahead + 1) if ahead is not None else "Waiting for a worker"
        return Stage(step, "Queued", detail.capitalize())
    if status == S.SUBMITTING:
        return Stage(step, "Sending", "Sending the files to Kling")
    if status == S.SUBMITTED:
        return Stage(step, "Generating", "Accepted by Kling, waiting for a slot")
    if status == S.PROCESSING:
        return _generating(job, step)
    if status == S.DOWNLOADING:
        return Stage(step, "Saving", "Saving the video to the library")
    if status == S.SUCCEEDED:
        parts = [f"{clock(job.duration)} video"] if job.duration else ["Ready to watch"]
        if took := seconds_between(job.created, job.finished_at):
            parts.append(f"made in {precise_duration(took)}")
        return Stage(step, "Done", " · ".join(parts))
    if status == S.FAILED:
        return Stage(0, "Failed", job.error_message or "The job failed.")
    return Stage(0, "Canceled", "Canceled before it started")


def _generating(job: AvatarJob, step: int) -> Stage:
    what = "Rendering the draft" if job.mode == AvatarJob.Mode.DRAFT else "Kling is animating"
    estimate = getattr(job, "estimate", None)
    started = job.processing_at or job.submitted_at
    if not estimate or started is None:
        return Stage(step, "Generating", what)
    detail = f"{what}: usually takes about {human_duration(estimate)}"
    return Stage(step, "Generating", detail, what, round(estimate), started)


def card_version(updated: datetime, queue_ahead: int | None, estimate: float | None) -> str:
    """Changes exactly when a running card's HTML would: the poll skips cards it still has.

    A running card depends on its row (any change to it moves `updated`), its place in the
    queue and the estimate; elapsed and remaining times are counted on by studio.js.
    """
    micros = int(updated.timestamp() * 1_000_000)
    return f"{micros:x}.{'' if queue_ahead is None else queue_ahead}.{estimate and round(estimate)}"


@register.filter
def version(job: AvatarJob) -> str:
    return card_version(
        job.updated, getattr(job, "queue_ahead", None), getattr(job, "estimate", None)
    )


_PATHS: dict[tuple[str, str], str] = {}
_SENTINEL = "00000000-0000-0000-0000-00000000c0de"


@register.simple_tag
def path(name: str, code: Any = None) -> str:
    """{% url %} for the studio's own URLs, taking at most one UUID, without reversing each time.

    Reversing is slow (about 80 µs) and a dashboard page needs a few dozen; the pattern is
    reversed once per process with a placeholder, then filled in.
    """
    key = (name, get_script_prefix())
    pattern = _PATHS.get(key)
    if pattern is None:
        url = reverse(name, args=[_SENTINEL]) if code is not None else reverse(name)
        pattern = _PATHS[key] = url.replace(_SENTINEL, "{}")
    return pattern.format(code) if code is not None else pattern


@register.simple_tag
def query_with(params: Any, **changes: Any) -> str:
    """The current filter query with some parameters changed (None removes one)."""
    query = params.copy()
    for key, value in changes.items():
        if value is None or value == "":
            query.pop(key, None)
        else:
            query[key] = value
    return query.urlencode()


@register.simple_tag
def query_set(params: Any, key: str, value: Any) -> str:
    """The query with one parameter, named in the template, set to `value`."""
    return query_with(params, **{key: value})


CARD_CACHE_SIZE = 4096  # about 1.5 kB each: a few MB per process at most
# --- cards, rendered once per version ---------------------------------------------------------
_card_cache: OrderedDict[tuple[Any, ...], str] = OrderedDict()
_card_cache_lock = threading.Lock()


def _card_key(job: AvatarJob, context: template.Context) -> tuple[Any, ...]:
    """Everything a card shows; any change to it (a rename too) makes a new key."""
    return (
        job.pk,
        job.updated,
        job.status,
        job.mode,
        job.poster.name,
        job.duration,
        job.error_message,
        job.created,
        job.submitted_at,
        job.processing_at,
        job.finished_at,
        getattr(job, "queue_ahead", None),
        round(getattr(job, "estimate", None) or 0),
        job.portrait_code,  # type: ignore[attr-defined]
        job.portrait_name,  # type: ignore[attr-defined]
        job.audio_name,  # type: ignore[attr-defined]
        job.creator,  # type: ignore[attr-defined]
        str(context.get("highlight", "")) == str(job.code),
        bool(context.get("oob")),
    )


class CardCacheNode(template.Node):
    def __init__(self, nodelist: template.NodeList, job: template.base.FilterExpression) -> None:
        self.nodelist, self.job = nodelist, job

    def render(self, context: template.Context) -> str:
        job = self.job.resolve(context)
        key = _card_key(job, context)
        with _card_cache_lock:
            html = _card_cache.get(key)
            if html is not None:
                _card_cache.move_to_end(key)
                return html
        html = self.nodelist.render(context)
        with _card_cache_lock:
            _card_cache[key] = html
            while len(_card_cache) > CARD_CACHE_SIZE:
                _card_cache.popitem(last=False)
        return html


@register.tag
def cardcache(parser: template.base.Parser, token: template.base.Token) -> CardCacheNode:
    """{% cardcache job %}…{% endcardcache %}: each version of a card is rendered once per process.

    Rendering the cards from the template on every request was most of the dashboard's time
    (bench/dashboard.py), and a change seen by a thousand open dashboards was rendered a
    thousand times. Nothing in the block may depend on the time of the request: times that
    tick are counted by studio.js.
    """
    bits = token.split_contents()
    if len(bits) != 2:
        raise template.TemplateSyntaxError("usage: {% cardcache job %}…{% endcardcache %}")
    nodelist = parser.parse(("endcardcache",))
    parser.delete_first_token()
    return CardCacheNode(nodelist, parser.compile_filter(bits[1]))
