"""Kling's own tools against the studio: key pairs (HS256 JWTs checked like Kling's, with its
codes 1002-1004), text to speech for an audio_id that never goes stale, the voice list, the
team's quotas as resource packs, and watermark_info passed on to Kling."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta
from io import StringIO
from typing import Any

import jwt
import pytest
from django.core.management import call_command
from django.utils import timezone

from jobs.engines.kling import _create_payload
from jobs.models import ApiToken, Asset, AvatarJob, Membership
from jobs.services.api_tokens import api_key_pair_create, api_token_create
from jobs.services.quotas import quota_set
from jobs.services.teams import member_remove, member_set_role
from tests.helpers import b64, finish, make_audio_file, make_portrait_bytes, new_job

pytestmark = pytest.mark.django_db

CREATE = "/kling/v1/videos/avatar/image2video"
TTS = "/v1/audio/tts"


def sign(access_key: str, secret: str, **claims: Any) -> str:
    """A JWT the way Kling's docs (and the kling-api npm client) make one."""
    now = int(time.time())
    payload = {"iss": access_key, "exp": now + 1800, "nbf": now - 5} | claims
    return jwt.encode(
        {k: v for k, v in payload.items() if v is not None},
        secret,
        algorithm="HS256",
        headers={"typ": "JWT"},
    )


def bearer(value: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {value}"}


@pytest.fixture(autouse=True)
def fast_passwords(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def pair(owner, team) -> tuple[str, str]:
    token, secret = api_key_pair_create(user=owner, team=team, name="kling tools")
    assert token.access_key
    return token.access_key, secret


def list_tasks(client, jwt_value: str) -> Any:
    return client.get(CREATE, **bearer(jwt_value))


# --- key pairs and JWTs ----------------------------------------------------------------------


def test_a_signed_jwt_is_accepted_on_every_api_path(client, pair):
    token = sign(*pair)
    for path in (
        CREATE,
        "/v1/videos/avatar/image2video",
        "/v1/general/presets-voices",
        "/kling/v1/general/presets-voices",
        "/account/costs",
        "/kling/account/costs",
    ):
        reply = client.get(path, **bearer(token))
        assert reply.status_code == 200, (path, reply.content)
        assert reply.json()["code"] == 0


def test_the_secret_is_stored_encrypted_and_never_shown_again(client, owner, team, pair):
    access_key, secret = pair
    row = ApiToken.objects.get(access_key=access_key)
    assert secret not in row.secret_encrypted and row.secret_encrypted
    assert secret.encode() not in base64.urlsafe_b64decode(row.secret_encrypted + "==")
    client.force_login(owner)
    page = client.get("/api/tokens/")
    assert access_key in page.content.decode()
    assert secret not in page.content.decode()
    assert "Key pair" in page.content.decode()


def test_the_tokens_page_makes_a_pair_and_shows_the_secret_once(client, owner, team):
    client.force_login(owner)
    reply = client.post("/api/tokens/", {"name": "comfy", "kind": "pair"})
    assert reply.status_code == 201
    row = ApiToken.objects.get(name="comfy")
    assert row.is_pair
    html = reply.content.decode()
    assert row.access_key in html and "Secret key" in html
    secret = html.split('id="new-token" value="')[1].split('"')[0]
    assert client.get(CREATE, **bearer(sign(row.access_key, secret))).status_code == 200
    assert secret not in client.get("/api/tokens/").content.decode()


def test_opaque_bearer_tokens_keep_working(client, owner, team):
    raw = api_token_create(user=owner, team=team)[1]
    assert client.get(CREATE, **bearer(raw)).json()["code"] == 0


def test_create_api_token_pair_prints_the_access_key_then_the_secret(owner, team, client):
    out = StringIO()
    call_command("create_api_token", owner.username, "--pair", "--name", "npm", stdout=out)
    *_, access_key, secret = out.getvalue().strip().splitlines()
    assert ApiToken.objects.get(access_key=access_key).name == "npm"
    assert client.get(CREATE, **bearer(sign(access_key, secret))).status_code == 200


def test_a_pairs_access_key_is_not_a_bearer_token(client, pair):
    access_key, secret = pair
    for raw in (access_key, secret):
        reply = client.get(CREATE, **bearer(raw))
        assert (reply.status_code, reply.json()["code"]) == (401, 1002)


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda ak, sk: sign(ak, sk + "x"), 1002),  # wrong signature
        (lambda ak, sk: sign("avsakunknown000", sk), 1002),  # unknown iss
        (lambda ak, sk: sign(ak, sk, iss=None), 1002),  # no iss at all
        (lambda ak, sk: sign(ak, sk, exp=int(time.time()) - 60), 1004),  # expired
        (lambda ak, sk: sign(ak, sk, nbf=int(time.time()) + 600), 1003),  # not yet valid
        (lambda ak, sk: sign(ak, sk, exp=None), 1002),  # no exp: refused, never "forever"
        (lambda ak, sk: sign(ak, sk + "x", exp=int(time.time()) - 60), 1002),  # forged first
        (lambda ak, sk: "not.a.jwt", 1002),
    ],
    ids=["wrong-sig", "unknown-iss", "no-iss", "expired", "nbf-future", "no-exp", "forged", "junk"],
)
def test_jwts_refused_with_klings_codes(client, pair, make, code):
    reply = list_tasks(client, make(*pair))
    body = reply.json()
    assert (reply.status_code, body["code"]) == (401, code), body
    assert body["data"] is None and body["message"].startswith("Authorization is")
    assert reply["WWW-Authenticate"].startswith("Bearer")


def test_alg_none_and_other_algorithms_are_refused(client, pair):
    access_key, secret = pair
    claims = {"iss": access_key, "exp": int(time.time()) + 600}

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    unsigned = f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."
    hs512 = jwt.encode(claims, secret * 2, algorithm="HS512")  # refused for its alg
    for value in (unsigned, hs512):
        reply = list_tasks(client, value)
        assert (reply.status_code, reply.json()["code"]) == (401, 1002)
        assert "HS256" in reply.json()["message"]


def test_a_pair_is_revoked_with_its_owners_membership(client, team, teammate):
    token, secret = api_key_pair_create(user=teammate, team=team)
    assert token.access_key
    signed = sign(token.access_key, secret)
    assert list_tasks(client, signed).status_code == 200
    membership = Membership.objects.get(user=teammate, team=team)
    member_set_role(membership=membership, role=Membership.Role.VIEWER)
    assert list_tasks(client, signed).json()["code"] == 1002
    member_set_role(membership=membership, role=Membership.Role.MEMBER)  # no way back
    assert list_tasks(client, signed).json()["code"] == 1002
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None


def test_a_pair_of_a_removed_member_stops_working(client, team, teammate):
    token, secret = api_key_pair_create(user=teammate, team=team)
    assert token.access_key
    member_remove(membership=Membership.objects.get(user=teammate, team=team))
    assert list_tasks(client, sign(token.access_key, secret)).json()["code"] == 1002


def test_a_pair_survives_a_secret_key_rotation_with_fallbacks(client, settings, pair):
    old = settings.SECRET_KEY
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a new key " * 5, [old]
    assert list_tasks(client, sign(*pair)).status_code == 200
    settings.SECRET_KEY_FALLBACKS = []
    assert list_tasks(client, sign(*pair)).json()["code"] == 1002


# --- text to speech --------------------------------------------------------------------------


def tts(client, token: str, body: Any, path: str = TTS) -> Any:
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post(path, data=data, content_type="application/json", **bearer(token))


def test_tts_offline_makes_a_library_voice_over_named_by_our_audio_id(client, pair, team):
    reply = tts(
        client,
        sign(*pair),
        {
            "text": "Hello from the studio. This is a test voice.",
            "voice_id": "oversea_male1",
            "voice_language": "en",
            "voice_speed": 1.0,
        },
    )
    assert reply.status_code == 200, reply.content
    data = reply.json()["data"]
    assert data["task_status"] == "succeed"
    (audio,) = data["task_result"]["audios"]
    asset = Asset.objects.get(code=audio["id"])
    assert asset.team == team and asset.voice_engine == "espeak"
    assert float(audio["duration"]) >= 2
    # audios[].url plays it with no session, while the token is good.
    played = client.get(audio["url"].removeprefix("http://testserver"))
    assert played.status_code == 200 and played["Content-Type"] == "audio/mpeg"
    assert b"".join(played.streaming_content)[:3] in (b"ID3", b"\xff\xfb", b"\xff\xf3")
    ApiToken.objects.filter(access_key=pair[0]).update(revoked_at=timezone.now())
    refused = client.get(audio["url"].removeprefix("http://testserver"))
    assert (refused.status_code, refused.json()["code"]) == (403, 1103)
    forged = client.get(audio["url"].removeprefix("http://testserver").replace("/audio", "x/audio"))
    assert forged.json()["code"] == 1203
    ApiToken.objects.filter(access_key=pair[0]).update(revoked_at=None)
    # The same script again is the same voice-over: not synthesized twice.
    again = tts(
        client,
        sign(*pair),
        {"text": "Hello from the studio. This is a test voice.", "voice_id": "oversea_male1"},
        path="/kling/v1/audio/tts",
    )
    assert again.json()["data"]["task_result"]["audios"][0]["id"] == audio["id"]


def test_a_draft_job_uses_the_tts_audio_id(client, pair):
    token = sign(*pair)
    text = {
        "text": "Hello there, this is a short draft made from a few words of text.",
        "voice_id": "uk_man2",
    }
    audio_id = tts(client, token, text).json()["data"]["task_result"]["audios"][0]["id"]
    body = {"image": b64(make_portrait_bytes()), "audio_id": audio_id, "mode": "draft"}
    reply = client.post(CREATE, data=body, content_type="application/json", **bearer(token))
    assert reply.json()["code"] == 0, reply.content
    job = AvatarJob.objects.get(code=reply.json()["data"]["task_id"])
    assert str(job.audio.code) == audio_id and not job.kling_audio_id


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"voice_id": "uk_man2"}, "text"),
        ({"text": "x" * 1001, "voice_id": "uk_man2"}, "text"),
        ({"text": 12, "voice_id": "uk_man2"}, "text"),
        ({"text": "Hello there, my friend."}, "voice_id"),
        ({"text": "Hello there, my friend.", "voice_id": "nobody_1"}, "voice_id"),
        ({"text": "Hello there.", "voice_id": "uk_man2", "voice_language": "zh"}, "voice_language"),
        (
            {"text": "Hello there, my friend.", "voice_id": "uk_man2", "voice_speed": 3},
            "voice_speed",
        ),
        ({"text": "Hello there.", "voice_id": "uk_man2", "voice_speed": "fast"}, "voice_speed"),
        ({"text": "Hello there.", "voice_id": "uk_man2", "voice_speed": 1.25}, "voice_speed"),
        ({"text": "Hi", "voice_id": "uk_man2"}, "text"),  # far under 2 s
    ],
)
def test_tts_refusals_name_the_field(client, pair, body, field):
    reply = tts(client, sign(*pair), body)
    assert (reply.status_code, reply.json()["code"]) == (400, 1201), reply.content
    assert reply.json()["message"].startswith(f"{field}:")


def test_tts_bad_json_and_methods(client, pair):
    assert tts(client, sign(*pair), "{not json").json()["code"] == 1200
    reply = client.get(TTS, **bearer(sign(*pair)))
    assert (reply.status_code, reply.json()["code"]) == (405, 1202)


def test_tts_body_cap_answers_in_klings_shape(client, pair):
    reply = tts(client, sign(*pair), {"text": "x" * 20_000, "voice_id": "uk_man2"})
    assert reply.status_code == 413
    assert reply.json()["code"] == 1200


def test_presets_voices_lists_every_voice(client, pair):
    data = client.get("/v1/general/presets-voices", **bearer(sign(*pair))).json()["data"]
    voices = data[0]["task_result"]["voices"]
    assert {"voice_id": "oversea_male1", "voice_name": "Anchor"}.items() <= voices[0].items()
    assert all(v["voice_language"] in ("en", "zh") for v in voices)


# --- costs -------------------------------------------------------------------------------------


def test_account_costs_are_the_teams_quotas_as_resource_packs(client, team, pair):
    quota_set(team=team, mode="std", seconds=600)
    quota_set(team=team, mode="draft", seconds=None)
    reply = client.get("/account/costs", **bearer(sign(*pair)))
    data = reply.json()["data"]
    assert data["code"] == 0
    packs = {p["mode"]: p for p in data["resource_pack_subscribe_infos"]}
    assert set(packs) == {"std"}
    assert packs["std"]["total_quantity"] == 600
    assert packs["std"]["remaining_quantity"] == 600
    assert packs["std"]["status"] == "online"
    assert packs["std"]["effective_time"] < int(time.time() * 1000) < packs["std"]["invalid_time"]


def test_account_costs_count_what_was_used(client, owner, team, pair, portrait, audio):
    quota_set(team=team, mode="std", seconds=10)
    finish(new_job(team, owner, portrait, audio, mode="std"))  # a 3 s video
    costs = client.get("/kling/account/costs", **bearer(sign(*pair))).json()["data"]
    (pack,) = costs["resource_pack_subscribe_infos"]
    assert (pack["used_quantity"], pack["remaining_quantity"], pack["status"]) == (3, 7, "online")
    quota_set(team=team, mode="std", seconds=3)
    costs = client.get("/kling/account/costs", **bearer(sign(*pair))).json()["data"]
    assert costs["resource_pack_subscribe_infos"][0]["status"] == "runOut"


def test_account_costs_check_the_time_window(client, team, pair):
    quota_set(team=team, mode="pro", seconds=60)
    token = sign(*pair)
    now = int(time.time() * 1000)
    reply = client.get(f"/account/costs?start_time={now}&end_time={now - 1}", **bearer(token))
    assert reply.json()["code"] == 1201 and "start_time" in reply.json()["message"]
    reply = client.get("/account/costs?start_time=yesterday", **bearer(token))
    assert reply.json()["code"] == 1201
    reply = client.get("/account/costs?start_time=", **bearer(token))  # empty is no number
    assert reply.json()["code"] == 1201 and "start_time" in reply.json()["message"]
    old = now - 400 * 86_400_000
    reply = client.get(f"/account/costs?start_time={old}&end_time={old + 1}", **bearer(token))
    assert reply.json()["data"]["resource_pack_subscribe_infos"] == []


# --- watermark_info ----------------------------------------------------------------------------


def test_watermark_info_is_kept_and_passed_on_to_kling(client, settings, pair, tmp_path):
    settings.KLING_API_KEY, settings.KLING_BASE_URL = "k", "http://127.0.0.1:9"
    voice = make_audio_file(tmp_path / "v.mp3", 3.0).read_bytes()
    body = {
        "image": b64(make_portrait_bytes()),
        "sound_file": b64(voice),
        "mode": "std",
        "watermark_info": {"enabled": True},
    }
    token = sign(*pair)
    reply = client.post(CREATE, data=body, content_type="application/json", **bearer(token))
    assert reply.json()["code"] == 0, reply.content
    job = AvatarJob.objects.get(code=reply.json()["data"]["task_id"])
    assert job.watermark is True
    assert _create_payload(job)["watermark"] is True
    task = client.get(f"{CREATE}/{job.code}", **bearer(token)).json()["data"]
    assert task["watermark_info"] == {"enabled": True}
    plain = body | {"watermark_info": None, "external_task_id": "x2"}
    reply = client.post(CREATE, data=plain, content_type="application/json", **bearer(token))
    job = AvatarJob.objects.get(code=reply.json()["data"]["task_id"])
    assert job.watermark is None and "watermark" not in _create_payload(job)


def test_expired_jwt_cannot_be_reused_after_a_day(client, pair):
    token = sign(*pair, exp=int((timezone.now() - timedelta(days=1)).timestamp()))
    assert list_tasks(client, token).json()["code"] == 1004


def test_tts_with_kling_unreachable_says_retry_later(client, settings, pair):
    settings.KLING_API_KEY, settings.KLING_BASE_URL = "k", "http://127.0.0.1:9"
    settings.KLING_ACCESS_KEY = settings.KLING_SECRET_KEY = ""
    body = {"text": "Hello there, this is Kling speaking today.", "voice_id": "uk_man2"}
    reply = tts(client, sign(*pair), body)
    assert (reply.status_code, reply.json()["code"]) == (429, 1302), reply.content
    assert not Asset.objects.filter(kind=Asset.Kind.AUDIO).exists()


def test_the_openapi_document_describes_the_new_paths():
    from jobs.api.openapi import document

    paths = document("https://studio.example")["paths"]
    assert {"/v1/audio/tts", "/v1/general/presets-voices", "/account/costs"} <= set(paths)
