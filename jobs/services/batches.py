"""Batches: many jobs from one spreadsheet, checked in full before anything is queued.

The flow, in three steps, each a function here:

1. `batch_check` reads the rows (CSV) and the optional ZIP of portraits and recordings and
   judges every row with the very checks a single job gets (validate_portrait, validate_audio,
   validate_prompt, check_script, check_mode, clean_job_name), plus what only a batch can get
   wrong: a file neither in the ZIP nor in the library, a {placeholder} without its column,
   two rows with one name, the team's monthly seconds. Each distinct ZIP member is validated
   once, however many rows name it; library files are looked up in one query. Nothing is
   stored, synthesized or queued: a refused batch leaves no row and no file behind.
2. `batch_store_files` puts the ZIP files the passing rows use into the team's library (stored
   once by checksum, as every upload is) and returns the plan: plain data, so the confirmation
   page can carry it signed.
3. `batch_create` (jobs/services/batch_jobs.py) makes the Batch and its jobs, and follows it.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.utils import timezone

from jobs.media.archives import Member, SafeZip
from jobs.media.audio import ValidAudio, validate_audio
from jobs.media.limits import AUDIO_MAX_BYTES, PORTRAIT_MAX_BYTES, MediaError
from jobs.media.portraits import ValidPortrait, validate_portrait
from jobs.media.prompts import validate_prompt
from jobs.models import Asset, AvatarJob, JobTemplate, Team
from jobs.services.assets import asset_store
from jobs.services.jobs import check_mode, clean_job_name
from jobs.services.quotas import seconds_used
from jobs.services.units import check_batch_budget
from jobs.tts.script import check_script, estimate_seconds, normalize_script
from jobs.voices import VOICES, get_voice

MAX_ROWS = 500
CSV_MAX_BYTES = 2 * 1024 * 1024
COLUMNS = ("name", "portrait", "audio", "script", "voice", "speed", "prompt", "mode")
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
DEFAULT_VOICE = VOICES[0].id  # the voice-over form's default too

Status = AvatarJob.Status


@dataclass
class RowCheck:
    """One spreadsheet row: what it asks for, resolved, and everything wrong with it."""

    number: int  # 1 = the first row under the header
    name: str = ""
    mode: str = AvatarJob.Mode.DRAFT
    prompt: str = ""
    portrait_ref: str = ""
    audio_ref: str = ""
    script: str = ""
    voice: str = ""
    speed: float = 1.0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    portrait: Asset | ValidPortrait | None = None
    audio: Asset | ValidAudio | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def voiceover_label(self) -> str:
        """The recording's name, or "script, read by Anchor (oversea_male1) at 1.2×"."""
        if self.audio_ref or not self.script:
            return self.audio_ref
        voice = get_voice(self.voice)
        who = f"{voice.name} ({self.voice})" if voice else self.voice
        speed = f" at {self.speed:g}×" if self.speed != 1.0 else ""
        return f"script, read by {who}{speed}"


@dataclass
class ModeNeed:
    """The seconds of one mode the batch needs, against what the team has left this month."""

    mode: str
    seconds: float
    left: float | None  # None: no limit
    limit: int | None


@dataclass
class BatchCheck:
    rows: list[RowCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # about the files as a whole
    needs: list[ModeNeed] = field(default_factory=list)

    @property
    def bad_rows(self) -> list[RowCheck]:
        return [row for row in self.rows if not row.ok]

    @property
    def good_rows(self) -> list[RowCheck]:
        return [row for row in self.rows if row.ok]

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.rows) and not self.bad_rows

    @property
    def usable(self) -> bool:
        """Whether dropping the bad rows leaves something to make."""
        return not self.problems and bool(self.good_rows)

    def lines(self) -> list[str]:
        """Every problem as one line, for the command."""
        out = list(self.problems)
        for row in self.bad_rows:
            out.extend(f"row {row.number}: {problem}" for problem in row.problems)
        return out


# --------------------------------------------------------------------------- reading the rows


def read_csv_upload(upload: Any) -> str:
    """An uploaded CSV as text (UTF-8, with or without Excel's BOM), refused past 2 MB."""
    data = upload.read(CSV_MAX_BYTES + 1)
    if len(data) > CSV_MAX_BYTES:
        raise ValidationError(
            f"The spreadsheet is larger than {CSV_MAX_BYTES // (1024 * 1024)} MB: a batch has "
            f"at most {MAX_ROWS} rows. Split it in two.",
            code="csv_size",
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError(
            "The spreadsheet is not UTF-8 text: save it as “CSV UTF-8” and upload that.",
            code="csv_encoding",
        ) from None


def parse_rows(
    text: str, *, portrait_given: bool = False
) -> tuple[list[dict[str, str]], list[str], list[str]]:
    """(rows, header, problems): rows as {column: value}; empty rows are skipped.

    `portrait_given`: a template supplies the portrait, so the column may be left out.
    """
    text = text.lstrip("\ufeff")
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    if first.count("\t") > max(first.count(","), first.count(";")):
        delimiter = "\t"
    try:
        table = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as exc:
        return [], [], [f"The spreadsheet cannot be read as CSV ({exc}): save it as CSV again."]
    table = [line for line in table if any(cell.strip() for cell in line)]
    if not table:
        return [], [], ["The spreadsheet is empty: give a header row and one row per video."]
    header = [cell.strip().lower() for cell in table[0]]
    problems = []
    for column, count in Counter(header).items():
        if count > 1 and column:
            problems.append(f"The column “{column}” appears {count} times: keep one.")
    if "portrait" not in header and not portrait_given:
        problems.append(
            "The spreadsheet has no “portrait” column: add one naming each row's photo (a file "
            "in the ZIP or a library file's name)."
        )
    body = table[1:]
    if not body:
        problems.append("The spreadsheet has a header but no rows: add one row per video.")
    if len(body) > MAX_ROWS:
        problems.append(
            f"The spreadsheet has {len(body):,} rows: a batch has at most {MAX_ROWS}. Split it."
        )
        body = body[:MAX_ROWS]
    rows = []
    for line in body:
        cells = [cell.strip() for cell in line] + [""] * max(len(header) - len(line), 0)
        rows.append({column: cells[i] for i, column in enumerate(header) if column})
    return rows, header, problems


# --------------------------------------------------------------------------- checking


class _Files:
    """Where rows' file references lead, each distinct file validated once."""

    def __init__(self, team: Team, archive: SafeZip | None, rows: list[dict[str, str]]) -> None:
        self.archive = archive
        self._checked: dict[tuple[str, str], ValidPortrait | ValidAudio | list[str]] = {}
        wanted: dict[str, set[str]] = {Asset.Kind.PORTRAIT: set(), Asset.Kind.AUDIO: set()}
        for row in rows:
            for column, kind in (("portrait", Asset.Kind.PORTRAIT), ("audio", Asset.Kind.AUDIO)):
                ref = row.get(column, "")
                if ref and (archive is None or archive.find(ref) is None):
                    wanted[kind].add(ref)
        self.library: dict[tuple[str, str], list[Asset]] = {}
        names = wanted[Asset.Kind.PORTRAIT] | wanted[Asset.Kind.AUDIO]
        if names:  # one query for every library file the rows name
            for asset in Asset.objects.for_team(team).filter(name__in=names):
                self.library.setdefault((asset.kind, asset.name), []).append(asset)

    def resolve(self, ref: str, kind: str) -> tuple[Any, list[str]]:
        """The Asset or validated upload `ref` names (None), and what is wrong with it."""
        member = self.archive.find(ref) if self.archive else None
        if member is not None:
            return self._validated(member, kind)
        found = self.library.get((kind, ref), [])
        if len(found) == 1:
            return found[0], []
        what = "portrait" if kind == Asset.Kind.PORTRAIT else "voice-over"
        if len(found) > 1:
            return None, [
                f"{len(found)} library {what}s are named “{ref}”: rename all but one in the "
                "Library, or put the file in the ZIP."
            ]
        where = "in the ZIP nor" if self.archive else "in a ZIP (none was uploaded) nor"
        return None, [f"“{ref}” is neither {where} a {what} in the team's library."]

    def _validated(self, member: Member, kind: str) -> tuple[Any, list[str]]:
        key = (member.name, kind)
        if key not in self._checked:
            assert self.archive is not None
            portrait = kind == Asset.Kind.PORTRAIT
            try:
                content = self.archive.read(
                    member, max_bytes=PORTRAIT_MAX_BYTES if portrait else AUDIO_MAX_BYTES
                )
                self._checked[key] = (validate_portrait if portrait else validate_audio)(content)
            except MediaError as exc:
                self._checked[key] = list(exc.messages)
        result = self._checked[key]
        return (None, result) if isinstance(result, list) else (result, [])


def _fill(text: str, row: dict[str, str], column: str, problems: list[str]) -> str:
    """`text` with each {placeholder} replaced by the row's cell of that column."""

    def value(match: re.Match[str]) -> str:
        key = match.group(1).lower()
        if key not in row:
            problems.append(
                f"{column}: the placeholder {{{match.group(1)}}} has no column: add a "
                f"“{key}” column, or take it out of the {column}."
            )
        elif not row[key]:
            problems.append(f"{column}: {{{match.group(1)}}} is empty in this row: fill it in.")
        return row.get(key, "")

    return PLACEHOLDER.sub(value, text)


def _messages(exc: ValidationError) -> list[str]:
    return [str(m) for m in exc.messages]


def _with_template(cells: dict[str, str], template: JobTemplate | None) -> dict[str, str]:
    """The row's cells, with what it leaves empty taken from the template (files apart)."""
    if template is None:
        return cells
    filled = dict(cells)
    if not filled.get("audio") and not filled.get("script") and template.audio is None:
        filled["script"] = template.script
    spoken = bool(filled.get("script"))  # a row bringing its own recording takes no voice
    for column, value in (
        ("prompt", template.prompt),
        ("mode", template.mode),
        ("voice", template.voice_id if spoken else ""),
        ("speed", str(template.voice_speed) if spoken and template.script else ""),
    ):
        if not filled.get(column) and value:
            filled[column] = value
    return filled


def _check_row(
    number: int, raw: dict[str, str], files: _Files, template: JobTemplate | None = None
) -> RowCheck:
    cells = _with_template(raw, template)
    row = RowCheck(number=number)
    problems = row.problems
    if cells.get("name"):
        try:
            row.name = clean_job_name(cells["name"])
        except ValidationError as exc:
            problems.extend(f"name: {m}" for m in _messages(exc))
    row.mode = (cells.get("mode") or AvatarJob.Mode.DRAFT).lower()
    try:
        check_mode(row.mode)
    except ValidationError as exc:
        problems.extend(f"mode: {m}" for m in _messages(exc))
    try:
        row.prompt = validate_prompt(_fill(cells.get("prompt", ""), cells, "prompt", problems))
    except ValidationError as exc:
        problems.extend(f"prompt: {m}" for m in _messages(exc))
    row.portrait_ref = cells.get("portrait", "")
    if not row.portrait_ref and template is not None and template.portrait is not None:
        row.portrait, row.portrait_ref = template.portrait, template.portrait.name
    elif not row.portrait_ref:
        problems.append("portrait: empty: name a photo in the ZIP or in the library.")
    else:
        portrait, found = files.resolve(row.portrait_ref, Asset.Kind.PORTRAIT)
        row.portrait = portrait
        problems.extend(f"portrait: {m}" for m in found)
    if not raw.get("audio") and not raw.get("script") and template and template.audio:
        row.audio, row.audio_ref = template.audio, template.audio.name
        row.seconds = float(template.audio.duration or 0)
        for column in ("voice", "speed"):
            if raw.get(column):
                problems.append(f"{column}: only used with a script, not with a recording.")
        return row
    _check_voiceover(row, cells, files)
    return row


def _check_voiceover(row: RowCheck, cells: dict[str, str], files: _Files) -> None:
    problems = row.problems
    row.audio_ref = cells.get("audio", "")
    script = cells.get("script", "")
    if row.audio_ref and script:
        problems.append("audio: give a recording or a script, not both: clear one of them.")
        return
    if not row.audio_ref and not script:
        problems.append(
            "audio: no voice-over: name a recording (in the ZIP or the library) or write a script."
        )
        return
    if row.audio_ref:
        for column in ("voice", "speed"):
            if cells.get(column):
                problems.append(f"{column}: only used with a script, not with a recording.")
        audio, found = files.resolve(row.audio_ref, Asset.Kind.AUDIO)
        row.audio = audio
        problems.extend(f"audio: {m}" for m in found)
        if audio is not None:
            row.seconds = float(audio.duration or 0)
        return
    row.script = normalize_script(_fill(script, cells, "script", problems))
    row.voice = cells.get("voice") or DEFAULT_VOICE
    try:
        row.speed = float(cells.get("speed") or 1.0)
    except ValueError:
        problems.append(
            f"speed: “{cells['speed']}” is not a number: write one from 0.8 to 2.0, such as 1.2."
        )
        return
    try:
        check_script(row.script, voice_id=row.voice, speed=row.speed)
    except ValidationError as exc:
        for error in exc.error_list:
            column = {"no_voice": "voice", "unknown_voice": "voice", "bad_speed": "speed"}.get(
                error.code or "", "script"
            )
            problems.extend(f"{column}: {m}" for m in error.messages)
    row.seconds = estimate_seconds(row.script, row.speed) if row.script else 0.0


def _check_names(rows: list[RowCheck]) -> None:
    first: dict[str, int] = {}
    for row in rows:
        if not row.name:
            continue  # job_create names it from its prompt or script
        key = row.name.casefold()
        if key in first:
            row.problems.append(
                f"name: “{row.name}” is also row {first[key]}'s name: give each video its own."
            )
        else:
            first[key] = row.number


def _check_quota(team: Team, rows: list[RowCheck]) -> list[ModeNeed]:
    """Each mode's seconds against what is left; rows past the limit are refused, in order."""
    needs = []
    for mode in AvatarJob.Mode.values:
        in_mode = [row for row in rows if row.mode == mode]
        if not in_mode:
            continue
        limit = team.quota_seconds(mode)
        left = None if limit is None else max(limit - seconds_used(team=team, mode=mode), 0)
        total = 0.0
        for row in in_mode:
            if row.ok and left is not None and total + row.seconds > left:
                row.problems.append(
                    f"mode: over the team's {mode} limit: this row needs {row.seconds:.0f} s and "
                    f"{max(left - total, 0):.0f} s of {mode} are left this month after the rows "
                    f"above (limit {limit} s). Drop rows, use shorter voice-overs, or ask an "
                    "admin to raise the limit."
                )
            elif row.ok:
                total += row.seconds
        needs.append(ModeNeed(mode, sum(r.seconds for r in in_mode if r.ok), left, limit))
    return needs


def batch_check(
    *,
    team: Team,
    csv_text: str,
    archive: IO[bytes] | None = None,
    template: JobTemplate | None = None,
) -> BatchCheck:
    """Judge every row (see the module's docstring); nothing is stored, made or charged.

    With a `template`, a row's empty cells are taken from it, and its script's and prompt's
    {placeholders} are filled from the row's columns.
    """
    check = BatchCheck()
    portrait_given = template is not None and template.portrait is not None
    rows, header, check.problems = parse_rows(csv_text, portrait_given=portrait_given)
    texts = [template.script, template.prompt] if template else []
    used = {
        match.group(1).lower()
        for text in [*texts, *(row.get(c, "") for row in rows for c in ("script", "prompt"))]
        for match in PLACEHOLDER.finditer(text)
    }
    for column in header:
        # A filled column nothing reads would be silently ignored: most likely a typo.
        filled = any(row.get(column) for row in rows)
        if column and column not in COLUMNS and column not in used and filled:
            check.problems.append(
                f"The column “{column}” is not used: columns are {', '.join(COLUMNS)}, and the "
                "placeholders the scripts and prompts name. Rename or remove it."
            )
    if check.problems and not rows:
        return check
    zipped = None
    if archive is not None:
        try:
            zipped = SafeZip(archive)
        except MediaError as exc:
            check.problems.extend(f"ZIP: {m}" for m in exc.messages)
            return check
    try:
        files = _Files(team, zipped, rows)
        check.rows = [
            _check_row(n, cells, files, template) for n, cells in enumerate(rows, start=1)
        ]
    finally:
        if zipped is not None:
            zipped.close()
    _check_names(check.rows)
    check_batch_budget(team=team, rows=check.rows)  # first, so the seconds count passing rows
    check.needs = _check_quota(team, check.rows)
    return check


# --------------------------------------------------------------------------- making it


def batch_store_files(*, check: BatchCheck, team: Team, user: User | None) -> list[dict[str, Any]]:
    """Store the ZIP files the passing rows use (once each) and return the plan to confirm."""
    stored: dict[int, Asset] = {}

    def asset(valid: Asset | ValidPortrait | ValidAudio | None) -> str:
        if valid is None:
            return ""
        if isinstance(valid, Asset):
            return str(valid.code)
        if id(valid) not in stored:
            stored[id(valid)] = asset_store(team=team, user=user, valid=valid)
        return str(stored[id(valid)].code)

    return [
        {
            "row": row.number,
            "name": row.name,
            "mode": row.mode,
            "prompt": row.prompt,
            "portrait": asset(row.portrait),
            "audio": asset(row.audio),
            "script": row.script,
            "voice": row.voice,
            "speed": row.speed,
        }
        for row in check.good_rows
    ]


def default_batch_name(filename: str = "") -> str:
    stem = filename.rsplit(".", 1)[0].strip() if filename else ""
    day = timezone.localtime()
    return f"{stem or 'Batch'} · {day.day} {day:%b}"


def quota_figures(needs: list[ModeNeed]) -> list[dict[str, Any]]:
    """The confirmation's lines: seconds per mode, what is left, and whether it fits."""
    return [
        {
            "mode": need.mode,
            "seconds": need.seconds,
            "left": need.left,
            "limit": need.limit,
            "fits": need.left is None or need.seconds <= need.left,
            "max_audio": settings.KLING_MAX_AUDIO_SECONDS,
        }
        for need in needs
    ]
