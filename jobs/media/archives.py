"""A ZIP of portraits and voice-overs, opened safely: its listing is judged before a byte is
inflated, and each member is read with a cap whatever its header claims.

A ZIP's central directory is the uploader's word: a 42 kB "zip bomb" claims small members and
inflates to gigabytes, and a name like `../../settings.py` is a path traversal waiting for
whoever extracts it. Nothing here extracts to disk: members are read into memory one at a time,
at most `max_bytes` + 1 bytes each (so a lying header is caught by the read, not by the disk),
and the whole archive is refused for too many members, too many bytes claimed, an unsafe or
encrypted member, or a compression ratio no photo or recording has.
"""

from __future__ import annotations

import posixpath
import zipfile
from dataclasses import dataclass
from typing import IO

from django.core.files.base import ContentFile

from jobs.media.limits import MB, MediaError

ZIP_MAX_MEMBERS = 1000
ZIP_MAX_TOTAL_BYTES = 1024 * MB  # uncompressed, as claimed; each member is capped as it is read
# JPEG, PNG, MP3 and AAC barely compress; WAV a little. 100:1 is a bomb, not a recording.
ZIP_MAX_RATIO = 100
ZIP_RATIO_FLOOR = 1 * MB  # small members may compress as well as they like (silence, flat PNGs)


@dataclass(frozen=True)
class Member:
    name: str  # the member's path in the archive, "/"-separated, no leading "./"
    size: int  # uncompressed, as claimed


class SafeZip:
    """The members of an uploaded ZIP by path and by bare file name (when unambiguous)."""

    def __init__(self, upload: IO[bytes]) -> None:
        try:
            self._zip = zipfile.ZipFile(upload)
            infos = self._zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
            raise MediaError(
                "The ZIP cannot be opened: it is damaged or not a ZIP. Make it again (in the file "
                "manager: select the files, then Compress) and upload that.",
                code="bad_zip",
            ) from None
        files = [info for info in infos if not info.is_dir()]
        if len(files) > ZIP_MAX_MEMBERS:
            raise MediaError(
                f"The ZIP holds {len(files):,} files: the limit is {ZIP_MAX_MEMBERS:,}. Put only "
                "the portraits and recordings the spreadsheet names in it.",
                code="zip_members",
            )
        total = sum(info.file_size for info in files)
        if total > ZIP_MAX_TOTAL_BYTES:
            raise MediaError(
                f"The ZIP unpacks to {total / MB:,.0f} MB: the limit is "
                f"{ZIP_MAX_TOTAL_BYTES // MB:,} MB. Split the batch in two.",
                code="zip_size",
            )
        self._infos: dict[str, zipfile.ZipInfo] = {}
        by_base: dict[str, list[str]] = {}
        for info in files:
            name = _safe_name(info.filename)
            if info.flag_bits & 0x1:
                raise MediaError(
                    f"{name} in the ZIP is encrypted: make the ZIP without a password.",
                    code="zip_encrypted",
                )
            if info.file_size > ZIP_RATIO_FLOOR and info.file_size > ZIP_MAX_RATIO * max(
                info.compress_size, 1
            ):
                ratio = info.file_size / max(info.compress_size, 1)
                raise MediaError(
                    f"{name} in the ZIP claims to unpack {ratio:,.0f} "
                    "times larger than it is packed, which no photo or recording does: this ZIP "
                    "is refused as a zip bomb.",
                    code="zip_bomb",
                )
            self._infos[name] = info
            by_base.setdefault(posixpath.basename(name), []).append(name)
        self._by_base = {base: names[0] for base, names in by_base.items() if len(names) == 1}

    def find(self, reference: str) -> Member | None:
        """The member a spreadsheet cell names: its path in the ZIP, or its bare file name."""
        ref = reference.strip().replace("\\", "/").removeprefix("./")
        name = ref if ref in self._infos else self._by_base.get(ref)
        if name is None:
            return None
        return Member(name, self._infos[name].file_size)

    def read(self, member: Member, *, max_bytes: int) -> ContentFile[bytes]:
        """The member's bytes, at most max_bytes + 1 (the validators say "too large" past it)."""
        try:
            with self._zip.open(self._infos[member.name]) as fh:
                data = fh.read(max_bytes + 1)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
            raise MediaError(
                f"{member.name} cannot be unpacked from the ZIP: it is damaged or packed in a "
                "way this server does not read (use ordinary Deflate compression).",
                code="zip_member",
            ) from None
        return ContentFile(data, name=posixpath.basename(member.name))

    def close(self) -> None:
        self._zip.close()


def _safe_name(raw: str) -> str:
    """A member's path, refused when it would escape the folder it is unpacked into."""
    name = raw.replace("\\", "/")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts or (parts and ":" in parts[0]) or not parts:
        raise MediaError(
            f"The ZIP holds a file named {raw!r}, which points outside the archive (a path "
            "traversal): make the ZIP again from a plain folder.",
            code="zip_traversal",
        )
    return "/".join(parts)
