"""Template helpers for the studio: the words of jobs/presenters.py as filters, fast paths and
query strings, and the card cache."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from django import template
from django.urls import get_script_prefix, reverse

from jobs import presenters
from jobs.models import AvatarJob
from jobs.services.units import format_units

register = template.Library()

# The words a job is described in (jobs/presenters.py), for templates.
for _filter in (
    presenters.human_duration,
    presenters.precise_duration,
    presenters.clock,
    presenters.seconds_between,
    presenters.ordinal_place,
    presenters.stage,
    presenters.version,
    presenters.has_captions,
):
    register.filter(_filter.__name__, _filter)


@register.filter
def units(value: Any, places: int = 3) -> str:
    """Kling units as Kling writes them (1.5, 12, 0.125); empty for no value."""
    return "" if value is None or value == "" else format_units(value, int(places))


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
