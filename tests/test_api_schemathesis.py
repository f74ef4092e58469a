"""Schemathesis against the OpenAPI document, over real HTTP to a live server: requests of every
shape the document allows (and many it does not) never get a 500, and every answer matches the
documented status codes, content type and schemas (Kling's envelope, with the task or the
error).

The document is loaded when the module is imported (schemathesis' lazy fixture loader does not
work with pytest 9), from the same function that serves /kling/openapi.json; the first test
checks that the served document is that one. Schemathesis knows the bearer scheme's token, so
its auth checks (a request without it must get 401) run as well.
"""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from jobs.api.openapi import document
from jobs.models import ApiToken, Team, hash_token

FUZZ_TOKEN = "avs_schemathesis-fuzzing-token-0123456789"
schema = schemathesis.openapi.from_dict(
    document("http://placeholder.invalid"),
    config=SchemathesisConfig.from_dict(
        {"auth": {"openapi": {"bearerAuth": {"bearer": FUZZ_TOKEN}}}}
    ),
)


@pytest.fixture
def api_token(transactional_db, django_user_model, settings) -> ApiToken:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # never checked
    settings.ALLOW_PRIVATE_URLS = False  # generated URLs must never reach inside
    # std/pro pass the mode check and go on to the files. Only text to speech calls Kling,
    # here a closed loopback port (refused at once: 1302, documented), never the internet.
    settings.KLING_API_KEY = "fuzz-kling-key"
    settings.KLING_BASE_URL = "http://127.0.0.1:9"
    settings.KLING_HTTP_TIMEOUT = 2
    settings.KLING_ACCESS_KEY = settings.KLING_SECRET_KEY = ""
    user = django_user_model.objects.create_user("fuzzer", password="fuzz-pass-1")
    return ApiToken.objects.create(
        user=user,
        team=Team.objects.get(memberships__user=user),
        name="fuzzer",
        token_hash=hash_token(FUZZ_TOKEN),
        prefix=FUZZ_TOKEN[:10],
    )


def test_the_served_document_is_the_one_tested(live_server, transactional_db):
    served = requests.get(f"{live_server.url}/kling/openapi.json", timeout=10).json()
    assert served == document(live_server.url)
    assert served["openapi"].startswith("3.")
    assert [s["url"] for s in served["servers"]] == [f"{live_server.url}/kling", live_server.url]


@schema.parametrize()
@hypothesis_settings(
    max_examples=40,
    deadline=None,
    database=None,  # no .hypothesis/ folder in the work tree; each run explores afresh
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_request_gets_a_500_and_answers_match_the_document(case, live_server, api_token):
    # Kling's paths are tried under /kling (the base URL Kling tools use); the batches answer
    # at the root only, as their path-level `servers` say.
    root = case.operation.path.startswith("/api/")
    case.call_and_validate(
        base_url=live_server.url if root else f"{live_server.url}/kling",
        # A schema cannot say "a real JPEG of at least 300 px": schema-valid bodies are rightly
        # refused (1201) by media validation. Every other check runs, including that
        # schema-invalid requests are refused.
        excluded_checks=[positive_data_acceptance],
    )
