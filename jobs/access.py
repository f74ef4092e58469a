"""The one gate every view goes through to reach a team's objects, and the one table it reads.

Outsiders get 404 (they must not learn that the object exists); members whose role does not
allow the action get 403 with a sentence saying who can. What each role may do is the data in
RULES below, not `if`s in the views: a view names its action (`get_job(user, code,
action="cancel")`, `authorize(access, "share", job)`) and the team page shows the same table
(templates/teams/_roles.html).

"Own" means the object's creator: a job's `created_by`, a share link's `created_by` (its job's
creator if the link's maker is gone), a library file's uploader. Objects whose creator account
was deleted are nobody's own: only admins act on them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from uuid import UUID

from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as Account
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django_htmx.middleware import HtmxDetails

from jobs.models import Asset, AvatarJob, Batch, JobTemplate, Membership, ShareLink, Team
from jobs.services.teams import personal_team_create

User = Account | AnonymousUser
Role = Membership.Role
Owned = AvatarJob | ShareLink | Asset | Batch


class Reach(enum.Enum):
    """How far a role's right to one action goes."""

    ALL = "all"  # on every object of the team
    OWN = "own"  # only on objects the user created
    NONE = "none"  # not at all


ALL, OWN, NONE = Reach.ALL, Reach.OWN, Reach.NONE


@dataclass(frozen=True)
class Rule:
    """One row of the table: an action, in plain words, and how far each role may take it."""

    action: str
    says: str  # completes "Who can …", for the team page
    admin: Reach
    member: Reach
    viewer: Reach
    # The 403 to someone whose reach is OWN and who is not the creator.
    not_own: str = ""

    def reach(self, role: str) -> Reach:
        reaches: dict[str, Reach] = {
            Role.ADMIN: self.admin,
            Role.MEMBER: self.member,
            Role.VIEWER: self.viewer,
        }
        return reaches.get(role, NONE)


def _not_own(what: str, verb: str) -> str:
    return f"Only the team's admins and the {what}'s creator can {verb}."


# The roles, as one table. Admins may do everything in the team. Members make jobs and use
# the library, but act only on their own jobs and share links; they may rename or delete only
# the library files they uploaded (teammates' jobs may still need the others). Viewers watch
# and download. Changing a row here changes both the checks and the team page.
RULES: dict[str, Rule] = {
    rule.action: rule
    for rule in (
        Rule("view", "see the team's jobs, files and share links", ALL, ALL, ALL),
        Rule("download", "watch and download videos and files", ALL, ALL, ALL),
        Rule("create_job", "make new jobs (and duplicate one)", ALL, ALL, NONE),
        Rule("cancel", "cancel a queued job", ALL, OWN, NONE, _not_own("job", "cancel it")),
        Rule("retry", "retry a failed job", ALL, OWN, NONE, _not_own("job", "retry it")),
        Rule("rename", "rename a job", ALL, OWN, NONE, _not_own("job", "rename it")),
        Rule("delete", "delete a job", ALL, OWN, NONE, _not_own("job", "delete it")),
        Rule("share", "make a share link to a video", ALL, OWN, NONE, _not_own("job", "share it")),
        Rule(
            "revoke_share",
            "revoke a share link",
            ALL,
            OWN,
            NONE,
            _not_own("link", "revoke it"),
        ),
        Rule("create_batch", "make batches of jobs from a spreadsheet", ALL, ALL, NONE),
        Rule(
            "manage_batch",
            "cancel or retry the rest of a batch",
            ALL,
            OWN,
            NONE,
            _not_own("batch", "cancel or retry it"),
        ),
        # Templates are the team's, like the library's uploads, but nothing depends on one
        # (jobs keep their own inputs), so whoever may save one may rename or delete any.
        Rule("manage_template", "rename and delete the team's templates", ALL, ALL, NONE),
        Rule("library_upload", "add portraits and voice-overs to the library", ALL, ALL, NONE),
        Rule(
            "library_rename",
            "rename a library file",
            ALL,
            OWN,
            NONE,
            "Only the team's admins and the person who uploaded this file can rename it.",
        ),
        Rule(
            "library_delete",
            "delete a library file",
            ALL,
            OWN,
            NONE,
            "Only the team's admins and the person who uploaded this file can delete it.",
        ),
        Rule("voiceover_create", "write a voice-over from a script", ALL, ALL, NONE),
        Rule("manage_members", "add and remove members and change roles", ALL, NONE, NONE),
        Rule("invite", "make and revoke invite links", ALL, NONE, NONE),
        Rule("team_settings", "change the team's monthly limits", ALL, NONE, NONE),
        Rule("api_tokens", "make and revoke API tokens", ALL, OWN, NONE),
    )
}


def owner_id(obj: Owned) -> int | None:
    """The account that created the object, the one "own" refers to (None: nobody's)."""
    if isinstance(obj, ShareLink):
        return obj.created_by_id or obj.job.created_by_id
    return obj.created_by_id


def refusal(access: Access, action: str, obj: Owned | None = None) -> str | None:
    """Why the user may not do `action` (on `obj`), in a sentence; None when they may.

    Without `obj`, an own-only action counts as allowed (the user may do it to what they
    make): views that act on an object must pass it, as get_job and its siblings do.
    """
    rule = RULES[action]  # an unknown action is a programming error: KeyError, loudly
    reach = rule.reach(access.membership.role)
    if reach is ALL:
        return None
    if reach is OWN:
        if obj is None or owner_id(obj) == access.membership.user_id:
            return None
        return rule.not_own
    if rule.member is NONE:
        return "Only the team's admins can do that."
    role = access.membership.get_role_display().lower()
    return f"Your role in this team ({role}) can only view and download: it cannot {rule.says}."


def allows(access: Access, action: str, obj: Owned | None = None) -> bool:
    """Whether the user may do `action` on `obj` (or at all, for actions without an object)."""
    return refusal(access, action, obj) is None


def authorize(access: Access, action: str, obj: Owned | None = None) -> None:
    """Raise PermissionDenied (403) with a plain sentence unless the role allows the action."""
    reason = refusal(access, action, obj)
    if reason is not None:
        raise PermissionDenied(reason)


class StudioRequest(HttpRequest):
    """A request as a signed-in studio view gets it: login_required, django-htmx's middleware."""

    user: Account
    htmx: HtmxDetails


@dataclass(frozen=True)
class Access:
    team: Team
    membership: Membership

    @property
    def can_write(self) -> bool:
        """May make jobs: the pages' "New job" buttons and the new-job views ask this."""
        return allows(self, "create_job")

    @property
    def is_admin(self) -> bool:
        return self.membership.role == Role.ADMIN

    def may(self, action: str, obj: Owned | None = None) -> bool:
        return allows(self, action, obj)


def membership_for(user: User, team: Team) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(user=user, team=team).first()


def _check(user: User, team: Team, action: str, obj: Owned) -> Access:
    membership = membership_for(user, team)
    if membership is None:
        raise Http404("No such object.")
    access = Access(team=team, membership=membership)
    authorize(access, action, obj)
    return access


def memberships(request: StudioRequest) -> list[Membership]:
    """The user's memberships with their teams, in one query, kept for the rest of the request.

    current_team picks from this list and the navigation's team switcher shows it, so a page
    pays for it once.
    """
    cached = getattr(request, "_memberships", None)
    if cached is None:
        cached = list(
            Membership.objects.filter(user=request.user)
            .select_related("team")
            .order_by("-team__personal", "team__name", "created")
        )
        request._memberships = cached  # type: ignore[attr-defined]
    return cached


def current_team(request: StudioRequest) -> Access:
    """The team the user is working in: the one chosen in the session, else the personal one."""
    mine = memberships(request)
    chosen = request.session.get("team")
    membership = next((m for m in mine if chosen and str(m.team.code) == chosen), None)
    if membership is None and mine:
        membership = min(mine, key=lambda m: (not m.team.personal, m.created))
    if membership is None:
        # Accounts always get a personal team; this only happens if it was deleted by hand.
        personal_team_create(user=request.user)
        request._memberships = None  # type: ignore[attr-defined]
        membership = memberships(request)[0]
    return Access(team=membership.team, membership=membership)


def get_team(user: User, code: UUID, *, action: str = "view", admin: bool = False) -> Access:
    """A team the user is in (404 otherwise), if the role allows `action` (403 otherwise).

    `admin=True` is the older spelling of an admin-only action.
    """
    membership = (
        Membership.objects.select_related("team").filter(team__code=code, user_id=user.pk).first()
        if user.is_authenticated
        else None
    )
    if membership is None:
        raise Http404("No such team.")
    access = Access(team=membership.team, membership=membership)
    authorize(access, "manage_members" if admin else action)
    return access


def get_job(user: User, code: UUID, *, action: str = "view") -> tuple[AvatarJob, Access]:
    """A job of one of the user's teams (404 otherwise) on which the role allows `action`."""
    job = (
        AvatarJob.objects.select_related("team", "portrait", "audio", "created_by")
        .filter(code=code)
        .first()
    )
    if job is None:
        raise Http404("No such job.")
    return job, _check(user, job.team, action, job)


def get_asset(user: User, code: UUID, *, action: str = "view") -> tuple[Asset, Access]:
    """A library file of one of the user's teams (404 otherwise), if `action` is allowed."""
    asset = Asset.objects.select_related("team").filter(code=code).first()
    if asset is None:
        raise Http404("No such file.")
    return asset, _check(user, asset.team, action, asset)


def get_share(user: User, code: UUID, *, action: str = "revoke_share") -> tuple[ShareLink, Access]:
    """A share link of one of the user's teams' jobs (404 otherwise), if `action` is allowed."""
    link = ShareLink.objects.select_related("job", "job__team").filter(code=code).first()
    if link is None:
        raise Http404("No such share link.")
    return link, _check(user, link.job.team, action, link)


def get_batch(user: User, code: UUID, *, action: str = "view") -> tuple[Batch, Access]:
    """A batch of one of the user's teams (404 otherwise), if the role allows `action`."""
    batch = Batch.objects.select_related("team", "created_by").filter(code=code).first()
    if batch is None:
        raise Http404("No such batch.")
    return batch, _check(user, batch.team, action, batch)


def get_template(user: User, code: UUID, *, action: str = "view") -> tuple[JobTemplate, Access]:
    """A template of one of the user's teams (404 otherwise), if the role allows `action`."""
    template = (
        JobTemplate.objects.select_related("team", "portrait", "audio").filter(code=code).first()
    )
    if template is None:
        raise Http404("No such template.")
    membership = membership_for(user, template.team)
    if membership is None:
        raise Http404("No such template.")
    access = Access(team=template.team, membership=membership)
    authorize(access, action)
    return template, access
