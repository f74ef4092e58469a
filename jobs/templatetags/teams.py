"""Template helpers of the team and share-link pages."""

from __future__ import annotations

from django import template

from jobs.forms import ShareForm

register = template.Library()


@register.simple_tag
def blank_share_form() -> ShareForm:
    """The share panel's form on pages whose view does not make one (the job page)."""
    return ShareForm()
