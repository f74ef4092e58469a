from django.contrib import admin
from django.urls import include, path

from jobs.views.hooks import kling_callback
from jobs.views.share import share_page, share_poster, share_video

urlpatterns = [
    path("", include("jobs.urls")),
    path("", include("jobs.api.urls")),
    # login, logout, password change and reset (email through EMAIL_BACKEND)
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("s/<str:token>/", share_page, name="share-page"),
    path("s/<str:token>/video.mp4", share_video, name="share-video"),
    path("s/<str:token>/poster.jpg", share_poster, name="share-poster"),
    path("hooks/kling/<uuid:code>/<str:secret>/", kling_callback, name="kling-callback"),
]
