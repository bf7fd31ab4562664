"""The demo tenant that `make run` seeds, so a newcomer can call the API in a minute."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from apps.projects.keys import key_from_raw
from apps.projects.models import ALL_SCOPES, App, Project
from apps.projects.services import api_key_install

DEMO_PROJECT_SLUG = "demo"
DEMO_APP_NAME = "demo-app"
DEMO_ADMIN_USERNAME = "admin"
DEMO_ADMIN_PASSWORD = "admin"  # noqa: S105 - a local demo credential, refused in production
# The API guide's examples (shared/design/API.md, docs/api.md) grant "labs" and redirect to
# https://app.local/...: the demo project accepts both so that they work as written.
DEMO_FEATURE_CODES = ("labs",)
DEMO_REDIRECT_PREFIXES = ("https://app.local/",)


@dataclass(frozen=True)
class DemoSeed:
    project: Project
    app: App
    api_key: str
    admin_username: str
    admin_password: str
    admin_created: bool


@transaction.atomic
def demo_seed(*, base_url: str) -> DemoSeed:
    if settings.IS_PRODUCTION:
        raise RuntimeError("seed_demo creates a known API key and admin password; it never runs in production")
    prefixes = {base_url.rstrip("/") + "/", "http://127.0.0.1:8000/", "http://localhost:8000/", *DEMO_REDIRECT_PREFIXES}
    project, _ = Project.objects.get_or_create(slug=DEMO_PROJECT_SLUG, defaults={"name": "Demo project"})
    # Added to what is there, never replacing it: a re-seed (every `make run`, maybe on another PORT)
    # keeps what a developer configured in the admin and brings an older demo project up to date.
    project.allowed_redirect_prefixes = sorted(set(project.allowed_redirect_prefixes) | prefixes)
    project.feature_codes = sorted(set(project.feature_codes) | set(DEMO_FEATURE_CODES))
    project.full_clean()
    project.save(update_fields=["allowed_redirect_prefixes", "feature_codes", "updated_at"])
    app, _ = App.objects.get_or_create(project=project, name=DEMO_APP_NAME, defaults={"scopes": sorted(ALL_SCOPES)})
    raw = str(settings.DEMO_API_KEY)
    api_key_install(app=app, new_key=key_from_raw(raw), label="demo", created_by="seed_demo")

    user_model = get_user_model()
    admin_created = False
    if not user_model.objects.filter(username=DEMO_ADMIN_USERNAME).exists():
        user_model.objects.create_superuser(DEMO_ADMIN_USERNAME, "admin@example.invalid", DEMO_ADMIN_PASSWORD)
        admin_created = True
    return DemoSeed(
        project=project,
        app=app,
        api_key=raw,
        admin_username=DEMO_ADMIN_USERNAME,
        admin_password=DEMO_ADMIN_PASSWORD,
        admin_created=admin_created,
    )
