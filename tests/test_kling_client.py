"""The Kling client against the simulator over real loopback HTTP (never a mocked `requests`),
plus the tolerant parsers on the shapes Kling and its gateways actually send."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import jwt
import pytest

from jobs.kling.client import KlingClient
from jobs.kling.errors import ErrorKind, KlingError, business_error, classify
from jobs.kling.replies import KlingTask, normalize_status, parse_task, parse_timestamp
from jobs.kling.simulator import KlingSimulator, sine_wav
from tests.helpers import b64, fast_config, jpeg

SimFactory = Callable[..., KlingSimulator]
IMAGE = jpeg()
SOUND = sine_wav(3)


@pytest.fixture
def make_sim() -> Iterator[SimFactory]:
    """Start simulators with fast timings (and any changes); all stopped after the test."""
    started: list[KlingSimulator] = []

    def make(**changes: Any) -> KlingSimulator:
        started.append(KlingSimulator(fast_config(**changes)).start())
        return started[-1]

    yield make
    for simulator in started:
        simulator.stop()


@pytest.fixture
def sim(make_sim: SimFactory) -> KlingSimulator:
    return make_sim()


def api_client(sim: KlingSimulator, **kwargs: Any) -> KlingClient:
    return KlingClient(sim.base_url, api_key=sim.config.api_key, **kwargs)


def jwt_client(sim: KlingSimulator, **kwargs: Any) -> KlingClient:
    return KlingClient(
        sim.base_url, access_key=sim.config.access_key, secret_key=sim.config.secret_key, **kwargs
    )


def create(client: KlingClient, external_task_id: str = "job-1", **changes: Any) -> KlingTask:
    """A valid create (3 s of audio, a 400×500 JPEG sent as bytes), with `changes` on top."""
    args: dict[str, Any] = {"image": IMAGE, "sound_file": SOUND}
    args.update(changes)
    return client.create_task(external_task_id=external_task_id, **args)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- error classes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind", "outcome_unknown"),
    [
        (1303, ErrorKind.RETRYABLE, False),
        (1302, ErrorKind.RETRYABLE, False),
        (5000, ErrorKind.RETRYABLE, True),
        (5002, ErrorKind.RETRYABLE, True),
        (1201, ErrorKind.PERMANENT, False),
        (1301, ErrorKind.PERMANENT, False),
        (1102, ErrorKind.OPERATOR, False),
        (1000, ErrorKind.OPERATOR, False),
    ],
)
def test_create_errors_are_classified_by_business_code(
    make_sim: SimFactory, code: int, kind: ErrorKind, outcome_unknown: bool
) -> None:
    sim = make_sim(error_rates={code: 1.0})
    with pytest.raises(KlingError) as caught:
        create(jwt_client(sim))
    error = caught.value
    assert (error.kind, error.code, error.outcome_unknown) == (kind, code, outcome_unknown)
    assert error.retryable is (kind == ErrorKind.RETRYABLE)
    assert error.request_id and error.http_status in (400, 401, 429, 500, 504)


def test_unknown_task_is_not_found(sim: KlingSimulator) -> None:
    with pytest.raises(KlingError) as caught:
        api_client(sim).get_task("123456")
    assert caught.value.kind == ErrorKind.NOT_FOUND and caught.value.http_status == 404


def test_query_errors_are_classified_too(make_sim: SimFactory) -> None:
    sim = make_sim(query_error_rates={5001: 1.0})
    with pytest.raises(KlingError) as caught:
        api_client(sim).get_task("123")
    assert caught.value.kind == ErrorKind.RETRYABLE
    assert caught.value.outcome_unknown is False  # a query changes nothing at Kling


def test_duplicate_external_id_is_reported_as_duplicate(sim: KlingSimulator) -> None:
    client = api_client(sim)
    first = create(client, "job-dup")
    with pytest.raises(KlingError) as caught:
        create(client, "job-dup")
    assert caught.value.kind == ErrorKind.DUPLICATE
    assert client.find_by_external_id("job-dup").task_id == first.task_id  # type: ignore[union-attr]


# --- auth ----------------------------------------------------------------------------------


def test_jwt_has_exactly_the_claims_kling_requires(sim: KlingSimulator) -> None:
    before = int(time.time())
    client = jwt_client(sim)
    client.list_tasks()
    seen = sim.snapshot()["last_jwt"]
    assert seen["header"] == {"alg": "HS256", "typ": "JWT"}
    claims = seen["claims"]
    assert set(claims) == {"iss", "exp", "nbf"}  # no iat
    assert claims["iss"] == sim.config.access_key
    assert before + 1800 <= claims["exp"] <= int(time.time()) + 1800
    assert claims["nbf"] == claims["exp"] - 1805
    # And it is signed with the secret key.
    token = client.current_token()
    assert jwt.decode(token, sim.config.secret_key, algorithms=["HS256"])["iss"] == "sim-access"


def test_token_is_reused_then_renewed_near_expiry(sim: KlingSimulator) -> None:
    now = time.time()
    clock = FakeClock(now - 1600)  # token minted now expires 200 s from the real now
    client = jwt_client(sim, clock=clock)
    client.list_tasks()
    clock.now = now - 1550  # 1750 s left by the client's clock: reuse
    client.list_tasks()
    assert sim.snapshot()["distinct_tokens"] == 1
    clock.now = now  # 200 s left: within the 5-minute margin, mint a new one
    client.list_tasks()
    stats = sim.snapshot()
    assert stats["distinct_tokens"] == 2 and stats["rejected_by_code"] == {}


def test_expired_token_is_renewed_once_and_the_request_succeeds(sim: KlingSimulator) -> None:
    now = time.time()
    times = iter([now - 2000])  # the first token is minted 2000 s in the past: already expired
    client = jwt_client(sim, clock=lambda: next(times, time.time()))
    task = create(client, "job-renew")
    assert task.task_id
    stats = sim.snapshot()
    assert stats["rejected_by_code"] == {1004: 1}
    assert stats["tasks_created"] == 1 and stats["distinct_tokens"] == 2


def test_a_token_refused_twice_is_an_operator_error(make_sim: SimFactory) -> None:
    sim = make_sim(error_rates={1004: 1.0})
    with pytest.raises(KlingError) as caught:
        create(jwt_client(sim))
    assert caught.value.kind == ErrorKind.OPERATOR and caught.value.code == 1004
    assert "clock" in caught.value.message
    assert sim.snapshot()["rejected_by_code"] == {1004: 2}  # one renewal, no more


def test_not_yet_valid_token_from_a_fast_clock_is_an_operator_error(sim: KlingSimulator) -> None:
    client = jwt_client(sim, clock=lambda: time.time() + 3600)
    with pytest.raises(KlingError) as caught:
        client.list_tasks()
    assert (caught.value.kind, caught.value.code) == (ErrorKind.OPERATOR, 1003)


def test_bearer_api_key_is_sent_as_is(sim: KlingSimulator) -> None:
    api_client(sim).list_tasks()
    assert sim.snapshot()["auth_styles"] == {"api_key": 1}
    with pytest.raises(KlingError) as caught:
        KlingClient(sim.base_url, api_key="wrong").list_tasks()
    assert (caught.value.kind, caught.value.code) == (ErrorKind.OPERATOR, 1002)


def test_from_settings_reads_settings_at_call_time(settings, sim: KlingSimulator) -> None:
    settings.KLING_BASE_URL = sim.base_url
    settings.KLING_API_KEY = sim.config.api_key
    settings.KLING_ACCESS_KEY = settings.KLING_SECRET_KEY = ""
    settings.KLING_HTTP_TIMEOUT = 7
    client = KlingClient.from_settings()
    assert client.timeout == 7
    assert client.list_tasks() == []


# --- create --------------------------------------------------------------------------------


def test_create_sends_bare_base64_and_returns_a_task(sim: KlingSimulator) -> None:
    task = create(api_client(sim), "job-b64", prompt="smile", mode="pro", watermark=False)
    assert task.task_id.isdigit() and task.status == "submitted"
    assert task.external_task_id == "job-b64"
    assert task.created_at is not None and task.created_at.tzinfo == UTC


def test_a_data_uri_string_is_passed_through_and_refused(sim: KlingSimulator) -> None:
    with pytest.raises(KlingError) as caught:
        create(api_client(sim), image="data:image/jpeg;base64," + b64(IMAGE))
    assert (caught.value.kind, caught.value.code) == (ErrorKind.PERMANENT, 1201)
    assert "data:" in caught.value.message


@pytest.mark.parametrize("audio", [{"sound_file": None}, {"audio_id": "1"}])
def test_exactly_one_audio_source_is_checked_before_any_request(
    sim: KlingSimulator, audio: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        create(api_client(sim), **audio)
    assert sim.snapshot()["requests_by_endpoint"] == {}


def test_tts_audio_id_can_drive_a_task(sim: KlingSimulator) -> None:
    client = api_client(sim)
    audio = client.tts(
        text="Hello, this is a slightly longer sentence.", voice_id="uk_man2", voice_language="en"
    )
    assert audio.id and audio.url and audio.duration and audio.duration >= 2
    assert create(client, "job-tts", sound_file=None, audio_id=audio.id).task_id


# --- outcome unknown and finding the task again ----------------------------------------------


def test_reply_timeout_after_creation_is_outcome_unknown_and_the_task_is_found(
    make_sim: SimFactory,
) -> None:
    sim = make_sim(slow_reply_rate=1.0, slow_reply_seconds=3)
    client = api_client(sim, timeout=0.5)
    with pytest.raises(KlingError) as caught:
        create(client, "job-slow")
    assert caught.value.kind == ErrorKind.RETRYABLE and caught.value.outcome_unknown
    sim.configure(slow_reply_rate=0.0)
    found = client.find_by_external_id("job-slow")
    assert found is not None and found.external_task_id == "job-slow"
    stats = sim.snapshot()
    assert stats["creates_by_external_id"] == {"job-slow": 1} and stats["tasks_created"] == 1


def test_malformed_reply_is_outcome_unknown(make_sim: SimFactory) -> None:
    sim = make_sim(malformed_rate=1.0)
    with pytest.raises(KlingError) as caught:
        create(api_client(sim), "job-bad-json")
    assert caught.value.kind == ErrorKind.RETRYABLE and caught.value.outcome_unknown
    assert sim.snapshot()["tasks_created"] == 1


def test_dropped_connection_is_outcome_unknown(make_sim: SimFactory) -> None:
    sim = make_sim(drop_rate=1.0)
    client = api_client(sim)
    with pytest.raises(KlingError) as caught:
        create(client, "job-drop")
    assert caught.value.kind == ErrorKind.RETRYABLE and caught.value.outcome_unknown
    assert client.find_by_external_id("job-drop") is not None


def test_connection_refused_is_retryable_and_known_not_sent() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    client = KlingClient(f"http://127.0.0.1:{port}/kling", api_key="k", timeout=2)
    with pytest.raises(KlingError) as caught:
        create(client)
    assert caught.value.kind == ErrorKind.RETRYABLE and caught.value.outcome_unknown is False


def test_find_by_external_id_falls_back_to_the_list(make_sim: SimFactory) -> None:
    sim = make_sim(lookup_by_external_id=False)
    client = api_client(sim)
    wanted = create(client, "job-wanted")
    for i in range(4):
        create(client, f"job-other-{i}")
    sim.wait_until_finished(10)
    assert client.find_by_external_id("job-wanted", page_size=2).task_id == wanted.task_id  # type: ignore[union-attr]
    assert client.find_by_external_id("job-absent", page_size=2) is None
    assert sim.snapshot()["requests_by_endpoint"]["list"] == 3 + 3


def test_find_by_external_id_says_so_when_absence_is_not_proven(make_sim: SimFactory) -> None:
    sim = make_sim(lookup_by_external_id=False, max_concurrency=10)
    client = api_client(sim)
    for i in range(3):
        create(client, f"job-{i}")
    with pytest.raises(KlingError) as caught:
        client.find_by_external_id("job-elsewhere", page_size=1, max_pages=2)
    assert caught.value.outcome_unknown
    assert (
        client.find_by_external_id(
            "job-elsewhere", page_size=1, max_pages=2, not_before=datetime.now(UTC)
        )
        is None
    )


def test_find_by_external_id_returns_none_when_absent(sim: KlingSimulator) -> None:
    assert api_client(sim).find_by_external_id("job-never") is None


# --- queries, lists, downloads ---------------------------------------------------------------


def test_task_is_followed_to_success_and_downloaded_within_a_cap(sim: KlingSimulator) -> None:
    client = jwt_client(sim)
    created = create(client, "job-dl")
    assert sim.wait_until_finished(10)
    task = client.get_task("job-dl")
    assert task.task_id == created.task_id and task.status == "succeed"
    assert task.units == Decimal("1.20") and task.videos[0].duration == pytest.approx(3)

    out = io.BytesIO()
    size = client.download(task.videos[0].url, out, max_bytes=10**7, timeout=10)
    assert size == len(out.getvalue()) > 0 and out.getvalue()[4:8] == b"ftyp"
    with pytest.raises(KlingError, match="too large") as caught:
        client.download(task.videos[0].url, io.BytesIO(), max_bytes=100, timeout=10)
    assert caught.value.kind == ErrorKind.PERMANENT
    with pytest.raises(KlingError) as missing:
        client.download(
            sim.root_url + "/_sim/files/gone.mp4", io.BytesIO(), max_bytes=100, timeout=10
        )
    assert missing.value.kind == ErrorKind.PERMANENT and missing.value.http_status == 404


def test_list_is_newest_first(sim: KlingSimulator) -> None:
    client = api_client(sim)
    ids = [create(client, f"job-{i}").task_id for i in range(3)]
    assert [t.task_id for t in client.list_tasks(page=1, page_size=2)] == ids[::-1][:2]
    assert [t.task_id for t in client.list_tasks(page=2, page_size=2)] == ids[:1]


# --- tolerant parsing (Kling and gateways disagree) -----------------------------------------


def test_timestamps_in_seconds_and_milliseconds_mean_the_same() -> None:
    moment = datetime(2024, 8, 4, 11, 5, 57, tzinfo=UTC)
    assert parse_timestamp(1722769557) == moment
    assert parse_timestamp(1722769557000) == moment
    assert parse_timestamp("1722769557000") == moment
    assert parse_timestamp("2024-08-04T11:05:57Z") == moment
    assert parse_timestamp(None) is None and parse_timestamp("soon") is None


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("succeed", "succeed"),
        ("SUCCEEDED", "succeed"),
        ("success", "succeed"),
        ("failed", "failed"),
        ("submitted", "submitted"),
        ("processing", "processing"),
        ("something-new", "processing"),
    ],
)
def test_status_spellings_are_normalized(raw: str, status: str) -> None:
    assert normalize_status(raw) == status


def test_task_with_numeric_ids_and_string_durations_is_parsed() -> None:
    task = parse_task(
        {
            "task_id": 860012345678901234,
            "task_status": "succeeded",
            "task_status_msg": None,
            "task_info": {"external_task_id": 42},
            "created_at": 1722769557,
            "updated_at": "1722769600123",
            "task_result": {"videos": [{"id": 7, "url": "https://cdn/v.mp4", "duration": "5.033"}]},
            "final_unit_deduction": "2.5",
        }
    )
    assert (task.task_id, task.status, task.external_task_id) == (
        "860012345678901234",
        "succeed",
        "42",
    )
    assert task.status_msg == "" and task.units == Decimal("2.5")
    assert task.videos[0].id == "7" and task.videos[0].duration == pytest.approx(5.033)
    assert task.created_at == datetime(2024, 8, 4, 11, 5, 57, tzinfo=UTC)
    assert task.updated_at is not None and task.updated_at.microsecond == 123000


def test_gateway_error_nested_under_data_is_unwrapped() -> None:
    body = {
        "code": 500,
        "message": "upstream error",
        "data": {"code": 1303, "message": "parallel task over resource pack limit"},
    }
    assert business_error(body) == (1303, "parallel task over resource pack limit")
    assert business_error({"code": 0, "message": "SUCCEED", "data": {"task_id": "1"}}) is None
    assert business_error({"error": {"code": 1102, "message": "balance"}}) == (1102, "balance")


@pytest.mark.parametrize(
    ("code", "message", "status", "creating", "expected"),
    [
        (1201, "external_task_id already exists", 400, True, (ErrorKind.DUPLICATE, False)),
        (1201, "image is too small", 400, True, (ErrorKind.PERMANENT, False)),
        (1203, "task not found", 404, False, (ErrorKind.NOT_FOUND, False)),
        (5001, "maintenance", 503, True, (ErrorKind.RETRYABLE, True)),
        (5001, "maintenance", 503, False, (ErrorKind.RETRYABLE, False)),
        (9999, "new server thing", 500, True, (ErrorKind.RETRYABLE, True)),
        (4321, "new client thing", 400, True, (ErrorKind.PERMANENT, False)),
        (None, "", 502, True, (ErrorKind.RETRYABLE, True)),
        (None, "", 404, False, (ErrorKind.NOT_FOUND, False)),
        (None, "", 401, False, (ErrorKind.OPERATOR, False)),
    ],
)
def test_classification_table(
    code: int | None,
    message: str,
    status: int,
    creating: bool,
    expected: tuple[ErrorKind, bool],
) -> None:
    assert classify(code, message, status, creating=creating, lookup=not creating) == expected
