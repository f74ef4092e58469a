from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Avatar studio"

    def ready(self) -> None:
        from jobs import signals  # noqa: F401  (personal team for every new user)
