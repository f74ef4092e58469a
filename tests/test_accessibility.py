"""What screen-reader and caption users get without a browser: captions (WebVTT) made from a
voice-over's script on the job page and the share page, and a job page's poll that announces a
new stage once rather than on every poll. The pages themselves are checked with axe-core in
Chromium (tests/test_a11y_browser.py and the journeys)."""

from __future__ import annotations

import re

import pytest

from jobs.models import Asset, AvatarJob
from jobs.services.sharing import share_create
from jobs.tts.script import captions_vtt
from tests.helpers import HTMX, login

pytestmark = pytest.mark.django_db

SCRIPT = "Hello from Acme. This is our new studio, made for the whole team!"
CUE = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3}) --> (\d\d:\d\d:\d\d\.\d{3})$", re.MULTILINE)


def scripted(job: AvatarJob) -> AvatarJob:
    Asset.objects.filter(pk=job.audio_id).update(script=SCRIPT)
    job.refresh_from_db()
    return job


def test_captions_are_one_cue_a_sentence_spread_over_the_length() -> None:
    vtt = captions_vtt(SCRIPT, duration=6.0)
    assert vtt.startswith("WEBVTT\n")
    assert "Hello from Acme.\n" in vtt
    assert "This is our new studio, made for the whole team!\n" in vtt
    times = CUE.findall(vtt)
    assert times[0][0] == "00:00:00.000" and times[-1][1] == "00:00:06.000"
    assert times[0][1] == times[1][0]  # back to back, no gap and no overlap


def test_a_long_sentence_is_cut_into_cues_that_fit_on_screen() -> None:
    vtt = captions_vtt("word " * 60 + "end.", duration=20)
    lines = [line for line in vtt.splitlines()[2:] if line and not CUE.match(line)]
    assert len(lines) > 2
    assert all(len(line) <= 84 for line in lines)
    assert " ".join(lines) == ("word " * 60 + "end.").strip()


def test_no_script_no_cues() -> None:
    assert captions_vtt("", duration=5) == "WEBVTT\n"
    assert CUE.findall(captions_vtt("Hi there.", duration=None)) == []


def test_a_video_from_a_script_has_a_captions_track(client, owner, done) -> None:
    scripted(done)
    login(client, owner)
    page = client.get(done.get_absolute_url()).content.decode()
    url = f"/jobs/{done.code}/captions.vtt"
    assert f'<track kind="captions" src="{url}"' in page
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/vtt")
    assert "Hello from Acme." in response.content.decode()


def test_a_video_from_an_uploaded_recording_has_no_track(client, owner, done) -> None:
    login(client, owner)
    assert "<track" not in client.get(done.get_absolute_url()).content.decode()


def test_the_share_page_carries_the_captions_too(client, owner, done) -> None:
    scripted(done)
    _, token = share_create(job=done, by=owner)
    page = client.get(f"/s/{token}/").content.decode()
    assert f'src="/s/{token}/captions.vtt"' in page
    response = client.get(f"/s/{token}/captions.vtt")
    assert response.status_code == 200
    assert "This is our new studio" in response.content.decode()
    assert client.get("/s/not-a-token/captions.vtt").status_code == 404


def test_the_job_page_announces_a_new_stage_once(client, owner, queued) -> None:
    login(client, owner)
    url = queued.get_absolute_url()
    assert f'hx-get="{url}?shown=queued"' in client.get(url).content.decode()
    same = client.get(f"{url}?shown=queued", headers=HTMX).content.decode()
    assert 'id="announcer"' not in same
    AvatarJob.objects.filter(pk=queued.pk).update(status=AvatarJob.Status.PROCESSING)
    changed = client.get(f"{url}?shown=queued", headers=HTMX).content.decode()
    assert re.search(r'<div id="announcer" hx-swap-oob="innerHTML">[^<]+\.</div>', changed)
