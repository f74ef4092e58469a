"""A member's batch, in a real Chromium at a desktop and a phone size: a spreadsheet and a ZIP
with one bad row, the row's problem shown, fixed, confirmed, watched to the end live, and the
report downloaded; then a row's job saved as a template, renamed and deleted. Every page is
checked by the Persona harness (console errors, CSP violations, failed requests, horizontal
overflow, axe-core)."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from jobs.models import Batch, JobTemplate
from tests.helpers import (
    ARGS,
    BROWSER,
    CHROMIUM,
    make_audio_file,
    make_portrait_bytes,
    playwright_session,
)
from tests.test_journeys import SIZES, TIMEOUT_MS, Persona

pytestmark = [*BROWSER, pytest.mark.slow]

HEADER = "name,portrait,audio,prompt,mode"
GOOD = ["Welcome Ana,face.jpg,voice.mp3,smile,draft", "Welcome Ben,face.jpg,voice.mp3,nod,draft"]


@pytest.fixture
def batch_files(tmp_path: Path) -> dict[str, Path]:
    voice = make_audio_file(tmp_path / "voice.mp3", 2.5)
    archive = tmp_path / "files.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("face.jpg", make_portrait_bytes())
        z.write(voice, "voice.mp3")
    rows = tmp_path / "welcome.csv"
    rows.write_text("\n".join([HEADER, *GOOD, "Welcome Cy,cy.jpg,voice.mp3,wave,draft"]) + "\n")
    return {"csv": rows, "zip": archive}


@pytest.mark.parametrize("size", list(SIZES), ids=list(SIZES))
def test_member_batch_journey(
    size, live_server, worker, owner, teammate, team, batch_files, monkeypatch, tmp_path, axe
):
    problems: list[str] = []
    with playwright_session(monkeypatch) as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        bob = Persona.open(browser, "member", live_server.url, SIZES[size], problems, axe)
        bob.log_in("bob", "bob-pass-1")
        with bob.page.expect_navigation():
            bob.page.select_option("#team-switch", value=str(team.code))
        bob.check()
        bob.click("main a:has-text('New batch')", wait_url=re.compile(r"/batches/new/$"))

        # One bad row: its portrait is not in the ZIP.
        bob.page.set_input_files("#id_rows_file", str(batch_files["csv"]))
        bob.page.set_input_files("#id_archive", str(batch_files["zip"]))
        bob.click("button:has-text('Check the batch')", wait_url=re.compile(r"/batches/new/$"))
        problem = bob.page.locator("#bad-row-3").inner_text()
        assert "“cy.jpg” is neither in the ZIP" in problem, problem
        assert Batch.objects.count() == 0

        # Fixed in the box the rows came back in, with a row spoken from a script; the ZIP
        # chosen again.
        fixed = "\n".join(
            [
                HEADER + ",script",
                *(row + "," for row in GOOD),
                "Welcome Cy,face.jpg,voice.mp3,wave,draft,",
                "Welcome Di,face.jpg,,wave,draft,Hello Di and welcome to the team. Glad you came.",
            ]
        )
        bob.page.fill("#id_rows", fixed)
        bob.page.set_input_files("#id_archive", str(batch_files["zip"]))
        bob.click("button:has-text('Check the batch')", wait_url=re.compile(r"/batches/new/$"))
        assert "draft" in bob.page.locator("#batch-quota").inner_text()
        bob.click("button:has-text('Queue 4 jobs')", wait_url=re.compile(r"/batches/[0-9a-f-]+/$"))
        batch = Batch.objects.get()  # the worker speaks the script, then queues all four

        # The page follows the batch to its end without a reload.
        bob.page.evaluate("window.__sameDocument = true")
        bob.page.locator("#batch-finished").wait_for(timeout=TIMEOUT_MS * 2)
        bob.check()
        assert bob.page.evaluate("window.__sameDocument") is True
        assert "4 done" in bob.page.locator("#batch-counts").inner_text()
        assert bob.page.locator("#batch-live[hx-get]").count() == 0  # polling stopped
        assert batch.jobs.count() == 4

        with bob.page.expect_download() as download:
            bob.page.click("#batch-report")
        report = Path(download.value.path()).read_text()
        assert report.count("succeeded") == 4 and "Welcome Cy" in report
        bob.check()

        # One share link per video, handed over in a CSV; someone without an account opens one.
        bob.page.click("#batch-share summary")
        bob.page.select_option("#id_expires_in", "7")
        with bob.page.expect_download() as download:
            bob.page.click("#batch-share button[type=submit]")
        links = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
        assert len(links) == 4 and all(row["share"] for row in links)
        bob.check()
        visitor = Persona.open(browser, "visitor", live_server.url, SIZES[size], problems, axe)
        visitor.goto(urlsplit(links[3]["share"]).path)
        assert "Welcome Di" in visitor.page.locator("h1").inner_text()
        visitor.page.context.close()

        # A row's job kept as a template, renamed and deleted from the New batch page, with
        # plain forms (no JavaScript needed); the batch and its jobs stay.
        bob.click("#row-1 a", wait_url=re.compile(r"/jobs/[0-9a-f-]+/$"))
        bob.click("#save-template", wait_url=re.compile(r"/jobs/[0-9a-f-]+/$"))
        template = JobTemplate.objects.get(name="Welcome Ana")
        bob.goto("/batches/new/")
        bob.click(
            f"#template-{template.code} a:has-text('Rename')", wait_url=re.compile(r"/rename/$")
        )
        bob.page.fill("#template-name", "Welcome (renamed)")
        bob.click("#confirm-rename", wait_url=re.compile(r"/batches/new/$"))
        assert "Welcome (renamed)" in bob.page.locator(f"#template-{template.code}").inner_text()
        bob.click(
            f"#template-{template.code} a:has-text('Delete')", wait_url=re.compile(r"/delete/$")
        )
        bob.click("#confirm-delete", wait_url=re.compile(r"/batches/new/$"))
        assert bob.page.locator(f"#template-{template.code}").count() == 0
        assert not JobTemplate.objects.exists() and batch.jobs.count() == 4
        browser.close()
    assert problems == []
