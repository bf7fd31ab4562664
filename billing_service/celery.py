"""The Celery application. Configuration comes from Django settings (the CELERY_ namespace)."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_service.settings")

app = Celery("billing_service")
# Lazy: the settings load when the worker first reads its configuration, and Celery's Django fixup
# runs django.setup() before any task module is imported. Nothing imported here pulls in
# prometheus_client, so the settings still give PROMETHEUS_MULTIPROC_DIR its default before it does
# (billing_service/metrics_dir.py): every worker process then writes its metric files there.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
def _worker_metrics(**kwargs: Any) -> None:
    """A worker only: its exporter on WORKER_METRICS_PORT, and pool processes' live gauges dropped on exit.

    Imported here rather than at the top: billing_service must import without apps/ (the settings are
    loaded on their own by tooling and tests).
    """
    from apps.common.worker_metrics import worker_metrics_connect

    worker_metrics_connect()
