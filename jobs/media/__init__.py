"""Check uploads (portraits, voice-overs, prompts) before any Kling credit is spent.

Kling refuses bad inputs only once a job reaches it, so everything it would refuse is refused
here first, with one message per problem that says what is wrong and how to fix it. Formats are
read from the bytes (sniffing.py), never from the name or the browser's content type; the name
only has to agree (names.py). Portraits (portraits.py) are stored clean: metadata stripped,
nothing appended survives, pixels upright and sRGB; a JPEG that already is upright and sRGB
keeps its own compressed data. Voice-overs (audio.py) are stored as uploaded, because Kling
inspects the audio itself. Limits and the error type are in limits.py; prompts in prompts.py.
"""
