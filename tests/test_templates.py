"""Team templates renamed and deleted: by whoever may save one, POST only (with CSRF), on pages
that need no JavaScript; a duplicate or empty name refused with why; deleting one leaves the
jobs and batches made from it, and its library files, as they were."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from jobs.models import Asset, AvatarJob, Batch, JobTemplate
from jobs.services.batch_runs import batch_from_spreadsheet
from jobs.services.templates import template_rename
from tests.helpers import finish, login

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast")]


@pytest.fixture
def template(team, owner, portrait, audio) -> JobTemplate:
    return JobTemplate.objects.create(
        team=team, created_by=owner, name="Welcome", portrait=portrait, audio=audio, mode="draft"
    )


def rename_url(template: JobTemplate) -> str:
    return reverse("jobs:template-rename", args=[template.code])


def delete_url(template: JobTemplate) -> str:
    return reverse("jobs:template-delete", args=[template.code])


def test_the_batch_page_links_to_rename_and_delete(client, owner, template):
    login(client, owner)
    page = client.get(reverse("jobs:batch-new")).content.decode()
    assert f'href="{rename_url(template)}"' in page and f'href="{delete_url(template)}"' in page
    assert 'Rename<span class="visually-hidden"> Welcome</span>' in page


def test_rename_without_javascript(client, teammate, team, template):
    login(client, teammate, team)  # a member may rename the admin's template
    form = client.get(rename_url(template)).content.decode()
    assert 'value="Welcome"' in form and "csrfmiddlewaretoken" in form
    reply = client.post(rename_url(template), {"name": "  Welcome   pack "})
    assert reply.status_code == 302 and reply["Location"] == reverse("jobs:batch-new")
    template.refresh_from_db()
    assert template.name == "Welcome pack"
    page = client.get(reply["Location"]).content.decode()
    assert "Renamed the template “Welcome” to “Welcome pack”." in page


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("Other", "The team already has a template named “Other”: choose another name."),
        ("  oTHER ", "The team already has a template named “Other”: choose another name."),
        ("   ", "The name is empty: give the template a name."),
        ("x" * 121, "The name is too long: shorten it to 120 characters or fewer."),
    ],
    ids=["duplicate", "duplicate-in-another-case", "empty", "too-long"],
)
def test_a_refused_name_comes_back_with_why(client, owner, team, template, name, words):
    JobTemplate.objects.create(team=team, created_by=owner, name="Other")
    login(client, owner)
    reply = client.post(rename_url(template), {"name": name})
    assert reply.status_code == 200
    page = reply.content.decode()
    assert words.replace("“", "&ldquo;") in page or words in page
    assert 'aria-invalid="true"' in page
    template.refresh_from_db()
    assert template.name == "Welcome"


def test_renaming_to_its_own_name_in_another_case_is_fine(owner, template):
    assert template_rename(template=template, name="WELCOME").name == "WELCOME"


def test_another_teams_template_of_the_same_name_is_no_duplicate(outsider, template):
    theirs = JobTemplate.objects.create(team=outsider.memberships.get().team, name="Mine")
    assert template_rename(template=theirs, name="Welcome").name == "Welcome"


def test_delete_asks_first_and_leaves_the_jobs_and_batches_made_from_it(
    client, owner, team, template, portrait, audio
):
    made = batch_from_spreadsheet(
        team=team, user=owner, csv_text="name\nFrom the template\n", template=template
    )
    assert made.batch is not None
    job = finish(made.batch.jobs.get())
    login(client, owner)
    confirm = client.get(delete_url(template))
    assert confirm.status_code == 200 and JobTemplate.objects.filter(pk=template.pk).exists()
    assert "The jobs and batches made from it stay" in confirm.content.decode()
    reply = client.post(delete_url(template))
    assert reply.status_code == 302 and not JobTemplate.objects.filter(pk=template.pk).exists()
    job.refresh_from_db()
    assert job.batch == made.batch and job.video and job.portrait == portrait
    assert Batch.objects.filter(pk=made.batch.pk).exists() and AvatarJob.objects.count() == 1
    assert set(Asset.objects.values_list("pk", flat=True)) >= {portrait.pk, audio.pk}
    page = client.get(reply["Location"]).content.decode()
    assert "Deleted the template “Welcome”" in page and f'id="template-{template.code}"' not in page


def test_posts_need_the_csrf_token(owner, template):
    client = Client(enforce_csrf_checks=True)
    login(client, owner)
    assert client.post(rename_url(template), {"name": "Forged"}).status_code == 403
    assert client.post(delete_url(template)).status_code == 403
    template.refresh_from_db()
    assert template.name == "Welcome"


def test_viewers_and_outsiders_may_not(client, viewer, outsider, team, template):
    login(client, viewer, team)
    for url in (rename_url(template), delete_url(template)):
        assert client.get(url).status_code == 403
        assert client.post(url, {"name": "Vera's"}).status_code == 403
    login(client, outsider)
    for url in (rename_url(template), delete_url(template)):
        assert client.get(url).status_code == 404
        assert client.post(url, {"name": "Oscar's"}).status_code == 404
    template.refresh_from_db()
    assert template.name == "Welcome"
    assert client.put(rename_url(template)).status_code in (404, 405)
