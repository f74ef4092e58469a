"""Kling's error codes and failure notes, in words a user can act on."""

from __future__ import annotations

NOT_CHARGED = "Kling does not charge for failed tasks."

_BY_CODE: dict[int, str] = {
    1103: "This Kling account may not use the avatar API or this mode: ask the operator to "
    "check the account's permissions, or try the other mode.",
    1200: "Kling refused the request as invalid: {detail}",
    1201: "Kling refused the inputs: {detail}",
    1202: "Kling refused the request (method not allowed): tell the operator.",
    1203: "Kling could not find something this job refers to: {detail}",
    1300: "Kling's platform policy refused this job: {detail} Try another portrait, voice-over "
    "or prompt.",
    1301: "The inputs were refused by Kling's content check: try another photo, recording or "
    "prompt.",
    1304: "Kling refused this server's address (IP allow-list): tell the operator.",
}

_OPERATOR: dict[int, str] = {
    1000: "Kling did not accept the server's credentials: check KLING_ACCESS_KEY and "
    "KLING_SECRET_KEY (or KLING_API_KEY).",
    1001: "Kling says the request had no credentials: check the Kling keys in the settings.",
    1002: "Kling says the credentials are invalid: check the Kling keys in the settings.",
    1003: "Kling says the token is not valid yet: check this server's clock.",
    1004: "Kling says the token expired: check this server's clock and the Kling keys.",
    1100: "Kling reports a problem with the account: check it in Kling's console.",
    1101: "The Kling account is in arrears: top it up in Kling's console.",
    1102: "The Kling resource pack is used up or expired: buy or renew one in Kling's console.",
}

# Hints in task_status_msg (Kling's free-text failure note), checked in order.
_BY_NOTE: list[tuple[tuple[str, ...], str]] = [
    (
        ("risk", "sensitive", "safety", "audit", "violat", "policy"),
        "The inputs were refused by Kling's content check: try another photo, recording or prompt.",
    ),
    (
        ("face", "portrait", "person", "human"),
        "Kling could not find a usable face in the portrait: use a clear, front-facing photo of "
        "one person.",
    ),
    (
        ("audio", "sound", "voice"),
        "Kling could not use the voice-over: check that it is clear speech, 2 s to 5 min long.",
    ),
    (
        ("image",),
        "Kling could not use the portrait: try another photo (JPEG or PNG, at least 300 px).",
    ),
    (("timeout", "timed out"), "Kling gave up on this video: try again."),
]


def operator_message(code: int | None, detail: str = "") -> str:
    return _OPERATOR.get(code or 0, f"Kling needs the operator's attention: {detail}".strip())


def job_error_message(code: int | None, detail: str = "") -> str:
    """A refused request (create or query), for the job's owner."""
    detail = (detail or "no details given").rstrip(".") + "."
    text = _BY_CODE.get(code or 0, "Kling refused this job: {detail}")
    return f"{text.format(detail=detail)} {NOT_CHARGED}"


def task_failed_message(note: str) -> str:
    """A task Kling accepted and then failed, for the job's owner."""
    lowered = (note or "").lower()
    matched = next((text for words, text in _BY_NOTE if any(w in lowered for w in words)), None)
    if matched is None:
        matched = (
            "Kling could not make this video"
            + (f" ({note.strip()})." if note else ".")
            + " Try again, or with other inputs."
        )
    return f"{matched} {NOT_CHARGED}"
