"""Template helpers of the team and share-link pages, and the role gate's template side."""

from __future__ import annotations

from dataclasses import dataclass

from django import template

from jobs.access import RULES, Access, Owned, Reach, allows
from jobs.forms import ShareForm

register = template.Library()


@register.simple_tag
def blank_share_form() -> ShareForm:
    """The share panel's form on pages whose view does not make one (the job page)."""
    return ShareForm()


@register.simple_tag
def may(access: Access | None, action: str, obj: Owned | None = None) -> bool:
    """`{% may access "cancel" job as can_cancel %}`: whether to show a button, asked of the
    same gate the view will ask (jobs/access.py), so no button leads to a 403."""
    return access is not None and allows(access, action, obj)


@dataclass(frozen=True)
class RoleRow:
    says: str
    admin: str
    member: str
    viewer: str


_WORDS = {Reach.ALL: "Yes", Reach.OWN: "Their own", Reach.NONE: "No"}


@register.simple_tag
def role_table() -> list[RoleRow]:
    """The gate's table (jobs/access.py RULES) in plain words, for the team page."""
    return [
        RoleRow(
            says=rule.says[0].upper() + rule.says[1:],
            admin=_WORDS[rule.admin],
            member=_WORDS[rule.member],
            viewer=_WORDS[rule.viewer],
        )
        for rule in RULES.values()
    ]
