"""The prompt: plain text within Kling's length limit."""

from __future__ import annotations

from jobs.media.limits import PROMPT_MAX_CHARS, MediaError

# ------------------------------------------------------------------------------- prompts


def validate_prompt(text: str | None) -> str:
    """The prompt as Kling will get it: stripped, newlines as \\n, at most 2500 characters.

    Browsers send textarea line breaks as \\r\\n; counting those twice would refuse prompts the
    form said were short enough, so they are normalised before counting.
    """
    prompt = (text or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(prompt) > PROMPT_MAX_CHARS:
        extra = len(prompt) - PROMPT_MAX_CHARS
        raise MediaError(
            f"Prompt is {len(prompt):,} characters: the limit is {PROMPT_MAX_CHARS:,}. "
            f"Shorten it by {extra:,} character{'s' if extra != 1 else ''}.",
            code="prompt_too_long",
        )
    return prompt
