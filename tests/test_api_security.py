"""The API's security: tokens (1001/1002, team scoping) and SSRF (URLs that resolve to, or
redirect to, loopback, private, link-local or metadata addresses are never connected to)."""

from __future__ import annotations

import base64
import ipaddress
import json
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
import urllib3

from jobs import netfetch
from jobs.models import ApiToken, AvatarJob, Membership, Team, hash_token
from jobs.services.api_tasks import api_task_by_external_id
from jobs.services.api_tokens import api_token_create, api_token_revoke
from jobs.services.assets import asset_store
from jobs.services.jobs import job_create
from tests.api_servers import Answer, LoopbackServer
from tests.helpers import make_portrait_bytes

pytestmark = pytest.mark.django_db

CREATE = "/kling/v1/videos/avatar/image2video"
PORTRAIT = make_portrait_bytes()


@pytest.fixture(autouse=True)
def fast_passwords(settings) -> None:
    """The personas' passwords are never checked here: skip PBKDF2's 0.45 s each."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def token(owner, team) -> str:
    return api_token_create(user=owner, team=team, name="script")[1]


def post(client: Any, body: dict[str, Any], headers: dict[str, str]) -> Any:
    return client.post(CREATE, data=json.dumps(body), content_type="application/json", **headers)


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def draft(**extra: Any) -> dict[str, Any]:
    # The audio is never looked at in these tests: the image (or callback) is refused first.
    body = {"image": base64.b64encode(PORTRAIT).decode(), "sound_file": "AAAA", "mode": "draft"}
    return body | extra


# --- tokens ----------------------------------------------------------------------------------


def assert_refused(reply: Any, code: int, words: str = "") -> None:
    body = reply.json()
    assert reply.status_code == 401, body
    assert body["code"] == code and body["data"] is None, body
    assert words in body["message"], body["message"]
    assert reply["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", [None, "", "   "])
def test_no_authorization_is_1001(client, header):
    headers = {} if header is None else {"HTTP_AUTHORIZATION": header}
    assert_refused(client.get(CREATE, **headers), 1001, "Authorization is empty")


@pytest.mark.parametrize("header", ["Basic YWxpY2U6cHc=", "Bearer", "Token abc", "avs_abc"])
def test_a_malformed_authorization_is_1002(client, header):
    assert_refused(client.get(CREATE, HTTP_AUTHORIZATION=header), 1002, "Bearer")


def test_an_unknown_token_is_1002(client, token):
    assert_refused(client.get(CREATE, **bearer(token + "x")), 1002, "not valid")


def test_a_revoked_token_is_1002(client, token):
    api_token_revoke(token=ApiToken.objects.get())
    assert_refused(client.get(CREATE, **bearer(token)), 1002, "revoked")
    assert_refused(post(client, draft(), bearer(token)), 1002, "revoked")
    assert not AvatarJob.objects.exists()


def test_a_token_dies_with_its_owners_write_rights(client, teammate, team):
    token = api_token_create(user=teammate, team=team)[1]
    assert client.get(CREATE, **bearer(token)).status_code == 200
    membership = Membership.objects.get(user=teammate, team=team)
    membership.role = Membership.Role.VIEWER
    membership.save()
    assert_refused(client.get(CREATE, **bearer(token)), 1002, "can no longer make jobs")
    membership.delete()
    assert_refused(client.get(CREATE, **bearer(token)), 1002, "can no longer make jobs")


def test_a_deactivated_owners_token_is_1002(client, owner, token):
    owner.is_active = False
    owner.save()
    assert_refused(client.get(CREATE, **bearer(token)), 1002)


def test_viewers_cannot_get_a_token(viewer, team):
    with pytest.raises(Exception, match="can make jobs"):
        api_token_create(user=viewer, team=team)


def test_only_the_hash_is_stored(token):
    stored = ApiToken.objects.get()
    assert stored.token_hash == hash_token(token) and token not in stored.token_hash
    assert stored.prefix == token[:10] and len(token) >= 36


def test_a_token_never_sees_another_teams_tasks(client, token, outsider):
    outsider_team = Team.objects.get(memberships__user=outsider)
    theirs = api_token_create(user=outsider, team=outsider_team)[1]
    # A task of the outsider's team, made through the API with their own external id.
    job = _queued_job(outsider_team, outsider, external_id="their-order")
    for ref in (str(job.code), "their-order"):
        reply = client.get(f"{CREATE}/{ref}", **bearer(token))
        assert reply.status_code == 404 and reply.json()["code"] == 1203
        assert client.get(f"{CREATE}/{ref}", **bearer(theirs)).status_code == 200
    assert client.get(CREATE, **bearer(token)).json()["data"] == []
    assert len(client.get(CREATE, **bearer(theirs)).json()["data"]) == 1
    # Repeating their external id in our team makes our own task; theirs is untouched.
    assert api_task_by_external_id(team=outsider_team, external_id="their-order") == job


def _queued_job(team: Team, user: Any, *, external_id: str) -> AvatarJob:
    from django.core.files.base import ContentFile

    from jobs.media.portraits import validate_portrait

    portrait = asset_store(
        team=team, user=user, valid=validate_portrait(ContentFile(PORTRAIT, name="p.jpg"))
    )
    job = job_create(team=team, user=user, portrait=portrait, kling_audio_id="1")
    AvatarJob.objects.filter(pk=job.pk).update(client_external_id=external_id)
    return job


def test_the_api_needs_no_csrf_token_and_sets_no_cookie(client, token):
    client = type(client)(enforce_csrf_checks=True)
    reply = post(client, {"image": ""}, bearer(token))
    assert reply.status_code == 400 and reply.json()["code"] == 1201  # reached the view
    assert not reply.cookies


# --- SSRF: the address checks ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped IPv6
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("10.1.2.3", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # AWS, GCP, Azure metadata
        ("fe80::1", "link-local"),
        ("fd00:ec2::254", "private"),  # AWS metadata over IPv6
        ("100.100.100.200", "carrier-grade"),  # Alibaba metadata
        ("0.0.0.0", "unspecified"),  # noqa: S104 (an address to refuse, not to bind)
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "private"),  # reserved for future use
        ("192.0.2.10", "private"),  # documentation
    ],
)
def test_non_public_addresses_are_refused(address, words):
    problem = netfetch.address_problem(address)
    assert problem is not None and words in problem


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_pass(address):
    assert netfetch.address_problem(address) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost:8000/face.jpg",
        "http://2130706433/",  # 127.0.0.1 as one decimal number
        "http://0177.0.0.1/",  # octal
        "http://0x7f.1/",  # hex, shortened
        "http://127.1/",
        "http://0/",  # 0.0.0.0
        "http://0.0.0.0:8000/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://LOCALHOST./",
    ],
)
def test_urls_that_resolve_inside_are_refused(url, settings):
    settings.ALLOW_PRIVATE_URLS = False
    with pytest.raises(netfetch.UrlRefused, match="only public internet addresses"):
        netfetch.check_url(url)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://example.com/a.jpg", "only http"),
        ("file:///etc/passwd", "only http"),
        ("gopher://127.0.0.1:25/", "only http"),
        ("http://user:pw@example.com/", "user name or password"),
        ("http:///nohost", "no host"),
        ("http://example.com:99999/", "not valid"),
        ("http://exa\nmple.com/", "control characters"),
        ("http://" + "a" * 2000 + ".com/", "the limit is 2,000"),
        ("http://no-such-host.invalid/", "could not be found"),
    ],
)
def test_urls_that_cannot_be_used_say_why(url, words, settings):
    settings.ALLOW_PRIVATE_URLS = False
    with pytest.raises(netfetch.UrlRefused, match=words):
        netfetch.check_url(url)


def test_allow_private_urls_lets_loopback_through(settings):
    settings.ALLOW_PRIVATE_URLS = True
    assert netfetch.check_url("http://localhost:8000/x?y=1").addresses == ("127.0.0.1",)


def test_the_allowlist_trusts_only_the_networks_it_names(settings):
    settings.ALLOW_PRIVATE_URLS = False
    settings.PRIVATE_URL_ALLOWLIST = [ipaddress.ip_network("127.0.0.1/32")]
    assert netfetch.check_url("http://127.0.0.1/").addresses == ("127.0.0.1",)
    with pytest.raises(netfetch.UrlRefused):
        netfetch.check_url("http://169.254.169.254/")


def test_the_connection_goes_to_the_checked_address_with_the_original_host():
    """Pinning: the socket goes to the address that was checked, while the Host header (and,
    for https, SNI and the certificate check) keep the name, so a second DNS answer cannot
    send the request elsewhere."""
    with LoopbackServer() as server:
        server.serve("/x", b"hello")
        target = netfetch.Target(
            url="http://assets.example.test/x",
            scheme="http",
            host="assets.example.test",
            port=server.port,
            request_target="/x",
            addresses=("127.0.0.1",),
        )
        response, pool = netfetch._open(
            target, "GET", timeout=urllib3.Timeout(connect=2, read=2), headers={}
        )
        try:
            assert response.status == 200 and response.read() == b"hello"
        finally:
            pool.close()
        assert server.requests_to("/x")[0].headers["Host"] == f"assets.example.test:{server.port}"


def _certificates(tmp: Path, name: str) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) for `name`, made with openssl."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-days", "1", "-subj", "/CN=test CA", "-addext",
            "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
            "-keyout", str(tmp / "ca.key"), "-out", str(tmp / "ca.pem"))  # fmt: skip
    openssl("req", *ec, "-subj", f"/CN={name}", "-keyout", str(tmp / "server.key"),
            "-out", str(tmp / "server.csr"))  # fmt: skip
    (tmp / "ext.cnf").write_text(f"subjectAltName=DNS:{name}\n")
    openssl("x509", "-req", "-in", str(tmp / "server.csr"), "-CA", str(tmp / "ca.pem"),
            "-CAkey", str(tmp / "ca.key"), "-CAcreateserial", "-days", "1",
            "-extfile", str(tmp / "ext.cnf"), "-out", str(tmp / "server.pem"))  # fmt: skip
    return tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_https_stays_pinned_and_checks_the_certificate_for_the_name(tmp_path, monkeypatch):
    """Connected to the checked IP, TLS still sends the name (SNI) and verifies the certificate
    against it: a certificate for another name is refused."""
    ca, cert, key = _certificates(tmp_path, "assets.example.test")
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    monkeypatch.setattr(netfetch, "CA_BUNDLE", str(ca))
    with LoopbackServer(tls=tls) as server:
        server.serve("/x", b"over tls")

        def get(name: str) -> bytes:
            target = netfetch.Target(
                url=f"https://{name}/x",
                scheme="https",
                host=name,
                port=server.port,
                request_target="/x",
                addresses=("127.0.0.1",),
            )
            response, pool = netfetch._open(
                target, "GET", timeout=urllib3.Timeout(connect=2, read=2), headers={}
            )
            try:
                return response.read()
            finally:
                pool.close()

        assert get("assets.example.test") == b"over tls"
        with pytest.raises(netfetch.FetchError, match="TLS"):
            get("other.example.test")


# --- SSRF: through the API, nothing is ever connected to -------------------------------------


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "2130706433", "0177.0.0.1", "[::ffff:127.0.0.1]", "0.0.0.0"],  # noqa: S104
)
def test_an_image_url_on_loopback_is_refused_without_a_connection(client, token, settings, host):
    settings.ALLOW_PRIVATE_URLS = False
    with LoopbackServer() as server:
        server.serve("/face.jpg", PORTRAIT, "image/jpeg")
        url = f"http://{host}:{server.port}/face.jpg"
        answer = post(client, draft(image=url), bearer(token)).json()
        assert server.hits == []
    assert answer["code"] == 1201 and answer["message"].startswith("image: ")
    assert "only public internet addresses" in answer["message"]
    assert not AvatarJob.objects.exists()


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("image", "http://10.0.0.1/face.jpg"),
        ("image", "http://169.254.169.254/latest/meta-data/"),
        ("image", "http://[::1]/face.jpg"),
        ("sound_file", "http://[::1]:8080/voice.mp3"),
        ("sound_file", "http://10.20.30.40/voice.mp3"),
        ("callback_url", "http://169.254.169.254/hook"),
        ("callback_url", "http://localhost:9000/hook"),
        ("callback_url", "http://[::1]/hook"),
    ],
)
def test_private_urls_are_refused_naming_the_field(client, token, settings, field, url):
    settings.ALLOW_PRIVATE_URLS = False
    body = draft(**{field: url})
    if field == "sound_file":
        body["image"] = base64.b64encode(PORTRAIT).decode()
    reply = post(client, body, bearer(token))
    answer = reply.json()
    assert reply.status_code == 400 and answer["code"] == 1201
    assert answer["message"].startswith(f"{field}: ") and "only public" in answer["message"]
    assert not AvatarJob.objects.exists()


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://10.0.0.7/face.jpg",
        "http://[::1]/face.jpg",
        "http://2886729729/face.jpg",  # 172.16.0.1 as one decimal number
    ],
)
def test_a_redirect_to_an_inside_address_is_refused(client, token, settings, location):
    """The first hop is a trusted loopback server (allowlisted, as an operator could), which
    answers 302 to an inside address: the second hop is checked like the first."""
    settings.ALLOW_PRIVATE_URLS = False
    settings.PRIVATE_URL_ALLOWLIST = [ipaddress.ip_network("127.0.0.1/32")]
    with LoopbackServer() as server:
        url = server.redirect("/face.jpg", location)
        answer = post(client, draft(image=url), bearer(token)).json()
        assert len(server.requests_to("/face.jpg")) == 1
    assert answer["code"] == 1201 and answer["message"].startswith("image: ")
    assert "only public internet addresses" in answer["message"]


def test_redirects_are_followed_a_few_times_each_checked(client, token, settings):
    settings.ALLOW_PRIVATE_URLS = True
    with LoopbackServer() as server:
        server.serve("/real.jpg", PORTRAIT, "image/jpeg")
        server.redirect("/b", "/real.jpg", status=301)
        url = server.redirect("/a", f"{server.url}/b")
        fetched = netfetch.fetch(url, max_bytes=1_000_000)
        assert fetched.content == PORTRAIT and fetched.url.endswith("/real.jpg")
        server.redirect("/loop", "/loop")
        with pytest.raises(netfetch.FetchError, match="redirected more than 3 times"):
            netfetch.fetch(f"{server.url}/loop", max_bytes=1_000_000)
        assert len(server.requests_to("/loop")) == 4


def test_fetches_are_capped_in_size_and_time(settings):
    settings.ALLOW_PRIVATE_URLS = True
    with LoopbackServer() as server:
        big = server.serve("/big", b"x" * 300_000)
        with pytest.raises(netfetch.TooLarge, match="limit is"):
            netfetch.fetch(big, max_bytes=100_000)  # refused from Content-Length
        server.routes["/endless"] = Answer(body=b"x" * 300_000, send_length=False)
        with pytest.raises(netfetch.TooLarge, match="larger than"):
            netfetch.fetch(f"{server.url}/endless", max_bytes=100_000)  # while streaming
        server.routes["/slow"] = Answer(body=b"x" * 20_000, trickle=0.2)
        with pytest.raises(netfetch.FetchError, match="took longer than 1 s"):
            netfetch.fetch(f"{server.url}/slow", max_bytes=100_000, total_timeout=1)
        server.routes["/gone"] = Answer(status=404)
        with pytest.raises(netfetch.FetchError, match="HTTP 404"):
            netfetch.fetch(f"{server.url}/gone", max_bytes=100_000)


def test_an_oversized_image_url_is_refused_by_the_api(client, token, settings):
    settings.ALLOW_PRIVATE_URLS = True
    with LoopbackServer() as server:
        url = server.serve("/huge.jpg", b"\xff\xd8\xff" + b"\0" * (12 * 1024 * 1024), "image/jpeg")
        answer = post(client, draft(image=url), bearer(token)).json()
    assert answer["code"] == 1201
    assert answer["message"] == "image: the file at the URL is larger than the 10 MB limit"


def test_a_refused_connection_is_explained(client, token, settings):
    settings.ALLOW_PRIVATE_URLS = True
    with LoopbackServer() as server:
        port = server.port
    answer = post(client, draft(image=f"http://127.0.0.1:{port}/x.jpg"), bearer(token)).json()
    assert answer["code"] == 1201 and "refused the connection" in answer["message"]
