"""URLs of the Kling-compatible API (under /kling/v1/ and /v1/) and its portal pages."""

from django.urls import path, re_path

from jobs import api

app_name = "api"

CREATE = "videos/avatar/image2video"

urlpatterns = [
    # The API answers under both prefixes: tools written for a gateway use <base>/kling,
    # tools written for Kling's own host use <base>.
    path(f"kling/v1/{CREATE}", api.image2video, name="image2video"),
    path(f"kling/v1/{CREATE}/<str:task_ref>", api.image2video_task, name="image2video-task"),
    path(f"v1/{CREATE}", api.image2video, name="image2video-root"),
    path(f"v1/{CREATE}/<str:task_ref>", api.image2video_task, name="image2video-task-root"),
    path("kling/openapi.json", api.openapi_json, name="openapi"),
    path("kling/files/<uuid:code>/<str:signature>/video.mp4", api.video_file, name="video-file"),
    # Anything else under the API's prefixes gets Kling's "not found" envelope, not HTML.
    re_path(r"^(?:kling/)?v1/(?P<rest>.*)$", api.api_not_found, name="not-found"),
    path("api/tokens/", api.tokens, name="tokens"),
    path("api/tokens/<uuid:code>/revoke/", api.token_revoke, name="token-revoke"),
    path("api/docs/", api.docs, name="docs"),
]
