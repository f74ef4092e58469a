from django.contrib import admin
from django.urls import include, path

from jobs import hooks, share

urlpatterns = [
    path("", include("jobs.urls")),
    path("", include("jobs.api_urls")),
    # login, logout, password change and reset (email through EMAIL_BACKEND)
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("s/<str:token>/", share.share_page, name="share-page"),
    path("s/<str:token>/video.mp4", share.share_video, name="share-video"),
    path("s/<str:token>/poster.jpg", share.share_poster, name="share-poster"),
    path("hooks/kling/<uuid:code>/<str:secret>/", hooks.kling_callback, name="kling-callback"),
]
