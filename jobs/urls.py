from django.urls import path

from jobs import views

app_name = "jobs"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("jobs/new/", views.job_new, name="job-new"),
    path("jobs/<uuid:code>/", views.job_detail, name="job-detail"),
    path("jobs/<uuid:code>/cancel/", views.job_cancel, name="job-cancel"),
    path("jobs/<uuid:code>/video.mp4", views.job_video, name="job-video"),
    path("jobs/<uuid:code>/poster.jpg", views.job_poster, name="job-poster"),
    path("assets/<uuid:code>/file", views.asset_file, name="asset-file"),
]
