from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    """Tenants (projects), the micro-apps that call us, their API keys and scopes."""

    name = "apps.projects"
    label = "projects"
    verbose_name = "Projects"

    def ready(self) -> None:
        from apps.projects import schema  # noqa: F401 - registers the OpenAPI security scheme
