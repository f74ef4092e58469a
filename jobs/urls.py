"""The studio's pages (namespace `jobs`); each view lives in the module of jobs/views/ it names."""

from django.urls import path

from jobs.views import (
    batches,
    dashboard,
    job,
    job_new,
    job_templates,
    library,
    share,
    teams,
    voiceovers,
)

app_name = "jobs"
urlpatterns = [
    # The dashboard and its live poll
    path("", dashboard.dashboard, name="dashboard"),
    path("jobs/cards/", dashboard.job_cards, name="job-cards"),
    # New job
    path("jobs/new/", job_new.job_new, name="job-new"),
    path("jobs/new/check/<str:kind>/", job_new.job_new_check, name="job-new-check"),
    # Batches from a spreadsheet
    path("batches/", batches.batch_list, name="batch-list"),
    path("batches/new/", batches.batch_new, name="batch-new"),
    path("batches/new/confirm/", batches.batch_confirm, name="batch-confirm"),
    path("batches/<uuid:code>/", batches.batch_detail, name="batch-detail"),
    path("batches/<uuid:code>/cancel/", batches.batch_cancel, name="batch-cancel"),
    path("batches/<uuid:code>/retry/", batches.batch_retry, name="batch-retry"),
    path("batches/<uuid:code>/share/", batches.batch_share, name="batch-share"),
    path("batches/<uuid:code>/report.csv", batches.batch_report, name="batch-report"),
    path("batches/<uuid:code>/videos.zip", batches.batch_videos, name="batch-videos"),
    # Templates (saved from a job's page, listed on the New batch page)
    path("templates/<uuid:code>/rename/", job_templates.template_rename, name="template-rename"),
    path("templates/<uuid:code>/delete/", job_templates.template_delete, name="template-delete"),
    # One job
    path("jobs/<uuid:code>/", job.job_detail, name="job-detail"),
    path("jobs/<uuid:code>/cancel/", job.job_cancel, name="job-cancel"),
    path("jobs/<uuid:code>/retry/", job.job_retry, name="job-retry"),
    path("jobs/<uuid:code>/rename/", job.job_rename, name="job-rename"),
    path("jobs/<uuid:code>/template/", job.job_save_template, name="job-save-template"),
    path("jobs/<uuid:code>/delete/", job.job_delete, name="job-delete"),
    path("jobs/<uuid:code>/video.mp4", job.job_video, name="job-video"),
    path("jobs/<uuid:code>/poster.jpg", job.job_poster, name="job-poster"),
    path("jobs/<uuid:code>/captions.vtt", job.job_captions, name="job-captions"),
    # Sharing a result
    path("jobs/<uuid:code>/share/", share.share_create, name="share-create"),
    path("shares/<uuid:code>/revoke/", share.share_revoke, name="share-revoke"),
    # The library
    path("library/", library.library, name="library"),
    path("library/<uuid:code>/rename/", library.asset_rename, name="asset-rename"),
    path("library/<uuid:code>/delete/", library.asset_delete, name="asset-delete"),
    path("assets/<uuid:code>/file", library.asset_file, name="asset-file"),
    path("assets/<uuid:code>/thumb.jpg", library.asset_thumb, name="asset-thumb"),
    # Voice-overs written as text
    path("voiceovers/new/", voiceovers.voiceover_new, name="voiceover-new"),
    path("voices/<str:voice_id>/sample.mp3", voiceovers.voice_sample, name="voice-sample"),
    # Teams, members, invites, settings and usage
    path("teams/new/", teams.team_create, name="team-create"),
    path("teams/switch/", teams.team_switch, name="team-switch"),
    path("teams/<uuid:code>/", teams.team_detail, name="team-detail"),
    path("teams/<uuid:code>/members/add/", teams.member_add, name="member-add"),
    path("teams/<uuid:code>/members/<uuid:member>/role/", teams.member_role, name="member-role"),
    path(
        "teams/<uuid:code>/members/<uuid:member>/remove/",
        teams.member_remove,
        name="member-remove",
    ),
    path("teams/<uuid:code>/leave/", teams.team_leave, name="team-leave"),
    path("teams/<uuid:code>/invites/new/", teams.invite_create, name="invite-create"),
    path(
        "teams/<uuid:code>/invites/<uuid:invite>/revoke/",
        teams.invite_revoke,
        name="invite-revoke",
    ),
    path("teams/<uuid:code>/settings/", teams.team_settings, name="team-settings"),
    path("teams/<uuid:code>/usage/", teams.team_usage, name="team-usage"),
    path("invites/<str:token>/", teams.invite_accept, name="invite-accept"),
]
