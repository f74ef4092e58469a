"""Voice-overs from text: the script's rules (script.py), synthesis (synth.py) and eSpeak NG.

Nothing here writes to the database: jobs/services/voiceovers.py stores what synth.py makes.
"""
