"""The settings pytest and mypy load: the real settings in the `test` environment."""

import os

os.environ.setdefault("DJANGO_ENV", "test")

from billing_service.settings import *  # noqa: F403
