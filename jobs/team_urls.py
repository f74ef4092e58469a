"""Teams, members, invites, quotas, usage and share links (jobs/team_views.py)."""

from django.urls import path

from jobs import team_views

urlpatterns = [
    path("teams/new/", team_views.team_create, name="team-create"),
    path("teams/switch/", team_views.team_switch, name="team-switch"),
    path("teams/<uuid:code>/", team_views.team_detail, name="team-detail"),
    path("teams/<uuid:code>/members/add/", team_views.member_add, name="member-add"),
    path(
        "teams/<uuid:code>/members/<uuid:member>/role/",
        team_views.member_role,
        name="member-role",
    ),
    path(
        "teams/<uuid:code>/members/<uuid:member>/remove/",
        team_views.member_remove,
        name="member-remove",
    ),
    path("teams/<uuid:code>/leave/", team_views.team_leave, name="team-leave"),
    path("teams/<uuid:code>/invites/new/", team_views.invite_create, name="invite-create"),
    path(
        "teams/<uuid:code>/invites/<uuid:invite>/revoke/",
        team_views.invite_revoke,
        name="invite-revoke",
    ),
    path("teams/<uuid:code>/settings/", team_views.team_settings, name="team-settings"),
    path("teams/<uuid:code>/usage/", team_views.team_usage, name="team-usage"),
    path("invites/<str:token>/", team_views.invite_accept, name="invite-accept"),
    path("jobs/<uuid:code>/share/", team_views.share_create, name="share-create"),
    path("shares/<uuid:code>/revoke/", team_views.share_revoke, name="share-revoke"),
]
