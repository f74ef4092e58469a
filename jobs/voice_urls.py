from django.urls import path

from jobs import voice_views

urlpatterns = [
    path("voiceovers/new/", voice_views.voiceover_new, name="voiceover-new"),
    path("voices/<str:voice_id>/sample.mp3", voice_views.voice_sample, name="voice-sample"),
]
