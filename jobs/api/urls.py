"""URLs of the Kling-compatible API (under /kling/v1/ and /v1/) and its portal pages."""

from django.urls import path, re_path

from jobs.api import batches
from jobs.api.views import (
    account_costs,
    api_not_found,
    audio_file,
    audio_tts,
    image2video,
    image2video_task,
    openapi_json,
    presets_voices,
    video_file,
)
from jobs.views.tokens import docs, token_revoke, tokens

app_name = "api"

CREATE = "videos/avatar/image2video"

urlpatterns = [
    # The API answers under both prefixes: tools written for a gateway use <base>/kling,
    # tools written for Kling's own host use <base>.
    path(f"kling/v1/{CREATE}", image2video, name="image2video"),
    path(f"kling/v1/{CREATE}/<str:task_ref>", image2video_task, name="image2video-task"),
    path(f"v1/{CREATE}", image2video, name="image2video-root"),
    path(f"v1/{CREATE}/<str:task_ref>", image2video_task, name="image2video-task-root"),
    path("kling/v1/audio/tts", audio_tts, name="audio-tts"),
    path("v1/audio/tts", audio_tts, name="audio-tts-root"),
    path("kling/v1/general/presets-voices", presets_voices, name="presets-voices"),
    path("v1/general/presets-voices", presets_voices, name="presets-voices-root"),
    path("kling/account/costs", account_costs, name="account-costs"),
    path("account/costs", account_costs, name="account-costs-root"),
    path("kling/openapi.json", openapi_json, name="openapi"),
    path("kling/files/<uuid:code>/<str:signature>/video.mp4", video_file, name="video-file"),
    path("kling/files/<uuid:code>/<str:signature>/audio", audio_file, name="audio-file"),
    # Anything else under the API's prefixes gets Kling's "not found" envelope, not HTML.
    re_path(r"^(?:kling/)?v1/(?P<rest>.*)$", api_not_found, name="not-found"),
    # Batches: the studio's own paths, outside Kling's (no /v1/, /kling/ or /account/).
    path("api/batches", batches.batches, name="batches"),
    path("api/batches/<str:ref>", batches.batch, name="batch"),
    path("api/batches/<str:ref>/report.csv", batches.batch_report, name="batch-report"),
    path("api/batches/<str:ref>/videos.zip", batches.batch_videos, name="batch-videos"),
    re_path(r"^api/batches/(?P<rest>.*)$", batches.batch_not_found, name="batch-not-found"),
    path("api/tokens/", tokens, name="tokens"),
    path("api/tokens/<uuid:code>/revoke/", token_revoke, name="token-revoke"),
    path("api/docs/", docs, name="docs"),
]
