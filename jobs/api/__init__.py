"""The Kling-compatible API: Kling's avatar endpoints, served by the team's own server.

contract.py (codes, limits, errors, the task object), inputs.py (the request body and its
files), views.py (the endpoints), openapi.py (the description), callbacks.py (status changes
sent to the caller's callback_url) and urls.py.
"""
