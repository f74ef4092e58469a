"""The voice-over pages: writing a voice-over on the new-job page and in the library, the voices'
samples, and a pasted Kling audio id. Offline voices are real eSpeak NG; Kling is the simulator
over loopback HTTP."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.files.storage import default_storage
from django.urls import reverse

from jobs import tasks
from jobs.kling.simulator import KlingSimulator
from jobs.media.audio import validate_audio
from jobs.media.portraits import validate_portrait
from jobs.models import Asset, AvatarJob, Team
from jobs.services.assets import asset_store
from jobs.voices import LANGUAGES, VOICES
from tests.helpers import (
    ARGS,
    CHROMIUM,
    CSP_LISTENER,
    csp_violations,
    login,
    make_audio_file,
    playwright_session,
    simulated_kling,
    watch_errors,
)

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
SCRIPT = (
    "Good morning everyone. Today we look at three simple ways to make your small garden "
    "greener and brighter this spring."
)
WRITE_FOR_JOB = reverse("jobs:voiceover-new") + "?for=job"
WRITE_FOR_LIBRARY = reverse("jobs:voiceover-new") + "?for=library"
AUDIO_ID = "860123456789012345"


@pytest.fixture(autouse=True)
def no_kling(settings):
    """No Kling key unless a test starts the simulator: voice-overs are read offline."""
    settings.KLING_API_KEY = settings.KLING_ACCESS_KEY = settings.KLING_SECRET_KEY = ""


@pytest.fixture
def sim(settings):
    with simulated_kling(settings, http_timeout=10) as simulator:
        yield simulator


def tts_calls(sim: KlingSimulator) -> int:
    return sim.snapshot()["requests_by_endpoint"].get("tts", 0)


@pytest.fixture
def portrait(team, owner, portrait_path) -> Asset:
    return asset_store(team=team, user=owner, valid=validate_portrait(portrait_path))


@pytest.fixture
def recording(team, owner, tmp_path) -> Asset:
    """A voice-over uploaded to alice's team."""
    path = make_audio_file(tmp_path / "alice.mp3", 2.5)
    return asset_store(team=team, user=owner, valid=validate_audio(path))


def write(client, url: str = WRITE_FOR_JOB, *, htmx: bool = True, **fields: str):
    data = {"script": SCRIPT, "voice": "calm_story1", "speed": "1.0", "mode": "draft", **fields}
    return client.post(url, data, headers=HTMX if htmx else {})


def stored_files(media_root: Path) -> list[Path]:
    return [path for path in media_root.rglob("*") if path.is_file()]


# --- the writer on the pages -------------------------------------------------------------------


def test_the_new_job_page_offers_every_voice_grouped_by_language(client, owner):
    html = login(client, owner).get(reverse("jobs:job-new")).content.decode()
    assert '<label for="vo-script">Script</label>' in html
    assert '<label for="vo-voice">Voice</label>' in html
    assert '<label for="vo-speed">Speed</label>' in html
    assert 'min="0.8" max="2.0" step="0.1"' in html
    for label in LANGUAGES.values():
        assert f'<optgroup label="{label}">' in html
    for voice in VOICES:
        assert f'value="{voice.id}" data-language="{LANGUAGES[voice.language]}"' in html
        assert f">{voice.name}</option>" in html
    assert 'data-voice-language><span class="visually-hidden">Language: </span>English<' in html
    assert "Listen" in html and "/voices/oversea_male1/sample.mp3" in html
    # The limit comes from KLING_MAX_AUDIO_SECONDS through the estimate.
    assert "up to about 4,500 characters of English or 1,350 of Chinese" in html
    assert "Offline voice (eSpeak): robotic, for drafts" in html
    assert "js/voiceover.js" in html
    # No Kling key: nothing to paste an audio id for.
    assert 'name="kling_audio_id"' not in html


def test_the_limit_shown_follows_the_setting(client, owner, settings):
    settings.KLING_MAX_AUDIO_SECONDS = 60
    html = login(client, owner).get(reverse("jobs:library")).content.decode()
    assert "up to about 900 characters of English or 270 of Chinese" in html
    assert "of 60 s</output>" in html


def test_the_library_offers_the_writer_to_members_only(client, owner, teammate, viewer, team):
    for user in (owner, teammate):
        html = login(client, user, team).get(reverse("jobs:library")).content.decode()
        assert "Write a voice-over" in html and 'action="/voiceovers/new/?for=library"' in html
    html = login(client, viewer, team).get(reverse("jobs:library")).content.decode()
    assert "Write a voice-over" not in html and 'name="script"' not in html


def test_anonymous_visitors_are_sent_to_log_in(client):
    urls = [WRITE_FOR_JOB, reverse("jobs:voice-sample", args=["uk_man2"])]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    response = write(client)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert not Asset.objects.exists()


def test_a_viewer_cannot_write_a_voiceover(client, viewer, team):
    login(client, viewer, team)
    assert write(client).status_code == 403
    assert write(client, htmx=False).status_code == 403
    assert write(client, WRITE_FOR_LIBRARY).status_code == 403
    assert not Asset.objects.exists()


def test_an_outsiders_voiceover_goes_to_their_own_team(client, outsider, team, recording):
    login(client, outsider)
    # Alice's voice-over, posted as the outsider's pick, is not shown to him.
    refused = write(client, script="", audio_asset=str(recording.code))
    assert refused.status_code == 200 and str(recording.code) not in refused.content.decode()
    made = write(client)
    asset = Asset.objects.get(script=SCRIPT)
    assert asset.team == Team.objects.get(memberships__user=outsider, personal=True)
    assert f'value="{asset.code}"' in made.content.decode()
    assert not Asset.objects.for_team(team).filter(script=SCRIPT).exists()


# --- checked before anything is made ----------------------------------------------------------


@pytest.mark.parametrize("htmx", [True, False])
def test_a_too_long_script_says_how_much_to_cut_and_nothing_is_made(
    client, owner, settings, media_root, monkeypatch, htmx
):
    settings.KLING_MAX_AUDIO_SECONDS = 20
    monkeypatch.setattr(
        "jobs.services.voiceovers.synthesize", lambda *a, **k: pytest.fail("synthesized")
    )
    response = write(login(client, owner), htmx=htmx, script=SCRIPT * 4)
    assert response.status_code == 200
    html = response.content.decode()
    cut = re.search(r"Cut about (\d+) characters", html)
    assert cut and 0 < int(cut[1]) < len(SCRIPT) * 4
    assert 'id="vo-script-errors" role="alert"' in html  # next to the script
    assert SCRIPT * 4 in html  # the script stays, to be cut
    assert not Asset.objects.exists() and stored_files(media_root) == []


def test_every_problem_is_shown_next_to_its_field(client, owner):
    html = write(login(client, owner), script="", voice="nobody", speed="2.5").content.decode()
    assert re.search(r'id="vo-script-errors".*The script is empty', html, re.S)
    assert re.search(r'id="vo-voice-errors".*not one of Kling', html, re.S)
    assert re.search(r'id="vo-speed-errors".*Speed 2.5 is not allowed', html, re.S)
    html = write(client, speed="fast").content.decode()
    assert "Speed must be a number from 0.8 to 2.0" in html
    assert not Asset.objects.exists()


# --- new job: a voice-over from text, then a video ---------------------------------------------


def test_an_offline_voiceover_becomes_the_voiceover_of_a_draft_video(client, owner, portrait):
    response = write(login(client, owner), voice="calm_story1", speed="1.1")
    assert response.status_code == 200
    asset = Asset.objects.get(kind=Asset.Kind.AUDIO)
    assert asset.script == SCRIPT and asset.voice_id == "calm_story1"
    assert asset.voice_speed == 1.1 and asset.kling_audio_id == ""
    assert 3 <= asset.duration <= 12
    html = response.content.decode()
    # The voice-over field comes back with the new voice-over picked, as after a file check.
    assert html.lstrip().startswith('<fieldset class="file-field has-pick" id="field-audio">')
    assert f'value="{asset.code}" id="pick-{asset.code}" checked' in html
    assert "offline voice" in html and "chose it as the voice-over" in html

    created = client.post(
        reverse("jobs:job-new"),
        {"portrait_asset": portrait.code, "audio_asset": asset.code, "mode": "draft"},
    )
    assert created.status_code == 302
    job = AvatarJob.objects.get()
    assert job.audio == asset
    tasks.advance_job(job.pk)
    job.refresh_from_db()
    assert job.status == AvatarJob.Status.SUCCEEDED, job.error_message
    assert job.video and job.duration == pytest.approx(asset.duration, abs=0.5)


def test_without_javascript_the_whole_form_comes_back_with_the_voiceover(client, owner, portrait):
    response = write(
        login(client, owner),
        htmx=False,
        portrait_asset=str(portrait.code),
        prompt="smiles and nods",
        mode="draft",
    )
    assert response.status_code == 302
    asset = Asset.objects.get(kind=Asset.Kind.AUDIO)
    url = urlsplit(response["Location"])
    assert url.path == reverse("jobs:job-new")
    assert parse_qs(url.query) == {
        "audio": [str(asset.code)],
        "portrait": [str(portrait.code)],
        "mode": ["draft"],
        "prompt": ["smiles and nods"],
    }
    html = client.get(response["Location"]).content.decode()
    assert f'value="{asset.code}" id="pick-{asset.code}" checked' in html
    assert f'value="{portrait.code}" id="pick-{portrait.code}" checked' in html
    assert ">smiles and nods</textarea>" in html
    assert f"Made {asset.name}" in html


def test_without_javascript_problems_are_shown_on_a_page_of_their_own(client, owner, portrait):
    response = write(login(client, owner), htmx=False, script="", portrait_asset=portrait.code)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>Write a voice-over</h1>" in html and "The script is empty" in html
    # The portrait picked on the new-job form rides along.
    assert f'<input type="hidden" name="portrait_asset" value="{portrait.code}">' in html
    assert '<input type="hidden" name="mode" value="draft">' in html


@pytest.mark.parametrize(("mode", "from_kling"), [("draft", False), ("std", True)])
def test_drafts_are_read_offline_and_kling_jobs_by_kling(client, owner, sim, mode, from_kling):
    html = login(client, owner).get(reverse("jobs:job-new")).content.decode()
    assert "Draft mode, so the offline voice (eSpeak) reads it: robotic" in html
    assert write(client, mode=mode).status_code == 200
    asset = Asset.objects.get(kind=Asset.Kind.AUDIO)
    assert bool(asset.kling_audio_id) is from_kling
    assert tts_calls(sim) == (1 if from_kling else 0)


def test_a_voiceover_written_again_says_it_was_reused_not_made(client, owner):
    first = write(login(client, owner)).content.decode()
    assert "✓ Made <strong>" in first and "Reused" not in first
    again = write(client).content.decode()  # the same script, voice and speed
    assert Asset.objects.filter(kind=Asset.Kind.AUDIO).count() == 1
    assert "✓ Reused from your library: <strong>" in again and "✓ Made" not in again
    library = write(client, WRITE_FOR_LIBRARY).content.decode()
    assert "✓ Reused from your library: <strong>" in library
    write(client, htmx=False)
    page = client.get(reverse("jobs:job-new")).content.decode()
    assert "Reused from your library:" in page


# --- library -----------------------------------------------------------------------------------


def test_a_voiceover_written_in_the_library_is_added_to_the_list(client, owner):
    response = write(login(client, owner), WRITE_FOR_LIBRARY, voice="AOT")
    assert response.status_code == 200
    asset = Asset.objects.get(kind=Asset.Kind.AUDIO)
    assert asset.voice_id == "AOT" and asset.script == SCRIPT
    html = response.content.decode()
    assert 'hx-swap-oob="afterbegin:#voiceover-list"' in html
    assert f'id="asset-{asset.code}"' in html
    assert '<span class="count-pill" id="voiceovers-count" hx-swap-oob="true">1</span>' in html
    assert "Read by Ace (English)" in html
    # The writer comes back empty for the next script, with the same voice.
    assert "></textarea>" in html and 'value="AOT" data-language="English"' in html

    # Without JavaScript: back to the library, at the new voice-over.
    again = write(client, WRITE_FOR_LIBRARY, htmx=False, voice="uk_man2", speed="1.3")
    newest = Asset.objects.filter(kind=Asset.Kind.AUDIO).exclude(pk=asset.pk).get()
    assert again.status_code == 302
    assert again["Location"] == f"{reverse('jobs:library')}#asset-{newest.code}"
    page = client.get(reverse("jobs:library")).content.decode()
    assert f"Made {newest.name}" in page
    assert "Read by Crag (English) at speed 1.3" in page


# --- voice samples -----------------------------------------------------------------------------


def test_a_voice_sample_is_made_once_then_reused(client, owner, monkeypatch):
    url = reverse("jobs:voice-sample", args=["uk_man2"])
    first = login(client, owner).get(url)
    assert first.status_code == 200 and first["Content-Type"] == "audio/mpeg"
    body = b"".join(first.streaming_content)
    assert body[:3] == b"ID3" or body[:2] in (b"\xff\xfb", b"\xff\xf3")
    name = "voice-samples/espeak/uk_man2.mp3"
    made = default_storage.get_modified_time(name)

    monkeypatch.setattr(
        "jobs.tts.synth.espeak_wav", lambda *a, **k: pytest.fail("synthesized again")
    )
    second = client.get(url)
    assert second.status_code == 200 and b"".join(second.streaming_content) == body
    assert default_storage.get_modified_time(name) == made
    ranged = client.get(url, headers={"Range": "bytes=0-99"})  # Safari plays by ranges
    assert ranged.status_code == 206 and ranged["Content-Range"] == f"bytes 0-99/{len(body)}"


def test_the_offline_sample_can_be_asked_for_when_kling_is_configured(client, owner, sim):
    url = reverse("jobs:voice-sample", args=["AOT"]) + "?offline=1"
    assert login(client, owner).get(url)["Content-Type"] == "audio/mpeg"
    assert default_storage.exists("voice-samples/espeak/AOT.mp3")
    assert tts_calls(sim) == 0


def test_an_unknown_voice_has_no_sample(client, owner):
    login(client, owner)
    for voice_id in ("nobody", "..", "AOT.mp3", "aot"):
        assert client.get(reverse("jobs:voice-sample", args=[voice_id])).status_code == 404


# --- a pasted Kling audio id -------------------------------------------------------------------


def new_job_with_audio_id(client, portrait: Asset, mode: str, audio_id: str = AUDIO_ID):
    data = {"portrait_asset": portrait.code, "kling_audio_id": audio_id, "mode": mode}
    return client.post(reverse("jobs:job-new"), data)


def test_a_pasted_audio_id_is_refused_for_a_draft(client, owner, portrait):
    response = new_job_with_audio_id(login(client, owner), portrait, "draft")
    assert response.status_code == 200
    assert "A draft is rendered on this server and needs the voice-over as a file" in (
        response.content.decode()
    )
    assert not AvatarJob.objects.exists()


def test_a_pasted_audio_id_must_look_like_one(client, owner, portrait, sim):
    login(client, owner)
    html = new_job_with_audio_id(client, portrait, "std", "https://x.test/a.mp3").content.decode()
    assert "That is a link, not an audio id" in html
    assert 'id="id_kling_audio_id"' in html and 'aria-invalid="true"' in html
    assert '<a href="#id_kling_audio_id">' in html  # the error summary points at it
    assert not AvatarJob.objects.exists()


def test_a_std_job_can_use_a_pasted_audio_id_and_no_file(client, owner, portrait, sim):
    html = login(client, owner).get(reverse("jobs:job-new")).content.decode()
    assert 'name="kling_audio_id"' in html and "the job will ask you for the file" in html
    response = new_job_with_audio_id(client, portrait, "std", f" {AUDIO_ID} ")
    assert response.status_code == 302, response.content.decode()[:2000]
    job = AvatarJob.objects.get()
    assert job.kling_audio_id == AUDIO_ID and job.audio is None and job.mode == "std"
    # Duplicating the job keeps the pasted id.
    again = client.get(reverse("jobs:job-new") + f"?from={job.code}").content.decode()
    assert f'value="{AUDIO_ID}"' in again


def test_a_job_with_a_pasted_audio_id_shows_on_its_pages(client, owner, portrait, sim):
    login(client, owner)
    new_job_with_audio_id(client, portrait, "std")
    job = AvatarJob.objects.get()
    assert AUDIO_ID in client.get(job.get_absolute_url()).content.decode()
    assert client.get(reverse("jobs:dashboard")).status_code == 200


# --- in a real browser -------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_writing_a_voiceover_in_a_real_browser(live_server, owner, portrait, monkeypatch):
    """The live estimate, the language that follows the voice, Listen, and Make: under the
    strict CSP, with no script errors."""
    if not CHROMIUM.exists():
        pytest.skip(f"no browser: {CHROMIUM} is missing")
    with playwright_session(monkeypatch) as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
        errors: list[str] = []
        watch_errors(page, errors)
        page.add_init_script(CSP_LISTENER)
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("#id_username", "alice")
        page.fill("#id_password", "alice-pass-1")
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/")

        page.goto(f"{live_server.url}/jobs/new/")
        page.click("#vo-writer summary")
        page.fill("#vo-script", SCRIPT)
        assert (
            page.locator("#vo-count").inner_text()
            == f"{len(SCRIPT)} characters · about 8 s of 300 s"
        )
        page.fill("#vo-speed", "2")
        assert page.locator("#vo-count").inner_text().endswith("about 4 s of 300 s")
        page.select_option("#vo-voice", "zhuxi_speech02")
        assert page.locator("#vo-language").inner_text().endswith("\n中文 (Chinese)")
        page.select_option("#vo-voice", "calm_story1")
        with page.expect_response(lambda r: "/sample.mp3" in r.url) as sample:
            page.click("[data-listen]")
        assert sample.value.url.endswith("/voices/calm_story1/sample.mp3?offline=1")
        assert sample.value.headers["content-type"] == "audio/mpeg"

        page.press("#vo-speed", "Enter")  # makes the voice-over, not the job
        page.locator("#vo-writer .vo-made").wait_for()
        assert not AvatarJob.objects.exists()
        asset = Asset.objects.get(kind=Asset.Kind.AUDIO)
        assert asset.voice_id == "calm_story1" and asset.voice_speed == 2.0
        assert page.locator(f"#pick-{asset.code}").is_checked()
        assert page.locator("#field-audio .preview .name").inner_text() == asset.name

        assert csp_violations(page) == [] and errors == []
        browser.close()
