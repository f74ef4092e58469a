from django.contrib import admin
from django.http import HttpRequest, HttpResponseRedirect
from django.templatetags.static import static
from django.urls import include, path

from jobs.views import accounts
from jobs.views.hooks import kling_callback
from jobs.views.ops import healthz, metrics
from jobs.views.share import share_captions, share_page, share_poster, share_video


def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """Browsers ask for /favicon.ico on their own (the share page, a bare file): not a 404."""
    response = HttpResponseRedirect(static("favicon.svg"))  # looked up now: hashed names change
    response["Cache-Control"] = "public, max-age=86400"
    return response


urlpatterns = [
    # Ours before django.contrib.auth's: login names the invite, reset is rate-limited.
    path("accounts/login/", accounts.login, name="login"),
    path("accounts/password_reset/", accounts.password_reset, name="password_reset"),
    path("accounts/signup/", accounts.signup, name="signup"),
    path("accounts/profile/", accounts.account, name="account"),
    path("invites/<str:token>/signup/", accounts.invite_signup, name="invite-signup"),
    path("favicon.ico", favicon, name="favicon"),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("", include("jobs.urls")),
    path("", include("jobs.api.urls")),
    # login, logout, password change and reset (email through EMAIL_BACKEND)
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("s/<str:token>/", share_page, name="share-page"),
    path("s/<str:token>/video.mp4", share_video, name="share-video"),
    path("s/<str:token>/poster.jpg", share_poster, name="share-poster"),
    path("s/<str:token>/captions.vtt", share_captions, name="share-captions"),
    path("hooks/kling/<uuid:code>/<str:secret>/", kling_callback, name="kling-callback"),
]
