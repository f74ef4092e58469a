"""One access gate: walk every URL pattern of the project and check the ones that take an object.

For each pattern with parameters, COVERED says which real objects fill each parameter and
whether the view writes. Anonymous visitors are sent to log in, outsiders get 404 (GET, and
POST for writes, with and without htmx) and change nothing, viewers get 403 on writes and
members can read. A new pattern with a parameter that is neither covered nor EXEMPT (with the
reason) fails the walk, so a view cannot be added without its access checks. QUERY_OBJECTS are
the objects named in a query string instead, and the pages without an object (dashboard,
library, the poll, the new-job form) get the same personas. ROLE_MATRIX lists every write
action with what admin, member, viewer and outsider get.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.converters import IntConverter, UUIDConverter

from jobs.media.portraits import validate_portrait
from jobs.models import (
    ApiToken,
    Asset,
    AvatarJob,
    Batch,
    JobTemplate,
    Membership,
    ShareLink,
    Team,
    TeamInvite,
)
from jobs.services.api_tokens import api_token_create
from jobs.services.assets import asset_store
from jobs.services.sharing import share_create
from jobs.services.teams import invite_create
from tests.helpers import HTMX, login, make_portrait_bytes

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast")]


# --- walking the URL map -----------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    name: str  # namespaced: "jobs:job-detail"
    route: str  # the full pattern, for messages
    params: dict[str, Any]  # parameter name -> converter (None for a regex group)


def walk(resolver: URLResolver | None = None, prefix: str = "", ns: str = "") -> Iterator[Route]:
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            namespace = ns
            if entry.namespace:
                namespace = f"{ns}{entry.namespace}:"
            yield from walk(entry, prefix + str(entry.pattern), namespace)
        elif isinstance(entry, URLPattern):
            converters = getattr(entry.pattern, "converters", {})
            params: dict[str, Any] = dict(converters)
            for group in entry.pattern.regex.groupindex:
                params.setdefault(group, None)
            name = f"{ns}{entry.name}" if entry.name else f"{ns}<unnamed {entry.pattern}>"
            yield Route(name, prefix + str(entry.pattern), params)


# --- the objects a route can take --------------------------------------------------------------


class World:
    """Real objects of every kind, all in alice's team, where bob is a member and vera a viewer."""

    def __init__(self, team: Team, owner, teammate, viewer, done, queued, failed, tmp_path):
        face = tmp_path / "other.jpg"
        face.write_bytes(make_portrait_bytes((400, 520)))
        self.objects: dict[str, Any] = {
            "team": team,
            "job": done,
            "queued_job": queued,
            "failed_job": failed,
            "asset": done.portrait,
            "audio": done.audio,  # the voice-over the jobs use
            "unused_asset": asset_store(team=team, user=owner, valid=validate_portrait(face)),
            "share": share_create(job=done, by=owner)[0],
            "invite": invite_create(team=team, by=owner)[0],
            "membership": Membership.objects.get(team=team, user=teammate),
            "api_token": api_token_create(user=teammate, team=team, name="ci")[0],
            "batch": Batch.objects.create(team=team, created_by=owner, name="World batch"),
            "template": JobTemplate.objects.create(
                team=team, created_by=owner, name="World template", portrait=done.portrait
            ),
        }

    def kwargs(self, route: Route, kinds: dict[str, str]) -> dict[str, Any]:
        """Each parameter filled by its converter: a UUID is the object's code, an int its pk."""
        values = {}
        for param, kind in kinds.items():
            obj = self.objects[kind]
            converter = route.params[param]
            if isinstance(converter, UUIDConverter):
                values[param] = obj.code
            elif isinstance(converter, IntConverter):
                values[param] = obj.pk
            else:
                raise AssertionError(f"{route.name}: no rule for {param} ({converter!r})")
        return values


@pytest.fixture
def world(team, owner, teammate, viewer, done, queued, failed, tmp_path) -> World:
    return World(team, owner, teammate, viewer, done, queued, failed, tmp_path)


# --- which patterns take which object ----------------------------------------------------------


@dataclass(frozen=True)
class Covered:
    kinds: dict[str, str]  # parameter -> kind of object in World
    write: bool  # POST changes something: outsiders 404, viewers 403
    get: bool = True  # answers GET (POST-only views are checked by POST)
    viewer_post: int = 403  # what a viewer's POST gets, where that is not 403
    also: tuple[dict[str, str], ...] = ()  # other objects checked the same way
    data: dict[str, Any] = field(default_factory=dict)  # a valid form, POSTed besides an empty one

    def fillings(self) -> list[dict[str, str]]:
        return [self.kinds, *self.also]


TEAM = {"code": "team"}
COVERED: dict[str, Covered] = {
    "jobs:job-detail": Covered({"code": "job"}, write=False, also=({"code": "failed_job"},)),
    "jobs:job-video": Covered({"code": "job"}, write=False),
    "jobs:job-poster": Covered({"code": "job"}, write=False),
    "jobs:job-captions": Covered({"code": "job"}, write=False),
    "jobs:job-cancel": Covered(
        {"code": "queued_job"},
        write=True,
        get=False,
        also=({"code": "failed_job"}, {"code": "job"}),
    ),
    "jobs:job-retry": Covered({"code": "failed_job"}, write=True, get=False),
    "jobs:job-rename": Covered(
        {"code": "job"}, write=True, get=False, data={"name": "Renamed job"}
    ),
    # GET is the confirmation page, for those who may delete only.
    "jobs:job-delete": Covered({"code": "job"}, write=True, also=({"code": "queued_job"},)),
    "jobs:asset-file": Covered({"code": "asset"}, write=False, also=({"code": "audio"},)),
    "jobs:asset-thumb": Covered({"code": "asset"}, write=False),
    # Used files too: the voice-over (renamed with a valid name) and the portrait.
    "jobs:asset-rename": Covered(
        {"code": "unused_asset"},
        write=True,
        also=({"code": "audio"}, {"code": "asset"}),
        data={"name": "x.mp3"},
    ),
    "jobs:asset-delete": Covered(
        {"code": "unused_asset"}, write=True, get=False, also=({"code": "audio"},)
    ),
    "jobs:share-create": Covered({"code": "job"}, write=True, get=False),
    "jobs:share-revoke": Covered({"code": "share"}, write=True, get=False),
    "jobs:team-detail": Covered(TEAM, write=False),
    "jobs:team-usage": Covered(TEAM, write=False),
    "jobs:team-settings": Covered(TEAM, write=True),
    "jobs:member-add": Covered(TEAM, write=True, get=False),
    "jobs:member-role": Covered({**TEAM, "member": "membership"}, write=True, get=False),
    "jobs:member-remove": Covered({**TEAM, "member": "membership"}, write=True, get=False),
    "jobs:invite-create": Covered(TEAM, write=True, get=False),
    "jobs:invite-revoke": Covered({**TEAM, "invite": "invite"}, write=True, get=False),
    # Leaving is open to every member, viewers too: only outsiders are refused (404).
    "jobs:team-leave": Covered(TEAM, write=True, get=False, viewer_post=302),
    "jobs:job-save-template": Covered({"code": "job"}, write=True, get=False),
    # GET is the form or the confirmation, for those who may rename or delete only.
    "jobs:template-rename": Covered(
        {"code": "template"}, write=True, data={"name": "Renamed template"}
    ),
    "jobs:template-delete": Covered({"code": "template"}, write=True),
    "jobs:batch-detail": Covered({"code": "batch"}, write=False),
    "jobs:batch-report": Covered({"code": "batch"}, write=False),
    "jobs:batch-videos": Covered({"code": "batch"}, write=False),
    "jobs:batch-cancel": Covered({"code": "batch"}, write=True, get=False),
    "jobs:batch-retry": Covered({"code": "batch"}, write=True, get=False),
    "jobs:batch-share": Covered({"code": "batch"}, write=True, get=False),
    # A token is revoked by its owner or a team admin; to anyone else it does not exist.
    "api:token-revoke": Covered({"code": "api_token"}, write=True, get=False, viewer_post=404),
}

EXEMPT: dict[str, str] = {
    "share-page": "the token in the URL is the credential (tests/test_sharing.py)",
    "share-video": "the token in the URL is the credential (tests/test_sharing.py)",
    "share-poster": "the token in the URL is the credential (tests/test_sharing.py)",
    "share-captions": "the token in the URL is the credential (tests/test_sharing.py)",
    "kling-callback": "Kling's webhook, authenticated by the job's secret in the URL",
    "api:image2video-task": "the API: Bearer token, team from the token (test_api_security.py)",
    "api:image2video-task-root": "the API: Bearer token, team from the token",
    "api:video-file": "an HMAC-signed result link handed out by the API",
    "api:audio-file": "an HMAC-signed voice-over link handed out by the API's text to speech",
    "api:not-found": "the API's catch-all: answers Kling's 'not found' envelope, takes no object",
    "api:batch": "the API: Bearer token, team from the token (tests/test_api_batches.py)",
    "api:batch-report": "the API: Bearer token, team from the token (tests/test_api_batches.py)",
    "api:batch-videos": "the API: Bearer token, team from the token (tests/test_api_batches.py)",
    "api:batch-not-found": "the batches' catch-all: Bearer token, then Kling's 'not found'",
    "jobs:invite-accept": "the invite token is the credential (tests/test_team_pages.py)",
    "invite-signup": "the invite token is the credential (tests/test_onboarding.py)",
    "password_reset_confirm": "Django's password reset token (tests/test_sharing.py)",
    "jobs:job-new-check": "`kind` names a form field (portrait/audio), not an object; it acts "
    "on the current team (viewers: ROLE_MATRIX)",
    "jobs:voice-sample": "`voice_id` is one of the server's catalogue voices (jobs/voices.py), "
    "the same for every team: not a team's object",
    "admin:*": "Django's admin: staff only, with its own permissions (tests/test_admin.py)",
}


def exemption(name: str) -> str | None:
    if name in EXEMPT:
        return name
    namespace = name.split(":", 1)[0] + ":*"
    return namespace if ":" in name and namespace in EXEMPT else None


def routes_with_params() -> list[Route]:
    return [route for route in walk() if route.params]


def test_every_pattern_with_an_object_is_covered_or_exempt():
    missing = [
        f"{r.name} ({r.route})"
        for r in routes_with_params()
        if r.name not in COVERED and exemption(r.name) is None
    ]
    assert not missing, (
        "URL patterns that take an id without outsider/viewer checks: add each to COVERED "
        f"(or, if another credential guards it, to EXEMPT with the reason): {missing}"
    )
    for route in routes_with_params():
        if route.name in COVERED:
            assert set(COVERED[route.name].kinds) == set(route.params), (
                f"{route.name}: COVERED fills {sorted(COVERED[route.name].kinds)}, "
                f"the pattern takes {sorted(route.params)}"
            )


def test_no_stale_entries():
    names = {route.name for route in walk()}
    for entry in EXEMPT:
        if entry.endswith(":*"):
            assert any(n.startswith(entry[:-1]) for n in names), f"stale exemption {entry}"
        else:
            assert entry in names, f"stale exemption {entry}: no such URL pattern any more"
    assert not [name for name in COVERED if name not in names], "stale COVERED entries"
    assert not set(COVERED) & set(EXEMPT)


def covered_cases() -> list[Any]:
    """Every covered pattern with every object it is checked with."""
    cases = []
    for route in walk():
        if route.name in COVERED:
            for n, kinds in enumerate(COVERED[route.name].fillings()):
                label = route.name if n == 0 else f"{route.name}-{'-'.join(kinds.values())}"
                cases.append(pytest.param(route, kinds, id=label))
    return cases


def sent_to_log_in(response) -> bool:
    return response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def assert_nothing_changed(team: Team) -> None:
    """The World as it was made: no write refused in it went through."""
    assert Team.objects.filter(quota_draft_seconds=60).count() == 0
    assert Membership.objects.filter(team=team).count() == 3
    assert ShareLink.objects.filter(revoked_at__isnull=False).count() == 0
    assert TeamInvite.objects.count() == 1 and ApiToken.objects.count() == 1
    assert Asset.objects.filter(name="renamed.jpg").count() == 0
    assert Asset.objects.filter(name="x.mp3").count() == 0 and Asset.objects.count() == 3
    assert AvatarJob.objects.count() == 3
    assert not AvatarJob.objects.filter(name="Renamed job").exists()
    assert not AvatarJob.objects.filter(status=AvatarJob.Status.CANCELED).exists()
    assert AvatarJob.objects.filter(status=AvatarJob.Status.FAILED).count() == 1
    assert list(JobTemplate.objects.values_list("name", flat=True)) == ["World template"]


@pytest.mark.parametrize(("route", "kinds"), covered_cases())
def test_outsiders_get_404_and_viewers_403(
    client, route, kinds, world, outsider, viewer, teammate, team
):
    case = COVERED[route.name]
    url = reverse(route.name, kwargs=world.kwargs(route, kinds))
    posts = [{}, case.data] if case.data else [{}]

    anonymous = client.post(url) if case.write else client.get(url)
    assert sent_to_log_in(anonymous), f"anonymous {url}"

    login(client, outsider)
    if case.get:
        assert client.get(url).status_code == 404, f"outsider GET {url}"
        assert client.get(url, headers=HTMX).status_code == 404, f"outsider htmx GET {url}"
    if case.write:
        for data in posts:
            assert client.post(url, data).status_code == 404, f"outsider POST {url} {data}"
            response = client.post(url, data, headers=HTMX)
            assert response.status_code == 404, f"outsider htmx POST {url} {data}"
    assert_nothing_changed(team)

    login(client, viewer, team)
    if case.write:
        if case.get:
            assert client.get(url).status_code == 403, f"viewer GET {url}"  # the form
        for data in posts:
            response = client.post(url, data)
            assert response.status_code == case.viewer_post, f"viewer POST {url} {data}"
    elif case.get:
        assert client.get(url).status_code == 200, f"viewer GET {url}"  # a working route
        login(client, teammate, team)
        assert client.get(url).status_code == 200, f"member GET {url}"


# --- objects named in the query string, and the pages without an object ---------------------

# (parameter of the new-job form, kind of object in World): duplicate a job, reuse a file.
QUERY_OBJECTS = [
    ("from", "job"),
    ("from", "failed_job"),
    ("portrait", "asset"),
    ("audio", "audio"),
    ("template", "template"),
]


@pytest.mark.parametrize(("param", "kind"), QUERY_OBJECTS, ids=lambda v: v)
def test_objects_in_the_query_string(client, param, kind, world, outsider, viewer, teammate, team):
    url = reverse("jobs:job-new") + f"?{param}={world.objects[kind].code}"
    assert sent_to_log_in(client.get(url)), url
    login(client, outsider)
    assert client.get(url).status_code == 404, f"outsider GET {url}"
    assert client.get(url, headers=HTMX).status_code == 404, f"outsider htmx GET {url}"
    login(client, viewer, team)
    assert client.get(url).status_code == 403, f"viewer GET {url}"
    login(client, teammate, team)
    assert client.get(url).status_code == 200, f"member GET {url}"


def test_anonymous_visitors_are_sent_to_log_in(client):
    for url in ["/", reverse("jobs:job-new"), reverse("jobs:library"), reverse("jobs:job-cards")]:
        assert sent_to_log_in(client.get(url)), url


def test_members_open_the_team_pages(client, world, teammate, team):
    job, queued = world.objects["job"], world.objects["queued_job"]
    login(client, teammate, team)
    dashboard = client.get("/")
    assert dashboard.status_code == 200
    for kind in ("job", "queued_job", "failed_job"):
        assert str(world.objects[kind].code) in dashboard.content.decode(), kind
    urls = [
        reverse("jobs:job-cards") + f"?job={queued.code}",
        reverse("jobs:job-new"),
        reverse("jobs:library"),
    ]
    for url in urls:
        assert client.get(url).status_code == 200, url
    # Renaming is for the file's uploader and the admins: alice uploaded this portrait.
    assert client.get(reverse("jobs:asset-rename", args=[job.portrait.code])).status_code == 403


def test_outsiders_see_only_their_own_team(client, world, outsider, team):
    jobs = [world.objects[kind] for kind in ("job", "queued_job", "failed_job")]
    login(client, outsider)
    # Pages about "my team" show the outsider's own (empty) team, never someone else's job.
    for url in ["/", reverse("jobs:library")]:
        response = client.get(url)
        assert response.status_code == 200, url
        for job in jobs:
            assert str(job.code) not in response.content.decode(), url
    # Polling someone else's job code learns nothing: the card is just dropped from the page.
    for job in jobs:
        response = client.get(reverse("jobs:job-cards"), {"job": [str(job.code)]}, headers=HTMX)
        body = response.content.decode()
        assert "<article" not in body and job.portrait.name not in body
    assert_nothing_changed(team)


def test_viewers_can_look_but_not_use_the_forms(client, world, viewer, team, portrait_path):
    failed = world.objects["failed_job"]
    login(client, viewer, team)
    assert client.get(reverse("jobs:library")).status_code == 200
    assert client.get(reverse("jobs:job-new")).status_code == 403
    check = reverse("jobs:job-new-check", args=["portrait"])
    upload = SimpleUploadedFile("face.jpg", portrait_path.read_bytes())
    assert client.post(check, {"portrait": upload}, headers=HTMX).status_code == 403
    page = client.get(reverse("jobs:job-detail", args=[failed.code])).content.decode()
    assert "Retry" not in page and "Duplicate" not in page
    assert_nothing_changed(team)


# --- the role matrix: every write action, every role -------------------------------------------


@dataclass(frozen=True)
class Action:
    name: str
    kinds: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    # admin, member, viewer, outsider (no-object actions: the outsider acts in their own team)
    expect: tuple[int, int, int, int] = (302, 302, 403, 404)


# World's objects are alice's (the admin's): a member may not act on them (own-only actions;
# tests/test_roles.py checks them on the member's own objects too).
ROLE_MATRIX = [
    Action("jobs:job-cancel", {"code": "queued_job"}, {}, (302, 403, 403, 404)),
    Action("jobs:job-retry", {"code": "failed_job"}, {}, (302, 403, 403, 404)),
    Action("jobs:job-rename", {"code": "job"}, {"name": "Renamed job"}, (302, 403, 403, 404)),
    Action("jobs:job-delete", {"code": "job"}, {}, (302, 403, 403, 404)),
    Action(
        "jobs:asset-rename", {"code": "unused_asset"}, {"name": "renamed.jpg"}, (302, 403, 403, 404)
    ),
    Action("jobs:asset-delete", {"code": "unused_asset"}, {}, (302, 403, 403, 404)),
    Action("jobs:share-create", {"code": "job"}, {"expires_in": "7"}, (200, 403, 403, 404)),
    Action("jobs:share-revoke", {"code": "share"}, {}, (302, 403, 403, 404)),
    Action("jobs:team-settings", TEAM, {"draft": "60"}, (302, 403, 403, 404)),
    Action("jobs:member-add", TEAM, {"login": "oscar", "role": "viewer"}, (302, 403, 403, 404)),
    Action(
        "jobs:member-role",
        {**TEAM, "member": "membership"},
        {"role": "viewer"},
        (302, 403, 403, 404),
    ),
    Action("jobs:member-remove", {**TEAM, "member": "membership"}, {}, (302, 403, 403, 404)),
    Action("jobs:invite-create", TEAM, {"role": "member", "days": "7"}, (302, 403, 403, 404)),
    Action("jobs:invite-revoke", {**TEAM, "invite": "invite"}, {}, (302, 403, 403, 404)),
    Action("jobs:team-leave", TEAM, {}, (302, 302, 302, 404)),
    Action("api:token-revoke", {"code": "api_token"}, {}, (302, 302, 404, 404)),
    # Members may keep any teammate's job as a template (making jobs is theirs to do).
    Action("jobs:job-save-template", {"code": "job"}, {}, (302, 302, 403, 404)),
    # Templates are the team's: whoever may save one may rename or delete any.
    Action("jobs:template-rename", {"code": "template"}, {"name": "Renamed"}, (302, 302, 403, 404)),
    Action("jobs:template-delete", {"code": "template"}, {}, (302, 302, 403, 404)),
    Action("jobs:batch-cancel", {"code": "batch"}, {}, (302, 403, 403, 404)),
    Action("jobs:batch-retry", {"code": "batch"}, {}, (302, 403, 403, 404)),
    # Nothing finished in the battery's batch: the admin is sent back with the reason.
    Action("jobs:batch-share", {"code": "batch"}, {"expires_in": "7"}, (302, 403, 403, 404)),
    # Actions on the current team: no object in the URL.
    Action("jobs:job-new", {}, {}, (200, 200, 403, 200)),
    Action("jobs:job-new-check", {}, {}, (200, 200, 403, 200)),
    Action("jobs:batch-new", {}, {}, (200, 200, 403, 200)),
    # A confirmation without its signed plan goes back to the form, refused.
    Action("jobs:batch-confirm", {}, {}, (302, 302, 403, 302)),
    Action("api:tokens", {}, {"name": "script"}, (201, 201, 403, 201)),
    Action("jobs:team-create", {}, {"name": "Side project"}, (302, 302, 302, 302)),
]
ROLES = ("admin", "member", "viewer", "outsider")


def test_the_matrix_has_every_write_action_with_an_object():
    writes = {name for name, case in COVERED.items() if case.write}
    assert writes <= {action.name for action in ROLE_MATRIX}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", ROLE_MATRIX, ids=lambda a: a.name)
def test_role_matrix(client, action, role, world, owner, teammate, viewer, outsider, team):
    route = next(r for r in walk() if r.name == action.name)
    kwargs = world.kwargs(route, action.kinds)
    if action.name == "jobs:job-new-check":
        kwargs = {"kind": "portrait"}
    user = {"admin": owner, "member": teammate, "viewer": viewer, "outsider": outsider}[role]
    login(client, user, None if role == "outsider" else team)
    response = client.post(reverse(action.name, kwargs=kwargs), action.data)
    expected = action.expect[ROLES.index(role)]
    assert response.status_code == expected, f"{role} POST {action.name}"
    if expected in (403, 404):  # refused, and nothing changed
        assert_nothing_changed(team)
