"""`manage.py generate_avatar`: checks every input first, creates nothing on error."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from jobs.ffmpeg import probe
from jobs.models import Asset, AvatarJob
from tests.helpers import make_audio_file

pytestmark = pytest.mark.django_db


def run(*args: str):
    return call_command("generate_avatar", *args)


def test_invalid_input_lists_every_problem_and_creates_nothing(owner, tmp_path, capsys):
    small = tmp_path / "small.png"
    from tests.helpers import make_portrait_bytes

    small.write_bytes(make_portrait_bytes((299, 400), "PNG"))
    short = make_audio_file(tmp_path / "short.mp3", 1.5)
    with pytest.raises(CommandError) as exc:
        run("--user", "alice", "--image", str(small), "--audio", str(short), "--prompt", "x" * 2501)
    assert exc.value.returncode == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("--image: ") and "299" in lines[0]
    assert lines[1].startswith("--audio: ") and "at least 2 seconds" in lines[1]
    assert lines[2].startswith("--prompt: ") and "limit is 2,500" in lines[2]
    assert AvatarJob.objects.count() == 0 and Asset.objects.count() == 0


def test_unknown_user_and_missing_files(db, tmp_path, capsys):
    with pytest.raises(CommandError) as exc:
        run(
            "--user",
            "nobody",
            "--image",
            str(tmp_path / "no.jpg"),
            "--audio",
            str(tmp_path / "no.mp3"),
        )
    assert exc.value.returncode == 2
    err = capsys.readouterr().err
    assert "there is no account named 'nobody'" in err
    assert "no.jpg does not exist" in err and "no.mp3 does not exist" in err


def test_kling_mode_without_a_key_is_refused(owner, portrait_path, audio_path, capsys, settings):
    settings.KLING_API_KEY = settings.KLING_ACCESS_KEY = settings.KLING_SECRET_KEY = ""
    with pytest.raises(CommandError):
        run(
            "--user",
            "alice",
            "--image",
            str(portrait_path),
            "--audio",
            str(audio_path),
            "--mode",
            "std",
        )
    assert "--mode: std needs a Kling key" in capsys.readouterr().err
    assert AvatarJob.objects.count() == 0


def test_creates_the_job_and_prints_its_url(owner, team, portrait_path, audio_path, capsys):
    run(
        "--user",
        "alice",
        "--image",
        str(portrait_path),
        "--audio",
        str(audio_path),
        "--prompt",
        "nod",
    )
    job = AvatarJob.objects.get()
    assert capsys.readouterr().out.strip().endswith(job.get_absolute_url())
    assert (job.team, job.prompt, job.mode, job.status) == (team, "nod", "draft", "queued")


@pytest.mark.slow
def test_draft_wait_succeeds_through_a_real_worker(
    worker, owner, portrait_path, audio_path, capsys
):
    run(
        "--user",
        "alice",
        "--image",
        str(portrait_path),
        "--audio",
        str(audio_path),
        "--wait",
        "--timeout",
        "120",
    )
    out = capsys.readouterr().out.strip().splitlines()
    job = AvatarJob.objects.get()
    assert job.status == AvatarJob.Status.SUCCEEDED
    assert out[-1] == f"succeeded {job.video.path}"
    info = probe(Path(job.video.path))
    assert info and info.duration == pytest.approx(3.0, abs=0.1)


def test_wait_gives_up_with_a_hint_when_no_worker_runs(owner, portrait_path, audio_path, capsys):
    with pytest.raises(CommandError) as exc:
        run(
            "--user",
            "alice",
            "--image",
            str(portrait_path),
            "--audio",
            str(audio_path),
            "--wait",
            "--timeout",
            "1",
        )
    assert exc.value.returncode == 1
    assert "Is the worker running" in str(exc.value)
    assert "queued (still running after 1 s)" in capsys.readouterr().out
