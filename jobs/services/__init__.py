"""Workflows that touch several models, one module per topic: keyword-only, typed, atomic.

jobs.py (make, advance, cancel, retry, notify), assets.py (the library), quotas.py, units.py
(Kling unit estimates, budgets and the account's packs),
teams.py (members, roles, invites), sharing.py (share links), api_tokens.py, api_tasks.py
(the Kling-compatible API's jobs) and voiceovers.py (scripts made into library files).
Side effects (waking the worker, callbacks) happen on commit.
"""
