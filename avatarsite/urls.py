from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from jobs import hooks

urlpatterns = [
    path("", include("jobs.urls")),
    path("", include("jobs.api_urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("hooks/kling/<uuid:code>/<str:secret>/", hooks.kling_callback, name="kling-callback"),
]
