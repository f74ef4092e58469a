"""The studio's pages: typed function views, one job each; every object comes through jobs.access.

Each page is one template with named partials (django-template-partials). A plain request gets
the full page, so everything works without JavaScript; an htmx request gets only the partial it
targets. Invalid htmx form posts answer 200 with the form again, because htmx 2 does not swap
4xx responses. One module per page or feature: dashboard, job_new, job, library, voiceovers,
teams, share (making links, and the public pages), tokens (API tokens and docs), hooks (Kling's
callbacks).
"""
