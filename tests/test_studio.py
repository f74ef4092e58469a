"""The studio pages and their htmx partials: dashboard and its one poll, new job with early file
checks, job page and its actions, library. Who may open or change what (anonymous visitors,
outsiders, viewers, members) is checked once for every view, in tests/test_isolation.py."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.contrib.staticfiles import finders
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from jobs import cards
from jobs.media.audio import validate_audio
from jobs.media.portraits import validate_portrait
from jobs.models import Asset, AvatarJob
from jobs.services.assets import asset_store
from jobs.views.dashboard import JOBS_PER_PAGE
from jobs.views.library import THUMB_SIZE
from tests.helpers import HTMX, finish, login, make_audio_file, make_portrait_bytes, new_job

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast")]

S = AvatarJob.Status


def card_html(page: str, job: AvatarJob) -> str:
    match = re.search(rf'<article[^>]*id="job-{job.code}".*?</article>', page, re.S)
    assert match, f"no card for {job.code}"
    return match.group(0)


def is_fragment(response) -> bool:
    return response.status_code == 200 and "<html" not in response.content.decode()


# --- dashboard -----------------------------------------------------------------------------


def test_cards_show_status_mode_creator_and_outcome(client, owner, team, done, failed, queued):
    page = login(client, owner).get("/").content.decode()
    card = card_html(page, done)
    assert "Done" in card and "draft" in card and "alice" in card and "0:03" in card
    assert reverse("jobs:job-poster", args=[done.code]) in card  # the poster once done
    card = card_html(page, queued)
    assert reverse("jobs:asset-thumb", args=[queued.portrait.code]) in card  # portrait meanwhile
    assert f'data-since="{queued.created.isoformat()}"' in card and "Next in line" in card
    assert "The voice-over has no sound in it." in card_html(page, failed)
    # Newest first.
    assert page.index(f"job-{queued.code}") < page.index(f"job-{failed.code}")


def test_a_finished_card_has_no_polling_attribute(client, owner, done, queued):
    page = login(client, owner).get("/").content.decode()
    finished = card_html(page, done)
    assert "hx-" not in finished and "live-code" not in finished
    running = card_html(page, queued)
    assert f'class="live-code" name="job" value="{queued.code}:' in running


def test_the_page_polls_once_for_all_cards_only_while_something_runs(client, owner, done, queued):
    login(client, owner)
    page = client.get("/").content.decode()
    assert page.count('hx-trigger="every') == 1  # one poller, whatever the number of cards
    assert 'id="poller"' in page and 'hx-include=".live-code"' in page
    queued.status = S.CANCELED
    queued.save()
    page = client.get("/").content.decode()
    poller = re.search(r'<div id="poller".*?></div>', page, re.S).group(0)
    assert 'hx-trigger="every 20s,' in poller  # idle: only the slow heartbeat


def test_queue_position_counts_the_jobs_waiting_before(client, owner, team, portrait, audio):
    jobs = [new_job(team, owner, portrait, audio) for _ in range(3)]
    page = login(client, owner).get("/").content.decode()
    assert "Next in line" in card_html(page, jobs[0])
    assert "3rd in line" in card_html(page, jobs[2])


def test_generating_shows_an_estimate_from_the_teams_recent_jobs(
    client, owner, team, portrait, audio
):
    for seconds in (60, 100, 120):
        finish(new_job(team, owner, portrait, audio), seconds=seconds)
    running = new_job(
        team,
        owner,
        portrait,
        audio,
        status=S.PROCESSING,
        processing_at=timezone.now() - timedelta(seconds=40),
    )
    card = card_html(login(client, owner).get("/").content.decode(), running)
    # The median of 60, 100 and 120 s; studio.js counts the time left down from when it began.
    assert "usually takes about 1 min 40 s" in card and 'data-estimate="100"' in card
    assert f'data-started="{running.processing_at.isoformat()}"' in card and "<progress" in card


def test_filters_and_search(client, owner, teammate, team, portrait, audio, failed):
    mine = new_job(team, owner, portrait, audio, prompt="Smile and nod")
    theirs = new_job(team, teammate, portrait, audio, prompt="Look left")
    login(client, owner)

    def shown(**params) -> set:
        page = client.get("/", params).content.decode()
        return {job for job in (mine, theirs, failed) if f"job-{job.code}" in page}

    assert shown() == {mine, theirs, failed}
    assert shown(status="failed") == {failed}
    assert shown(status="running") == {mine, theirs}
    assert shown(who="mine") == {mine, failed}
    assert shown(q="smile") == {mine}  # prompt text
    assert shown(q=portrait.name.upper()[:4]) == {mine, theirs, failed}  # asset names
    assert shown(q="voice.mp3") == {mine, theirs, failed}
    assert shown(mode="pro") == set()
    assert shown(status="bogus") == {mine, theirs, failed}  # unknown values are ignored
    page = client.get("/", {"status": "failed", "who": "mine"}).content.decode()
    assert '<option value="failed" selected>' in page and '<option value="mine" selected>' in page
    assert '<option value="" selected>All</option>' in page  # the mode is not filtered
    page = client.get("/", {"q": "nothing like this"}).content.decode()
    assert "No jobs match" in page and "Make your first" not in page


def test_filter_changes_get_only_the_results_fragment(client, owner, failed, queued):
    response = login(client, owner).get(
        "/", {"status": "failed"}, headers={**HTMX, "HX-Target": "results"}
    )
    assert is_fragment(response)
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="results"')
    assert f"job-{failed.code}" in body and f"job-{queued.code}" not in body


def test_pages_of_older_jobs_load_as_you_scroll(client, owner, team, portrait, audio):
    jobs = [new_job(team, owner, portrait, audio) for _ in range(JOBS_PER_PAGE + 5)]
    login(client, owner)
    page = client.get("/").content.decode()
    assert page.count('<article class="card') == JOBS_PER_PAGE
    cursor = jobs[5].code  # the oldest on the first page
    assert f"before={cursor}" in page
    more = client.get("/", {"before": cursor}, headers={**HTMX, "HX-Target": "more"})
    assert is_fragment(more)
    rest = more.content.decode()
    assert rest.count('<article class="card') == 5 and 'id="more"' not in rest
    assert all(f"job-{job.code}" in rest for job in jobs[:5])
    # They are running, so the appended page makes sure the poller runs.
    assert 'id="poller"' in rest and 'hx-swap-oob="true"' in rest
    # Without JavaScript, the same link is a full page with a way back.
    plain = client.get("/", {"before": cursor}).content.decode()
    assert "Back to the newest jobs" in plain and plain.count('<article class="card') == 5


def test_first_run_dashboard_explains_the_two_steps(client, owner):
    page = login(client, owner).get("/").content.decode()
    assert "Make your first talking avatar" in page
    assert "Upload a portrait and a voice-over" in page and "Pick a mode" in page


# --- the poll ------------------------------------------------------------------------------


def poll(client, *jobs, **params):
    url = reverse("jobs:job-cards")
    return client.get(url, {"job": [str(j.code) for j in jobs], **params}, headers=HTMX)


def poller_url(page: str) -> str:
    """The URL the page's one poller asks, as htmx reads it from the attribute."""
    poller = re.search(r'<div id="poller"[^>]*hx-get="([^"]+)"', page)
    assert poller, "the page has no poller"
    return poller[1].replace("&amp;", "&")


def test_the_poll_answers_only_the_asked_cards_out_of_band(client, owner, team, done, queued):
    other = new_job(team, owner, done.portrait, done.audio)
    response = poll(login(client, owner), queued)
    assert is_fragment(response)
    body = response.content.decode()
    assert f'id="job-{queued.code}" hx-swap-oob="true"' in body
    assert f"job-{done.code}" not in body and f"job-{other.code}" not in body
    assert 'hx-trigger="every 3s' in body  # still running: keep polling


def test_a_card_that_finished_comes_back_without_polling_and_polling_stops(client, owner, queued):
    finish(queued)
    body = poll(login(client, owner), queued).content.decode()
    card = card_html(body, queued)
    assert "live-code" not in card and "hx-get" not in card and "hx-trigger" not in card
    poller = re.search(r'<div id="poller".*?></div>', body, re.S).group(0)
    assert 'hx-trigger="every 20s,' in poller and 'hx-swap-oob="true"' in poller
    assert "a finished one" not in body
    assert "wave hello: done." in body  # told to screen readers once, by the job's name


def test_the_poll_brings_new_jobs_on_top_and_restarts_polling(
    client, owner, teammate, team, done, portrait, audio
):
    login(client, owner)
    page = client.get("/").content.decode()
    since = re.search(r'id="poll-since" class="live-code" name="since" value="([^"]+)"', page)[1]
    assert 'hx-trigger="every 20s,' in page  # nothing runs: the idle heartbeat
    made = new_job(team, teammate, portrait, audio)
    body = poll(client, since=since).content.decode()
    assert 'hx-swap-oob="afterbegin:#cards"' in body and f'id="job-{made.code}"' in body
    assert 'hx-trigger="every 3s' in body
    assert f'value="{made.created.isoformat()}" hx-swap-oob="true"' in body  # since moves on
    # Filters apply to new jobs too.
    body = poll(client, since=since, status="failed").content.decode()
    assert f"job-{made.code}" not in body


def test_the_idle_heartbeat_brings_a_job_made_elsewhere_and_is_204_otherwise(
    client, owner, teammate, team, done, portrait, audio, settings, django_assert_max_num_queries
):
    settings.DASHBOARD_IDLE_POLL_SECONDS = 7
    login(client, owner)
    page = client.get("/").content.decode()
    assert 'hx-trigger="every 7s, visibilitychange from:document"' in page
    since = re.search(r'id="poll-since" class="live-code" name="since" value="([^"]+)"', page)[1]
    url = poller_url(page) + "&" + urlencode({"since": since})
    # Nothing changed: a bare 204, for the session, the user, the (empty) read of new cards
    # and the membership check an empty answer needs.
    with django_assert_max_num_queries(4):
        response = client.get(url, headers=HTMX)
    assert response.status_code == 204 and response.content == b""
    # A teammate makes a job (here through the service, as the API does).
    made = new_job(team, teammate, portrait, audio)
    body = client.get(url, headers=HTMX).content.decode()
    assert f'id="job-{made.code}"' in body and 'hx-trigger="every 3s' in body
    # A job that finished before the page saw it comes in too, and the heartbeat stays slow.
    finish(made)
    response = client.get(url, headers=HTMX)
    body = response.content.decode()
    assert f'id="job-{made.code}"' in body and 'hx-trigger="every 7s,' in body


def live_values(page: str) -> list[str]:
    return re.findall(r'class="live-code" name="job" value="([^"]+)"', page)


def test_a_poll_where_nothing_changed_renders_nothing(
    client, owner, team, portrait, audio, queued, django_assert_max_num_queries
):
    second = new_job(team, owner, portrait, audio)
    login(client, owner)
    page = client.get("/").content.decode()
    values = live_values(page)
    assert len(values) == 2
    url = poller_url(page)
    assert f"team={team.code}" in url
    # session, user, and one query for the cards (with the membership check joined in)
    url += "&" + urlencode({"job": values}, doseq=True)
    with django_assert_max_num_queries(3):
        response = client.get(url, headers=HTMX)
    assert response.status_code == 204 and response.content == b""  # htmx: swap nothing
    # The first job starts: its card changes, and the one behind it moves up the queue.
    AvatarJob.objects.filter(pk=queued.pk).update(
        status=S.PROCESSING, processing_at=timezone.now(), updated=timezone.now()
    )
    body = client.get(url, headers=HTMX).content.decode()
    assert "Generating" in card_html(body, queued)
    assert "Next in line" in card_html(body, second)


def test_a_vanished_job_is_removed_rather_than_polled_forever(client, owner, queued):
    code = queued.code
    AvatarJob.objects.filter(pk=queued.pk).delete()
    body = poll(login(client, owner), queued).content.decode()
    assert f'<div id="job-{code}" hx-swap-oob="delete"></div>' in body


def test_poll_queries_do_not_grow_with_the_number_of_cards(
    client, owner, team, portrait, audio, django_assert_max_num_queries
):
    for seconds in (50, 70):
        finish(new_job(team, owner, portrait, audio), seconds=seconds)
    login(client, owner)
    for count in (2, 30):
        jobs = [
            new_job(team, owner, portrait, audio, status=S.PROCESSING, processing_at=timezone.now())
            for _ in range(count)
        ]
        cards._estimates.clear()
        # session, user, the cards (+ the estimate, cached afterwards); these codes come
        # without a version, so every card is "changed" and drawn
        with django_assert_max_num_queries(4):
            response = poll(client, *jobs, since=timezone.now().isoformat(), team=team.code)
        assert response.content.decode().count("<article") == count
        with django_assert_max_num_queries(3):
            response = poll(client, *jobs, team=team.code)
        assert response.content.decode().count("<article") == count
        # A page that does not name its team costs one more: the current team is looked up.
        with django_assert_max_num_queries(4):
            poll(client, *jobs)


def test_a_card_from_the_poll_is_the_card_on_the_page(
    client, owner, teammate, team, portrait, audio, done, failed
):
    """Cards are read with SQL on the hot paths and with the ORM behind filters: all alike."""
    for seconds in (40, 80):
        finish(new_job(team, owner, portrait, audio), seconds=seconds)
    first = new_job(team, owner, portrait, audio)
    # No voice-over file (a Kling audio id), and its maker's account is gone: "someone".
    second = new_job(team, teammate, portrait, audio, kling_audio_id="a-1")
    AvatarJob.objects.filter(pk=second.pk).update(audio=None)
    running = new_job(
        team, owner, portrait, audio, status=S.PROCESSING, processing_at=timezone.now()
    )
    second.created_by.delete()
    jobs = [first, second, running, done, failed]
    login(client, owner)
    page = client.get("/").content.decode()
    url = poller_url(page)
    since = (done.created - timedelta(days=1)).isoformat()
    # No versions: every card is sent back; an old `since`: the others come as new.
    asked = {"job": [str(first.code), str(running.code)], "since": since}
    body = client.get(f"{url}&{urlencode(asked, doseq=True)}", headers=HTMX).content.decode()
    # A filtered page is read with the ORM (card_jobs); these filters let every job through.
    filtered = client.get("/", {"mode": "draft"}).content.decode()
    for job in jobs:
        on_page = card_html(page, job)
        assert card_html(filtered, job) == on_page, job.status
        polled = card_html(body, job).replace(' hx-swap-oob="true"', "")
        assert polled == on_page, job.status
    assert "someone" in card_html(body, second) and "Next in line" in card_html(body, first)


def test_a_filtered_page_stays_quiet_when_others_make_jobs(
    client, owner, teammate, team, portrait, audio, django_assert_max_num_queries
):
    mine = new_job(team, owner, portrait, audio)
    login(client, owner)
    page = client.get("/", {"who": "mine"}).content.decode()
    url = poller_url(page) + "&" + urlencode({"job": live_values(page)}, doseq=True)
    assert "who=mine" in url
    theirs = new_job(team, teammate, portrait, audio)  # not for this page
    with django_assert_max_num_queries(3):
        response = client.get(url, headers=HTMX)
    assert response.status_code == 204
    AvatarJob.objects.filter(pk=mine.pk).update(status=S.CANCELED, updated=timezone.now())
    body = client.get(url, headers=HTMX).content.decode()
    assert "Canceled" in card_html(body, mine) and f"job-{theirs.code}" not in body


def test_many_new_jobs_never_crowd_the_pages_cards_out_of_the_poll(
    client, owner, team, portrait, audio
):
    running = new_job(team, owner, portrait, audio)
    login(client, owner)
    page = client.get("/").content.decode()
    since = re.search(r'id="poll-since" class="live-code" name="since" value="([^"]+)"', page)[1]
    url = poller_url(page) + "&" + urlencode({"job": live_values(page), "since": since}, doseq=True)
    made = [new_job(team, owner, portrait, audio) for _ in range(JOBS_PER_PAGE + 3)]
    body = client.get(url, headers=HTMX).content.decode()
    assert f'<div id="job-{running.code}" hx-swap-oob="delete">' not in body
    assert body.count("<article") == JOBS_PER_PAGE  # the newest of the new ones
    assert f'id="job-{made[-1].code}"' in body and f'id="job-{made[2].code}"' not in body


def test_a_broken_since_is_ignored(client, owner, team, queued):
    login(client, owner)
    for since in ("2024-13-40T00:00", "yesterday", "2026-01-01T10:00"):
        response = poll(client, queued, team=team.code, since=since)
        assert response.status_code == 200, since


def test_a_poll_for_a_team_the_user_is_not_in_sends_the_page_home(
    client, owner, outsider, team, queued
):
    login(client, outsider)
    response = poll(client, queued, team=team.code, since=timezone.now().isoformat())
    assert response.status_code == 200 and response["HX-Redirect"] == "/"
    assert response.content == b"" or "<article" not in response.content.decode()
    url = reverse("jobs:job-cards")
    assert client.get(url, {"job": str(queued.code), "team": team.code}).status_code == 404
    # A member who is removed while the page is open is sent home the same way.
    login(client, owner)
    assert poll(client, queued, team=team.code).status_code == 200
    team.memberships.filter(user=owner).delete()
    response = poll(client, queued, team=team.code)
    assert response["HX-Redirect"] == "/" and "<article" not in response.content.decode()


def test_dashboard_queries_do_not_grow_with_the_number_of_jobs(
    client, owner, team, portrait, audio, django_assert_max_num_queries
):
    login(client, owner)
    for count in (3, 40):
        for _ in range(count):
            finish(new_job(team, owner, portrait, audio))
        new_job(team, owner, portrait, audio, status=S.PROCESSING, processing_at=timezone.now())
        cards._estimates.clear()
        with django_assert_max_num_queries(6):
            assert client.get("/").status_code == 200


# --- new job -------------------------------------------------------------------------------


def check(client, kind: str, **data):
    return client.post(reverse("jobs:job-new-check", args=[kind]), data, headers=HTMX)


def test_new_job_page_offers_modes_with_reasons(client, owner, settings):
    settings.KLING_API_KEY = settings.KLING_ACCESS_KEY = settings.KLING_SECRET_KEY = ""
    page = login(client, owner).get(reverse("jobs:job-new")).content.decode()
    assert re.search(r'value="draft" checked', page)
    assert re.search(r'value="std"[^>]*disabled', page)
    assert re.search(r'value="pro"[^>]*disabled', page)
    assert "this server has no Kling key yet" in page
    assert 'data-count="prompt-count"' in page and "0 / 2,500" in page
    assert "Drop a photo here" in page and "Drop a recording here" in page
    settings.KLING_API_KEY = "key"
    page = client.get(reverse("jobs:job-new")).content.decode()
    assert not re.search(r'value="std"[^>]*disabled', page)


def test_a_good_file_is_checked_stored_and_picked_at_once(client, owner, team, portrait_path):
    login(client, owner)
    upload = SimpleUploadedFile("Me.jpg", portrait_path.read_bytes(), content_type="image/jpeg")
    response = check(client, "portrait", portrait=upload)
    assert is_fragment(response)
    asset = Asset.objects.get()
    body = response.content.decode()
    assert body.lstrip().startswith('<fieldset class="file-field has-pick" id="field-portrait"')
    assert "✓ Ready" in body and "480×600 px" in body and asset.name == "Me.jpg"
    assert f'value="{asset.code}" id="pick-{asset.code}" checked' in body
    assert reverse("jobs:asset-thumb", args=[asset.code]) in body
    # The same bytes again: still one file in the library.
    upload = SimpleUploadedFile("again.jpg", portrait_path.read_bytes())
    check(client, "portrait", portrait=upload)
    assert Asset.objects.count() == 1


def test_a_voice_over_check_shows_a_player_with_its_duration(client, owner, tmp_path):
    path = make_audio_file(tmp_path / "hello.mp3", 4.0)
    login(client, owner)
    body = check(client, "audio", audio=SimpleUploadedFile("hello.mp3", path.read_bytes()))
    body = body.content.decode()
    asset = Asset.objects.get()
    assert "<audio controls" in body and reverse("jobs:asset-file", args=[asset.code]) in body
    assert "0:04 (4.0 s)" in body


def test_a_bad_file_is_explained_next_to_its_field_before_submit(client, owner, media_root):
    login(client, owner)
    small = SimpleUploadedFile("tiny.png", make_portrait_bytes((200, 900), "PNG"))
    response = check(client, "portrait", portrait=small)
    assert response.status_code == 200  # htmx 2 swaps 200s only
    body = response.content.decode()
    assert 'id="portrait-errors" role="alert"' in body and 'aria-invalid="true"' in body
    assert "both sides must be at least 300 px" in body and "1:4.5 (too tall)" in body
    assert Asset.objects.count() == 0 and not any(p.is_file() for p in media_root.rglob("*"))
    body = check(client, "audio", audio=SimpleUploadedFile("a.mp3", b"not audio")).content
    assert b"audio" in body and b'role="alert"' in body


def test_email_me_is_off_and_refused_for_an_account_without_an_address(
    client, owner, portrait, audio
):
    owner.email = ""
    owner.save()
    login(client, owner)
    page = client.get(reverse("jobs:job-new")).content.decode()
    assert re.search(r'<input type="checkbox" name="notify_by_email"[^>]* disabled>', page)
    assert f'<a href="{reverse("account")}">Add an email address to your account</a>' in page
    data = {"portrait_asset": portrait.code, "audio_asset": audio.code, "mode": "draft"}
    response = client.post(reverse("jobs:job-new"), {**data, "notify_by_email": "on"})
    assert response.status_code == 200 and not AvatarJob.objects.exists()
    assert 'class="error" role="alert">Add an email address' in response.content.decode()
    # With an address it can be ticked, and is kept.
    owner.email = "alice@example.com"
    owner.save()
    page = client.get(reverse("jobs:job-new")).content.decode()
    assert not re.search(r'name="notify_by_email"[^>]* disabled', page)
    assert (
        client.post(reverse("jobs:job-new"), {**data, "notify_by_email": "on"}).status_code == 302
    )
    assert AvatarJob.objects.get().notify_by_email


def test_a_submit_after_a_refused_file_says_why_it_was_refused(client, owner, audio):
    login(client, owner)
    small = SimpleUploadedFile("tiny.png", make_portrait_bytes((200, 900), "PNG"))
    body = check(client, "portrait", portrait=small).content.decode()
    # The field comes back with an empty file input, and the reason to carry to the submit.
    token = re.search(r'<input type="hidden" name="portrait_refused" value="([^"]+)">', body)[1]
    data = {"audio_asset": audio.code, "mode": "draft"}
    response = client.post(reverse("jobs:job-new"), {**data, "portrait_refused": token})
    errors = re.search(
        r'id="portrait-errors" role="alert">(.*?)</div>', response.content.decode(), re.S
    )
    assert errors and "both sides must be at least 300 px" in errors[1]
    assert "Choose a portrait" not in errors[1] and not AvatarJob.objects.exists()
    # The page keeps carrying it; a forged one is ignored.
    assert 'name="portrait_refused"' in response.content.decode()
    forged = client.post(reverse("jobs:job-new"), {**data, "portrait_refused": "x:y"})
    assert "Choose a portrait: upload a photo" in forged.content.decode()


def test_a_refused_file_keeps_the_earlier_pick(client, owner, portrait):
    login(client, owner)
    bad = SimpleUploadedFile("x.gif", b"GIF89a....")
    body = check(client, "portrait", portrait=bad, portrait_asset=str(portrait.code)).content
    assert b"Portraits must be .jpg or .png" in body
    assert f'value="{portrait.code}" id="pick-{portrait.code}" checked'.encode() in body


def test_picking_from_the_library_previews_it(client, owner, audio):
    body = check(login(client, owner), "audio", audio_asset=str(audio.code)).content.decode()
    assert "✓ Ready" in body and f'id="pick-{audio.code}" checked' in body


def test_unknown_file_kind_is_404(client, owner):
    assert check(login(client, owner), "video").status_code == 404


def test_checked_files_make_a_job_without_uploading_again(client, owner, portrait, audio):
    login(client, owner)
    response = client.post(
        reverse("jobs:job-new"),
        {
            "portrait_asset": str(portrait.code),
            "audio_asset": str(audio.code),
            "prompt": "nod\r\n" + "x" * 2490,
            "mode": "draft",
        },
        follow=True,
    )
    job = AvatarJob.objects.get()
    assert (job.portrait, job.audio, len(job.prompt)) == (portrait, audio, 2494)
    page = response.content.decode()
    first = re.search(r'<article class="card[^"]*" id="job-([^"]+)"', page)
    assert first[1] == str(job.code) and "is-new" in first.group(0)  # on top, highlighted
    assert "Job queued" in page and 'hx-trigger="every 3s' in page  # and it is being watched


def test_form_errors_sit_next_to_their_fields(client, owner):
    response = login(client, owner).post(reverse("jobs:job-new"), {"mode": "pro"})
    page = response.content.decode()
    assert response.status_code == 200
    assert "3 things need fixing" in page
    assert page.rindex("Choose a portrait") > page.index('id="field-portrait"')
    assert page.rindex("Choose a voice-over") > page.index('id="field-audio"')


def test_duplicate_prefills_a_new_job(client, owner, failed):
    failed.prompt = "say cheese"
    failed.save()
    page = login(client, owner).get(reverse("jobs:job-new"), {"from": failed.code})
    page = page.content.decode()
    assert f'id="pick-{failed.portrait.code}" checked' in page
    assert f'id="pick-{failed.audio.code}" checked' in page
    assert ">say cheese</textarea>" in page


def test_library_reuse_prefills_one_file(client, owner, portrait, audio):
    page = login(client, owner).get(reverse("jobs:job-new"), {"audio": audio.code})
    page = page.content.decode()
    assert f'id="pick-{audio.code}" checked' in page
    assert f'id="pick-{portrait.code}" checked' not in page


# --- job page ------------------------------------------------------------------------------


def test_job_page_has_player_download_inputs_and_timeline(client, owner, done):
    page = login(client, owner).get(done.get_absolute_url()).content.decode()
    assert f'src="{reverse("jobs:job-video", args=[done.code])}"' in page  # plays the video
    assert f'poster="{reverse("jobs:job-poster", args=[done.code])}"' in page
    assert "Download MP4" in page
    assert re.search(r'download="a-finished-one-draft-\d{8}-\d{4}\.mp4"', page)  # the name
    assert "480×600 px" in page and "voice.mp3" in page and "a finished one" in page
    timeline = re.search(r'<ol class="timeline">.*?</ol>', page, re.S).group(0)
    assert timeline.count("<time") == 3  # queued, generating, done (drafts skip Kling)
    assert "Duplicate" in page and "hx-trigger" not in page


def test_a_running_job_page_refreshes_its_status_part_until_done(client, owner, queued):
    login(client, owner)
    page = client.get(queued.get_absolute_url()).content.decode()
    assert 'hx-trigger="every 3s' in page and "Cancel job" in page
    finish(queued)
    response = client.get(queued.get_absolute_url(), headers=HTMX)
    assert is_fragment(response)
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="job-status"')
    assert "hx-get" not in body and "hx-trigger" not in body and "<video" in body


def test_a_failed_job_page_says_its_message_once(client, owner, failed):
    page = login(client, owner).get(failed.get_absolute_url()).content.decode()
    assert page.count("The voice-over has no sound in it.") == 1
    assert "It did not work" in page and "Reference: render_failed" in page


def test_the_input_audio_player_can_show_its_duration(client, owner, done):
    page = login(client, owner).get(done.get_absolute_url()).content.decode()
    audio_url = reverse("jobs:asset-file", args=[done.audio.code])
    # The browser reads the length up front (with preload="none" the player says 0:00)...
    assert re.search(rf'<audio controls preload="metadata" src="{re.escape(audio_url)}"', page)
    # ...from a file served with its size, and in ranges, as players ask for it.
    whole = client.get(audio_url)
    size = done.audio.file.size
    assert whole["Content-Length"] == str(size) and whole["Accept-Ranges"] == "bytes"
    part = client.get(audio_url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part["Content-Range"] == f"bytes 0-99/{size}"
    assert len(b"".join(part.streaming_content)) == 100


def test_retry_makes_a_new_job_with_the_same_inputs(client, owner, failed):
    response = login(client, owner).post(reverse("jobs:job-retry", args=[failed.code]))
    new = AvatarJob.objects.exclude(pk=failed.pk).get()
    assert response.status_code == 302 and response["Location"] == f"/?new={new.code}"
    assert (new.portrait, new.audio, new.status) == (failed.portrait, failed.audio, S.QUEUED)


def test_a_retry_keeps_an_api_caller_s_watermark_choice(client, owner, failed):
    AvatarJob.objects.filter(pk=failed.pk).update(watermark=False)
    login(client, owner).post(reverse("jobs:job-retry", args=[failed.code]))
    assert AvatarJob.objects.exclude(pk=failed.pk).get().watermark is False


def test_only_failed_jobs_can_be_retried(client, owner, done):
    response = login(client, owner).post(reverse("jobs:job-retry", args=[done.code]), follow=True)
    assert "Only a failed job can be retried." in response.content.decode()
    assert AvatarJob.objects.count() == 1


def test_cancel_only_before_the_job_started(client, owner, done, queued):
    login(client, owner)
    response = client.post(reverse("jobs:job-cancel", args=[queued.code]))
    assert response.status_code == 302
    queued.refresh_from_db()
    assert queued.status == S.CANCELED
    response = client.post(reverse("jobs:job-cancel", args=[done.code]), follow=True)
    assert "can no longer be canceled" in response.content.decode()


# --- library -------------------------------------------------------------------------------


def test_library_lists_files_with_facts_and_uses(client, owner, team, done, tmp_path):
    spare = asset_store(
        team=team, user=owner, valid=validate_audio(make_audio_file(tmp_path / "spare.wav", 2.5))
    )
    page = login(client, owner).get(reverse("jobs:library")).content.decode()
    portrait_tile = re.search(rf'<li[^>]*id="asset-{done.portrait.code}".*?</li>', page, re.S)[0]
    assert "480×600 px" in portrait_tile and "Used by 1 job" in portrait_tile
    assert f"?portrait={done.portrait.code}" in portrait_tile  # reuse in one click
    assert "Delete" not in portrait_tile  # used: jobs keep their inputs
    spare_tile = re.search(rf'<li[^>]*id="asset-{spare.code}".*?</li>', page, re.S)[0]
    assert "0:02 (2.5 s)" in spare_tile and "Not used yet" in spare_tile
    assert "Delete" in spare_tile


def test_rename_inline_and_without_javascript(client, owner, portrait):
    login(client, owner)
    url = reverse("jobs:asset-rename", args=[portrait.code])
    form = client.get(url, headers=HTMX)
    assert is_fragment(form) and 'name="name"' in form.content.decode()
    response = client.post(url, {"name": "  Studio shot.jpg "}, headers=HTMX)
    assert is_fragment(response) and "Studio shot.jpg" in response.content.decode()
    portrait.refresh_from_db()
    assert portrait.name == "Studio shot.jpg"
    bad = client.post(url, {"name": "   "}, headers=HTMX)
    assert bad.status_code == 200 and "Give the file a name." in bad.content.decode()
    page = client.get(url).content.decode()
    assert "<html" in page and f'id="rename-{portrait.code}"' in page  # the no-JS page
    response = client.post(url, {"name": "Plain.jpg"})
    assert response.status_code == 302 and response["Location"] == reverse("jobs:library") + "?p=1"


def test_delete_only_unused_files(client, owner, done, tmp_path, team):
    spare = asset_store(
        team=team, user=owner, valid=validate_audio(make_audio_file(tmp_path / "s.wav", 2.5))
    )
    login(client, owner)
    refused = client.post(reverse("jobs:asset-delete", args=[done.audio.code]), headers=HTMX)
    assert refused.status_code == 200 and "cannot be deleted" in refused.content.decode()
    assert Asset.objects.filter(pk=done.audio.pk).exists()
    gone = client.post(reverse("jobs:asset-delete", args=[spare.code]), headers=HTMX)
    assert gone.status_code == 200
    # Nothing takes the tile's place; the section's count follows out of band.
    body = gone.content.decode().strip()
    assert body == '<span class="count-pill" id="voiceovers-count" hx-swap-oob="true">1</span>'
    assert not Asset.objects.filter(pk=spare.pk).exists()
    page = client.get(reverse("jobs:library")).content.decode()
    assert '<span class="count-pill" id="voiceovers-count">1</span>' in page


def test_thumbnails_are_small_cached_and_revalidated(client, owner, team, media_root):
    big = make_portrait_bytes((1600, 2000))
    path = Path(media_root.parent / "big.jpg")
    path.write_bytes(big)
    asset = asset_store(team=team, user=owner, valid=validate_portrait(path))
    login(client, owner)
    url = reverse("jobs:asset-thumb", args=[asset.code])
    response = client.get(url)
    image = Image.open(io.BytesIO(response.content))
    assert response["Content-Type"] == "image/jpeg" and max(image.size) == THUMB_SIZE
    assert len(response.content) < len(big) / 4
    assert list((media_root / "thumbs").rglob("*.jpg"))  # kept for next time
    again = client.get(url, headers={"If-None-Match": response["ETag"]})
    assert again.status_code == 304


def test_two_first_requests_for_a_thumbnail_leave_one_file(
    client, owner, portrait, media_root, monkeypatch
):
    login(client, owner)
    url = reverse("jobs:asset-thumb", args=[portrait.code])
    assert client.get(url).status_code == 200
    # The second request checked before the first had saved: both make and save one.
    storage = type(default_storage._wrapped)
    real_exists, asked = storage.exists, []

    def too_early(self, name: str) -> bool:  # noqa: ANN001
        asked.append(name)
        return False if len(asked) == 1 else real_exists(self, name)

    monkeypatch.setattr(storage, "exists", too_early)
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert len(list((media_root / "thumbs").rglob("*.jpg"))) == 1


def test_a_thumbnail_still_being_written_is_not_served_half_done(
    client, owner, portrait, media_root
):
    login(client, owner)
    url = reverse("jobs:asset-thumb", args=[portrait.code])
    whole = client.get(url).content
    (stored,) = (media_root / "thumbs").rglob("*.jpg")
    stored.write_bytes(whole[: len(whole) // 2])  # as another request is writing it
    served = client.get(url).content
    assert served == whole and Image.open(io.BytesIO(served)).size == (384, 480)


def test_library_queries_do_not_grow(
    client, owner, team, done, tmp_path, django_assert_max_num_queries
):
    login(client, owner)
    for i in range(6):
        path = make_audio_file(tmp_path / f"a{i}.wav", 2.0 + i / 10)
        asset_store(team=team, user=owner, valid=validate_audio(path))
    # session, user, memberships, and a count and a page for each of the two lists
    with django_assert_max_num_queries(7):
        assert client.get(reverse("jobs:library")).status_code == 200


def test_a_long_library_comes_in_pages(client, owner, team, portrait, monkeypatch):
    monkeypatch.setattr("jobs.views.library.LIBRARY_PAGE", 2)
    voiceovers = [
        Asset.objects.create(
            team=team, kind=Asset.Kind.AUDIO, name=f"take-{i}.mp3", sha256=f"{i:064x}",
            file=f"assets/take-{i}.mp3", size=1, format="mp3", duration=1.0,
            created=timezone.now() - timedelta(minutes=i),
        )
        for i in range(5)
    ]  # fmt: skip
    login(client, owner)

    def shown(page: str) -> list[str]:
        return [a.name for a in voiceovers if f'id="asset-{a.code}"' in page]

    page = client.get(reverse("jobs:library")).content.decode()
    assert shown(page) == ["take-0.mp3", "take-1.mp3"]  # newest first
    assert '<span class="count-pill" id="voiceovers-count">5</span>' in page
    assert "Page 1 of 3" in page and "?v=2" in page and "Newer voice-overs" not in page
    assert f'id="asset-{portrait.code}"' in page and "Pages of portraits" not in page
    page = client.get(reverse("jobs:library"), {"v": 3}).content.decode()
    assert shown(page) == ["take-4.mp3"] and "Older voice-overs" not in page
    assert "?v=2" in page and f'id="asset-{portrait.code}"' in page
    # A page number from an old link past the end shows the last page, not an error.
    page = client.get(reverse("jobs:library"), {"v": 99, "p": "x"}).content.decode()
    assert shown(page) == ["take-4.mp3"]
    # Renaming a file on a later page: the form opens on its page, Cancel brings its tile
    # back, and without JavaScript the rename returns to that page.
    old = voiceovers[3]
    rename = reverse("jobs:asset-rename", args=[old.code])
    page = client.get(rename).content.decode()
    assert f'id="rename-{old.code}"' in page and "Page 2 of 3" in page
    tile = client.get(rename, {"cancel": "1"}, headers=HTMX).content.decode()
    assert f'id="asset-{old.code}"' in tile and "take-3.mp3" in tile
    assert 'class="rename"' not in tile
    response = client.post(rename, {"name": "Old take.mp3"})
    assert response.status_code == 302 and response["Location"].endswith("?v=2")


# --- error pages ---------------------------------------------------------------------------


def test_friendly_error_pages(client, owner, settings):
    login(client, owner)
    response = client.get(reverse("jobs:job-detail", args=["00000000-0000-0000-0000-000000000000"]))
    assert response.status_code == 404 and "Back to your jobs" in response.content.decode()
    assert "belongs to a team you are not in" in response.content.decode()
    from django.template.loader import render_to_string

    assert "Nothing you did caused this" in render_to_string("500.html")


def test_the_site_has_a_favicon_and_favicon_ico_is_no_404(client, owner):
    page = login(client, owner).get("/").content.decode()
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page
    found = finders.find("favicon.svg")
    assert found and Path(found).read_text().startswith("<svg")
    client.logout()  # browsers ask before (and without) logging in
    response = client.get("/favicon.ico")
    assert response.status_code == 302 and response["Location"] == "/static/favicon.svg"
