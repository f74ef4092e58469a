from django.contrib.admin.apps import AdminConfig


class StudioAdminConfig(AdminConfig):
    default_site = "avatarsite.admin_site.StudioAdminSite"
