"""Every outbound request stops at its wall-clock deadline, however the server misbehaves (slow
status line, trickled headers or body, endless body, silence, a TLS handshake that never
ends), and the process serves other requests meanwhile. Real loopback servers, no mocks.

Also: a token's third concurrent URL-fetching create is refused with 1302/429, and callbacks
out are queued on the callbacks cluster, not the jobs one.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django_q.brokers import get_broker
from django_q.models import OrmQ, Schedule

from jobs import netfetch
from jobs.api import callbacks, inputs
from jobs.deadline import Deadline, DeadlineExceeded, deadline
from jobs.kling.client import KlingClient
from jobs.kling.errors import ErrorKind, KlingError
from jobs.models import AvatarJob
from jobs.services.api_tokens import api_token_create
from tests.slowpeer import SlowPeer

LIMIT = 1.0  # the deadline the tests give (seconds)
SLACK = 1.0  # how late giving up may be: "within about a second of its deadline"
MODES = ["slow-status", "trickle-headers", "trickle-body", "endless-body", "silent"]


@pytest.fixture
def peer() -> Iterator[SlowPeer]:
    with SlowPeer(tick=0.2) as server:
        yield server


@pytest.fixture(autouse=True)
def loopback(settings) -> None:
    settings.ALLOW_PRIVATE_URLS = True


def timed(call: Callable[[], Any]) -> tuple[float, BaseException | None, Any]:
    started = time.monotonic()
    try:
        result = call()
    except Exception as exc:
        return time.monotonic() - started, exc, None
    return time.monotonic() - started, None, result


def gives_up_on_time(
    call: Callable[[], Any], meanwhile: Callable[[], Any]
) -> tuple[BaseException | None, Any]:
    """Run `call` in a thread; while it is stuck, `meanwhile` must be served promptly; `call`
    must end between LIMIT and LIMIT + SLACK seconds. Returns what `call` raised or returned."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        outcome["elapsed"], outcome["error"], outcome["result"] = timed(call)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.3)
    other_elapsed, other_error, _ = timed(meanwhile)
    assert other_error is None, other_error
    assert other_elapsed < 0.5, f"another request took {other_elapsed:.2f} s meanwhile"
    thread.join(LIMIT + SLACK + 5)
    assert not thread.is_alive(), "the request did not give up at all"
    assert LIMIT - 0.05 <= outcome["elapsed"] <= LIMIT + SLACK, outcome
    return outcome["error"], outcome["result"]


# --- the deadline itself ----------------------------------------------------------------------


def test_deadline_leaves_a_quick_block_alone() -> None:
    with deadline(5) as limit:
        time.sleep(0.01)
    assert not limit.expired


def test_deadline_replaces_a_cut_short_answer_with_deadline_exceeded(peer) -> None:
    """A body without Content-Length ends at EOF: cut by the deadline it would look complete."""
    with pytest.raises(DeadlineExceeded), deadline(LIMIT):
        netfetch._fetch_hops(
            peer.url("/endless-body/x.jpg"),
            [],
            max_bytes=10**9,
            allow_private=True,
            max_redirects=0,
        )


def test_an_error_at_the_deadline_is_the_deadline_even_before_its_timer_runs(monkeypatch):
    """A read timeout equal to the time left fires a moment before the timer on a busy machine:
    the error is still told as the deadline's, not as a raw ReadTimeout."""
    monkeypatch.setattr(Deadline, "_start", lambda self: None)  # the timer runs late: never
    with pytest.raises(DeadlineExceeded), deadline(0.05):
        time.sleep(0.06)
        raise TimeoutError("timed out")
    with pytest.raises(TimeoutError), deadline(5):  # well before the deadline: the error itself
        raise TimeoutError("timed out")


# --- netfetch.fetch (API callers' image and sound URLs) ---------------------------------------


def _fetch(url: str) -> Callable[[], Any]:
    return lambda: netfetch.fetch(url, max_bytes=10**9, total_timeout=LIMIT)


@pytest.mark.parametrize("mode", MODES)
def test_fetch_gives_up_at_its_deadline(peer, mode) -> None:
    error, _ = gives_up_on_time(_fetch(peer.url(f"/{mode}/portrait.jpg")), _fetch(peer.url("/ok")))
    assert isinstance(error, netfetch.FetchError)
    assert str(error) == "the server at 127.0.0.1 took longer than 1 s to finish answering"


def test_fetch_deadline_covers_a_tls_handshake_that_never_ends(peer) -> None:
    error, _ = gives_up_on_time(
        _fetch(peer.url("/silent/x.jpg", scheme="https")), _fetch(peer.url("/ok"))
    )
    assert isinstance(error, netfetch.FetchError)
    assert "took longer than 1 s to finish answering" in str(error)


def test_fetch_deadline_covers_every_redirect_hop(peer) -> None:
    """One deadline for the whole chain: a redirect does not restart the clock."""
    with SlowPeer() as hop:
        hop_url = peer.url("/trickle-headers/final.jpg")
        hop._ok = lambda conn: conn.sendall(  # type: ignore[method-assign]
            f"HTTP/1.1 302 Found\r\nLocation: {hop_url}\r\nContent-Length: 0\r\n\r\n".encode()
        )
        error, _ = gives_up_on_time(_fetch(hop.url("/redirect")), _fetch(peer.url("/ok")))
    assert isinstance(error, netfetch.FetchError)
    assert "took longer than 1 s to finish answering" in str(error)


def test_fetch_still_gets_a_prompt_answer(peer) -> None:
    fetched = netfetch.fetch(peer.url("/ok"), max_bytes=10**6, total_timeout=LIMIT)
    assert fetched.content == b'{"code":0,"message":"ok","data":{}}'


# --- netfetch.post_json and a real callback delivery -----------------------------------------


@pytest.mark.parametrize("mode", ["slow-status", "trickle-headers", "silent"])
def test_post_json_gives_up_at_its_deadline(peer, mode) -> None:
    def post(path: str) -> Callable[[], Any]:
        return lambda: netfetch.post_json(peer.url(path), {"a": 1}, timeout=LIMIT)

    error, _ = gives_up_on_time(post(f"/{mode}/hook"), post("/ok"))
    assert isinstance(error, netfetch.FetchError)
    assert str(error) == "the server at 127.0.0.1 took longer than 1 s to finish answering"


def test_post_json_counts_the_status_even_if_the_body_trickles(peer) -> None:
    status = netfetch.post_json(peer.url("/trickle-body/hook"), {"a": 1}, timeout=LIMIT)
    assert status == 200


@pytest.mark.django_db(transaction=True)  # the delivery runs in a thread of its own
def test_callback_delivery_to_a_trickling_receiver_gives_up_and_retries_later(
    peer, queued, monkeypatch
) -> None:
    monkeypatch.setattr(callbacks, "CALLBACK_TIMEOUT", LIMIT)
    AvatarJob.objects.filter(pk=queued.pk).update(
        client_callback_url=peer.url("/trickle-headers/hook")
    )

    def meanwhile() -> int:
        return netfetch.post_json(peer.url("/ok"), {}, timeout=LIMIT)

    error, outcome = gives_up_on_time(lambda: callbacks.deliver(queued.pk), meanwhile)
    assert error is None and outcome == "retry"
    retry = Schedule.objects.get(name=callbacks.schedule_name(queued.pk))
    assert retry.cluster == django_settings.API_CALLBACK_CLUSTER
    queued.refresh_from_db()
    assert queued.client_callback_status == ""  # not told yet


# --- the Kling client: API requests and downloads ---------------------------------------------


@pytest.mark.parametrize("mode", ["slow-status", "trickle-headers", "trickle-body", "silent"])
def test_kling_request_gives_up_at_its_deadline(peer, mode) -> None:
    slow = KlingClient(peer.url(f"/{mode}"), api_key="k", timeout=LIMIT)
    prompt = KlingClient(peer.url("/ok"), api_key="k", timeout=LIMIT)
    error, _ = gives_up_on_time(slow.list_tasks, prompt.list_tasks)
    assert isinstance(error, KlingError)
    assert error.kind == ErrorKind.RETRYABLE
    assert "within 1 s" in error.message


def test_kling_create_cut_by_the_deadline_is_an_unknown_outcome(peer) -> None:
    client = KlingClient(peer.url("/trickle-headers"), api_key="k", timeout=LIMIT)
    with pytest.raises(KlingError) as caught:
        client.create_task(image="https://x.test/a.jpg", audio_id="1", external_task_id="e1")
    assert caught.value.outcome_unknown
    assert caught.value.message == (
        "Kling did not finish answering POST /v1/videos/avatar/image2video within 1 s"
    )


def test_kling_request_deadline_covers_a_tls_handshake_that_never_ends(peer) -> None:
    slow = KlingClient(peer.url("/silent", scheme="https"), api_key="k", timeout=LIMIT)
    prompt = KlingClient(peer.url("/ok"), api_key="k", timeout=LIMIT)
    error, _ = gives_up_on_time(slow.list_tasks, prompt.list_tasks)
    assert isinstance(error, KlingError) and "within 1 s" in error.message


def test_kling_deadline_holds_on_a_reused_keep_alive_connection(peer) -> None:
    """The Session keeps connections: the second request on one must be watched as well."""
    with SlowPeer() as keepalive:
        served = []

        def first_quick_then_silent(conn) -> None:
            body = b'{"code":0,"data":[]}'
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            served.append(1)
            conn.recv(65536)  # the next request on the same connection: never answered
            keepalive.stopped.wait()

        keepalive._ok = first_quick_then_silent  # type: ignore[method-assign]
        client = KlingClient(keepalive.url("/ok"), api_key="k", timeout=LIMIT)
        assert client.list_tasks() == []
        elapsed, error, _ = timed(client.list_tasks)
    assert served == [1]  # one connection, reused
    assert isinstance(error, KlingError) and "within 1 s" in error.message
    assert LIMIT - 0.05 <= elapsed <= LIMIT + SLACK


@pytest.mark.parametrize("mode", ["trickle-headers", "trickle-body", "endless-body", "silent"])
def test_kling_download_gives_up_at_its_deadline(peer, mode) -> None:
    client = KlingClient("http://127.0.0.1:9", api_key="k", timeout=30)

    def download(path: str) -> Callable[[], int]:
        return lambda: client.download(peer.url(path), io.BytesIO(), max_bytes=10**9, timeout=LIMIT)

    error, _ = gives_up_on_time(download(f"/{mode}/result.mp4"), download("/ok"))
    assert isinstance(error, KlingError)
    assert error.kind == ErrorKind.RETRYABLE
    assert error.message == (
        "The server at 127.0.0.1 did not finish sending the download within 1 s"
    )


# --- at most 2 URL fetches per token at once: the third create is refused ---------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("tokens", "refusal"),
    [
        # One caller: the token's 2 slots.
        (["script"] * 3, "this token already has 2 requests fetching files from URLs"),
        # A token per create gets past that, so a web process also runs at most 2 fetches at
        # once (FETCHES_PER_PROCESS): many tokens cannot take every thread either.
        (["t0", "t1", "t2"], "the studio is already fetching as many files from URLs"),
    ],
    ids=["one-token", "many-tokens"],
)
def test_a_third_concurrent_url_create_is_refused_with_1302(
    peer, owner, team, monkeypatch, tokens, refusal
) -> None:
    monkeypatch.setattr(inputs, "FETCH_SECONDS", 2.0)
    made = {name: api_token_create(user=owner, team=team, name=name)[1] for name in set(tokens)}
    body = json.dumps(
        {"image": peer.url("/trickle-headers/portrait.jpg"), "sound_file": "AAAA", "mode": "draft"}
    )

    def create(name: str) -> Any:
        return Client().post(
            "/kling/v1/videos/avatar/image2video",
            data=body,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {made[name]}",
        )

    answers: list[Any] = []
    holders = [
        threading.Thread(target=lambda n=name: answers.append(create(n))) for name in tokens[:2]
    ]
    for holder in holders:
        holder.start()
    deadline_at = time.monotonic() + 10
    while len(peer.paths) < 2 and time.monotonic() < deadline_at:
        time.sleep(0.05)
    assert len(peer.paths) == 2  # both fetches are under way

    started = time.monotonic()
    third = create(tokens[2])
    assert time.monotonic() - started < 1.0  # refused at once, not after a fetch
    assert third.status_code == 429 and third.json()["code"] == 1302
    assert refusal in third.json()["message"]
    assert len(peer.paths) == 2  # the third never reached the server

    for holder in holders:
        holder.join(10)
    assert [a.status_code for a in answers] == [400, 400]
    assert all("took longer than 2 s to finish answering" in a.json()["message"] for a in answers)

    # The slots are given back: the next create is fetched again.
    again = create(tokens[2])
    assert again.status_code == 400 and "longer than 2 s" in again.json()["message"]


@pytest.mark.django_db
def test_base64_creates_take_no_fetch_slot(owner, team) -> None:
    for _ in range(3):
        with inputs.fetch_slot(team.pk, "AAAA", ""):
            pass
    with inputs.fetch_slot(1, "https://a.test/x"), inputs.fetch_slot(1, "https://a.test/y"):
        with inputs.fetch_slot(1, "AAAA"):
            pass  # no URL: not counted
        with pytest.raises(inputs.ApiError) as caught, inputs.fetch_slot(1, "https://a.test/z"):
            pass
    assert caught.value.code == 1302 and caught.value.http_status == 429


# --- callbacks out are queued on their own cluster -------------------------------------------


@pytest.mark.django_db
def test_callback_is_queued_on_the_callbacks_cluster_not_the_jobs_one(queued) -> None:
    if "orm" not in django_settings.Q_CLUSTER:
        pytest.skip("the queue is only in the database with the ORM broker")
    jobs_queue = get_broker()
    callbacks_queue = get_broker(django_settings.API_CALLBACK_CLUSTER)
    before = jobs_queue.queue_size()
    AvatarJob.objects.filter(pk=queued.pk).update(client_callback_url="http://127.0.0.1:9/hook")
    assert callbacks.api_callback_if_changed(job_id=queued.pk)
    assert callbacks_queue.queue_size() == 1
    assert jobs_queue.queue_size() == before
    queued_task = OrmQ.objects.get(key=django_settings.API_CALLBACK_CLUSTER).task
    assert queued_task["func"] == "jobs.tasks.deliver_callback"
    assert queued_task["args"] == (queued.pk,)
