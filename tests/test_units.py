"""Kling units before spend: estimates (configured rate, then the team's own history), the
monthly unit budget refusing jobs and batches before anything is queued, the account's resource
packs read from the simulator over loopback HTTP at most once a minute, failures shown in words,
and the admins' warning when the packs would not cover the queued work."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ

from avatarsite.env import Env
from jobs.kling.simulator import KlingSimulator
from jobs.models import AvatarJob, Batch
from jobs.services import units
from jobs.services.batch_jobs import batch_create
from jobs.services.batches import batch_check
from jobs.services.jobs import job_advance, job_create
from tests.helpers import fast_config, login, simulated_kling

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast")]
Status = AvatarJob.Status


@pytest.fixture(autouse=True)
def no_reading():
    """Each test starts with no stored reading and no refresh lock (Redis outlives tests)."""
    cache.delete_many([units.READING_KEY, units.LOCK_KEY])
    yield
    cache.delete_many([units.READING_KEY, units.LOCK_KEY])


@pytest.fixture
def sim(settings):
    with simulated_kling(settings, http_timeout=1) as simulator:
        yield simulator


def costs_requests(sim: KlingSimulator) -> int:
    return sim.snapshot()["requests_by_endpoint"].get("costs", 0)


def std_job(team, owner, portrait, audio, mode: str = "std") -> AvatarJob:
    return job_create(team=team, user=owner, portrait=portrait, audio=audio, mode=mode)


def drive(job: AvatarJob, limit: float = 20) -> AvatarJob:
    """Worker passes on the job until it is final, as if each next attempt were due now."""
    deadline = time.monotonic() + limit
    while not job.is_terminal and time.monotonic() < deadline:
        AvatarJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
        job_advance(job_id=job.pk)
        job.refresh_from_db()
        time.sleep(0.05)
    return job


def a_minute_passes(sim: KlingSimulator) -> None:
    """The refresh lock expires, as it does after a minute; the simulator, like Kling, still
    allows only one costs request a second."""
    cache.delete(units.LOCK_KEY)
    time.sleep(1.05)


def usage(client, team) -> str:
    response = client.get(reverse("jobs:team-usage", args=[team.code]))
    assert response.status_code == 200
    return response.content.decode()


# --- estimates -------------------------------------------------------------------------------


def test_with_no_history_the_estimate_comes_from_the_settings(team, settings):
    settings.KLING_UNITS_PER_SECOND_STD = Decimal("0.5")
    settings.KLING_UNITS_PER_SECOND_PRO = Decimal("1.25")
    std = units.estimate(team=team, mode="std", seconds=10)
    pro = units.estimate(team=team, mode="pro", seconds=10)
    assert std is not None and pro is not None
    assert (std.units, pro.units) == (Decimal("5.0"), Decimal("12.50"))
    assert str(std) == "about 5 units, at the studio's standard rate of 0.5 a second"
    assert units.estimate(team=team, mode="draft", seconds=10) is None  # drafts are free


def test_once_jobs_succeeded_the_estimate_comes_from_the_teams_history(
    sim, team, owner, portrait, audio, settings
):
    job = drive(std_job(team, owner, portrait, audio))
    assert job.status == Status.SUCCEEDED and job.units_charged and job.duration
    settings.KLING_UNITS_PER_SECOND_STD = Decimal("9")  # no longer used for std
    std = units.estimate(team=team, mode="std", seconds=10)
    assert std is not None and std.rate.jobs == 1
    assert std.units == pytest.approx(job.units_charged / Decimal(str(job.duration)) * 10)
    assert "at the rate Kling charged your team's last job" in str(std)
    # Pro has no history of its own yet; failed jobs are not history.
    assert units.unit_rate(team=team, mode="pro").jobs == 0
    failed = std_job(team, owner, portrait, audio)
    AvatarJob.objects.filter(pk=failed.pk).update(
        status=Status.FAILED, units_charged=100, duration=1, finished_at=timezone.now()
    )
    assert units.unit_rate(team=team, mode="std").jobs == 1


def test_the_new_job_page_shows_the_estimate_of_a_picked_voice_over(
    client, sim, team, owner, portrait, audio
):
    login(client, owner)
    response = client.post(
        reverse("jobs:job-new-check", args=["audio"]), {"audio_asset": str(audio.code)}
    )
    page = response.content.decode()
    assert response.status_code == 200 and 'id="unit-estimate"' in page
    seconds = Decimal(str(audio.duration))
    std = units.format_units(Decimal("0.4") * seconds, 1)
    pro = units.format_units(Decimal("0.8") * seconds, 1)
    assert f"<strong>std</strong> about {std} units, at the studio&#x27;s standard rate" in page
    assert f"<strong>pro</strong> about {pro} units, at the studio&#x27;s standard rate" in page
    assert 'id="unit-budget-left"' not in page  # no budget, nothing to say of it
    units.unit_budget_set(team=team, units=12)
    page = client.post(
        reverse("jobs:job-new-check", args=["audio"]), {"audio_asset": str(audio.code)}
    ).content.decode()
    assert "The team's monthly budget has 12 of its 12 units left." in page


def test_without_a_kling_key_no_estimate_is_shown(client, team, owner, audio, settings):
    settings.KLING_API_KEY = settings.KLING_ACCESS_KEY = settings.KLING_SECRET_KEY = ""
    login(client, owner)
    page = client.post(
        reverse("jobs:job-new-check", args=["audio"]), {"audio_asset": str(audio.code)}
    ).content.decode()
    assert "unit-estimate" not in page


# --- the monthly unit budget ----------------------------------------------------------------


def test_a_job_past_the_unit_budget_is_refused_with_the_estimate_and_what_is_left(
    team, owner, portrait, audio, settings
):
    settings.KLING_API_KEY = "key"
    units.unit_budget_set(team=team, units=2)
    std_job(team, owner, portrait, audio)  # about 1.2 units, reserved while it waits
    queued_before = OrmQ.objects.count()
    with pytest.raises(ValidationError) as exc:
        std_job(team, owner, portrait, audio)
    message = exc.value.messages[0]
    assert exc.value.code == "quota"
    assert "estimated at about 1.2 units, at the studio's standard rate" in message
    assert "0.8 units of its monthly Kling budget left (budget 2 units;" in message
    assert "ask a team admin to raise the budget" in message
    assert AvatarJob.objects.count() == 1 and OrmQ.objects.count() == queued_before
    # Drafts are free: the budget never refuses them.
    job_create(team=team, user=owner, portrait=portrait, audio=audio, mode="draft")


def test_the_new_job_page_says_why_a_job_is_over_the_budget(
    client, team, owner, portrait, audio, settings
):
    settings.KLING_API_KEY = "key"
    units.unit_budget_set(team=team, units=1)
    login(client, owner)
    response = client.post(
        reverse("jobs:job-new"),
        {"portrait_asset": str(portrait.code), "audio_asset": str(audio.code), "mode": "pro"},
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "This pro job is estimated at about 2.4 units" in page
    assert "a shorter voice-over or std" in page
    assert AvatarJob.objects.count() == 0


def rows(*modes: str, portrait_name: str, audio_name: str) -> str:
    lines = ["name,portrait,audio,mode"]
    lines += [f"Row {n},{portrait_name},{audio_name},{mode}" for n, mode in enumerate(modes, 1)]
    return "\n".join(lines) + "\n"


def test_a_batch_past_the_unit_budget_is_refused_row_by_row_and_nothing_is_made(
    client, team, owner, portrait, audio, settings
):
    settings.KLING_API_KEY = "key"
    units.unit_budget_set(team=team, units=2)
    csv_text = rows("std", "draft", "std", portrait_name=portrait.name, audio_name=audio.name)
    check = batch_check(team=team, csv_text=csv_text)
    assert [row.ok for row in check.rows] == [True, True, False]
    (problem,) = check.rows[2].problems
    assert "over the team's monthly Kling budget" in problem
    assert "about 1.2 units (at the studio's standard rate of 0.4 a second)" in problem
    assert problem.startswith("budget: over the team's monthly Kling budget")
    assert "0.8 units are left after the rows above (budget 2 units)" in problem
    # Alone in its batch, a row too big for the budget is told what is left this month.
    (alone,) = batch_check(
        team=team, csv_text=rows("pro", portrait_name=portrait.name, audio_name=audio.name)
    ).rows
    assert "2 units are left this month (budget 2 units)" in " ".join(alone.problems)
    login(client, owner)
    page = client.post(reverse("jobs:batch-new"), {"rows": csv_text}).content.decode()
    assert "over the team&#x27;s monthly Kling budget" in page
    assert "Confirm the batch" not in page
    assert Batch.objects.count() == 0 and AvatarJob.objects.count() == 0


def test_the_batch_confirmation_shows_the_units_estimate(
    client, team, owner, portrait, audio, settings
):
    settings.KLING_API_KEY = "key"
    units.unit_budget_set(team=team, units=100)
    login(client, owner)
    csv_text = rows("std", "pro", portrait_name=portrait.name, audio_name=audio.name)
    page = client.post(reverse("jobs:batch-new"), {"rows": csv_text}).content.decode()
    assert "Confirm the batch" in page and 'id="batch-units"' in page
    assert "Kling units: about 3.6 in all" in page
    assert "std about 1.2 units, at the studio&#x27;s standard rate" in page
    assert "against 100 units left of the team's 100 this month" in page


def test_a_budget_lowered_between_check_and_confirm_makes_nothing(
    team, owner, portrait, audio, settings
):
    settings.KLING_API_KEY = "key"
    plan = [
        {"row": n, "name": f"Row {n}", "mode": "std", "prompt": "", "script": "",
         "portrait": str(portrait.code), "audio": str(audio.code), "voice": "", "speed": 1.0}
        for n in (1, 2)
    ]  # fmt: skip
    units.unit_budget_set(team=team, units=2)  # room for one row's 1.2 units, not two
    with pytest.raises(ValidationError) as exc:
        batch_create(team=team, user=owner, plan=plan, name="Too dear")
    assert "Row 2:" in exc.value.messages[0] and "monthly Kling budget" in exc.value.messages[0]
    assert Batch.objects.count() == 0 and AvatarJob.objects.count() == 0


def test_the_budget_is_set_in_the_team_settings(client, team, owner, teammate):
    login(client, owner)
    url = reverse("jobs:team-settings", args=[team.code])
    response = client.post(url, {"std": "", "pro": "", "draft": "", "unit_budget": "250"})
    assert response.status_code == 302
    team.refresh_from_db()
    assert team.monthly_unit_budget == 250
    page = client.post(url, {"unit_budget": "-5"}).content.decode()
    assert "greater than or equal to 0" in page
    team.refresh_from_db()
    assert team.monthly_unit_budget == 250
    login(client, teammate)  # members see the usage, only admins change the limits
    assert client.get(url).status_code == 403


# --- units used ------------------------------------------------------------------------------


def test_units_used_this_month_per_team_and_member(
    client, admin_client, sim, team, owner, teammate, portrait, audio
):
    units.unit_budget_set(team=team, units=100)
    mine, theirs = std_job(team, owner, portrait, audio), std_job(team, teammate, portrait, audio)
    AvatarJob.objects.filter(pk=mine.pk).update(status=Status.SUCCEEDED, units_charged="2.5")
    AvatarJob.objects.filter(pk=theirs.pk).update(status=Status.SUCCEEDED, units_charged="4")
    login(client, owner)
    page = usage(client, team)
    assert "6.5 units charged" in page and "93.5 units left" in page
    assert '<th scope="row">alice</th>' in page and '<td class="num">2.5</td>' in page
    admin = admin_client.get("/admin/").content.decode()
    assert (
        "Used this month" in admin
        and '<td class="num">6.5</td>' in admin
        and "<td>bob</td>" in admin
    )
    listing = admin_client.get(reverse("admin:jobs_team_changelist")).content.decode()
    assert "Kling units this month" in listing and "6.5" in listing


# --- the account's resource packs -----------------------------------------------------------


def test_the_packs_are_read_at_most_once_a_minute(client, admin_client, sim, team, owner):
    login(client, owner)
    for _ in range(3):
        page = usage(client, team)
    assert "Simulator pack" in page and '<td class="num" id="packs-remaining">10,000</td>' in page
    assert admin_client.get("/admin/").status_code == 200
    assert costs_requests(sim) == 1  # four page views, one request
    a_minute_passes(sim)
    sim.configure(costs_total_units=500.0)
    assert '<td class="num" id="packs-remaining">500</td>' in usage(client, team)
    assert costs_requests(sim) == 2


def test_a_failed_read_is_shown_in_words_with_the_last_good_reading(
    client, admin_client, sim, team, owner
):
    login(client, owner)
    sim.configure(costs_error_rates={5000: 1.0})
    page = usage(client, team)
    assert "resource packs could not be read: " in page and "no earlier reading" in page
    assert "Traceback" not in page
    a_minute_passes(sim)
    sim.configure(costs_error_rates={})
    assert "Simulator pack" in usage(client, team)
    a_minute_passes(sim)
    sim.configure(costs_error_rates={5000: 1.0})
    page = usage(client, team)
    assert "could not be read: " in page and "Shown: the last good reading, from" in page
    assert "Simulator pack" in page
    admin = admin_client.get("/admin/")
    assert admin.status_code == 200 and "could not be read" in admin.content.decode()
    assert costs_requests(sim) == 3


def test_an_unreachable_kling_is_shown_not_a_500(client, team, owner, settings):
    with KlingSimulator(fast_config()) as gone:
        settings.KLING_BASE_URL = gone.base_url  # a port nobody listens on once it stops
    settings.KLING_API_KEY = "key"
    login(client, owner)
    page = usage(client, team)
    assert "could not be read: Network error on GET /account/costs" in page


def test_without_a_kling_key_the_section_says_so(client, admin_client, team, owner, settings):
    settings.KLING_API_KEY = settings.KLING_ACCESS_KEY = settings.KLING_SECRET_KEY = ""
    login(client, owner)
    assert "This studio has no Kling key: it makes drafts only" in usage(client, team)
    assert "no Kling key" in admin_client.get("/admin/").content.decode()


def test_admins_are_warned_when_the_packs_would_not_cover_the_queued_work(
    client, admin_client, sim, team, owner, teammate, portrait, audio
):
    sim.configure(costs_total_units=1.0)
    std_job(team, owner, portrait, audio)  # queued: about 1.2 units
    admin = admin_client.get("/admin/").content.decode()
    assert "Kling units are running short" in admin
    assert "1 unit left, but the queued and running std and pro jobs need about 1.2" in admin
    login(client, owner)  # the team's admin
    assert 'id="units-warning"' in usage(client, team)
    login(client, teammate)  # a member: no banner, and not the studio's whole account
    page = usage(client, team)
    assert 'id="units-warning"' not in page and 'id="kling-packs"' not in page
    a_minute_passes(sim)
    sim.configure(costs_total_units=10000.0)
    assert "Kling units are running short" not in admin_client.get("/admin/").content.decode()


# --- settings ---------------------------------------------------------------------------------


def test_unit_rates_are_parsed_strictly():
    assert Env({}).decimal("R", "0.4") == Decimal("0.4")
    assert Env({"R": "1.5"}).decimal("R", "0.4") == Decimal("1.5")
    with pytest.raises(ImproperlyConfigured, match="R='cheap' is not a number"):
        Env({"R": "cheap"}).decimal("R", "0.4")
    with pytest.raises(ImproperlyConfigured, match="too small"):
        Env({"R": "-1"}).decimal("R", "0.4", minimum="0")
