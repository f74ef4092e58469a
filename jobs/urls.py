from django.urls import include, path

from jobs import views

app_name = "jobs"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("jobs/cards/", views.job_cards, name="job-cards"),
    path("jobs/new/", views.job_new, name="job-new"),
    path("jobs/new/check/<str:kind>/", views.job_new_check, name="job-new-check"),
    path("jobs/<uuid:code>/", views.job_detail, name="job-detail"),
    path("jobs/<uuid:code>/cancel/", views.job_cancel, name="job-cancel"),
    path("jobs/<uuid:code>/retry/", views.job_retry, name="job-retry"),
    path("jobs/<uuid:code>/video.mp4", views.job_video, name="job-video"),
    path("jobs/<uuid:code>/poster.jpg", views.job_poster, name="job-poster"),
    path("library/", views.library, name="library"),
    path("library/<uuid:code>/rename/", views.asset_rename, name="asset-rename"),
    path("library/<uuid:code>/delete/", views.asset_delete, name="asset-delete"),
    path("assets/<uuid:code>/file", views.asset_file, name="asset-file"),
    path("assets/<uuid:code>/thumb.jpg", views.asset_thumb, name="asset-thumb"),
    # Teams, members, invites, sharing and usage (jobs/team_views.py)
    path("", include("jobs.team_urls")),
    # Voice-overs written as text (jobs/voice_views.py)
    path("", include("jobs.voice_urls")),
]
