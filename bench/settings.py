"""The real settings, with one change: ROOT_URLCONF adds a bare JSON view beside the real URLs."""

from billing_service.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
