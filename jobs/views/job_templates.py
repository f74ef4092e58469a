"""A team's templates renamed and deleted: each on a page of its own, so no JavaScript is needed
(the New batch page, which lists them, links here)."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from jobs.access import StudioRequest, get_template
from jobs.forms import TemplateRenameForm
from jobs.services.templates import template_delete as delete_template
from jobs.services.templates import template_rename as rename_template


@login_required
@require_http_methods(["GET", "POST"])
def template_rename(request: StudioRequest, code: UUID) -> HttpResponse:
    """GET: the form. POST: rename, back to the list; a refused name comes back with why."""
    template, access = get_template(request.user, code, action="manage_template")
    old_name = template.name
    form = TemplateRenameForm(request.POST or None, initial={"name": template.name})
    if request.method == "POST" and form.is_valid():
        try:
            rename_template(template=template, name=form.cleaned_data["name"])
        except ValidationError as exc:
            form.add_error("name", exc)
        else:
            messages.success(request, f"Renamed the template “{old_name}” to “{template.name}”.")
            return redirect("jobs:batch-new")
    context = {"template": template, "old_name": old_name, "form": form, "access": access}
    return render(request, "jobs/template_rename.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def template_delete(request: StudioRequest, code: UUID) -> HttpResponse:
    """GET: what deleting does (and does not) touch, and a button to confirm. POST: do it."""
    template, access = get_template(request.user, code, action="manage_template")
    if request.method == "POST":
        delete_template(template=template)
        messages.success(
            request,
            f"Deleted the template “{template.name}”. The jobs and batches made from it stay.",
        )
        return redirect("jobs:batch-new")
    return render(request, "jobs/template_delete.html", {"template": template, "access": access})
