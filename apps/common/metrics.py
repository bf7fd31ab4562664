"""Prometheus exposition, including gauges read from the database at scrape time."""

from __future__ import annotations

import os
from collections.abc import Iterator

from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class SchedulerCollector(Collector):
    """When beat last sent each periodic task, and when the worker last ran the heartbeat.

    Read at scrape time so the figures are right whichever process (web, worker, beat) wrote them.
    """

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Without describe() the registry would call collect() at registration, before migrations.
        yield GaugeMetricFamily("billing_scheduler_task_last_run_timestamp_seconds", "", labels=["task", "enabled"])
        yield GaugeMetricFamily("billing_worker_heartbeat_timestamp_seconds", "", labels=["name"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django_celery_beat.models import PeriodicTask

        from apps.common.models import Heartbeat

        last_run = GaugeMetricFamily(
            "billing_scheduler_task_last_run_timestamp_seconds",
            "Unix time at which beat last sent each periodic task.",
            labels=["task", "enabled"],
        )
        for name, enabled, last_run_at in PeriodicTask.objects.values_list("name", "enabled", "last_run_at"):
            if last_run_at is not None:
                last_run.add_metric([name, str(enabled).lower()], last_run_at.timestamp())
        yield last_run

        heartbeat = GaugeMetricFamily(
            "billing_worker_heartbeat_timestamp_seconds",
            "Unix time at which a Celery worker last ran the scheduler heartbeat task.",
            labels=["name"],
        )
        for hb in Heartbeat.objects.all():
            heartbeat.add_metric([hb.name], hb.last_seen_at.timestamp())
        yield heartbeat


scheduler_collector = SchedulerCollector()


def _registry() -> CollectorRegistry:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        # Under gunicorn with several workers each process writes its own files; merge them.
        from apps.webhooks.metrics import ledger_collector

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        # Gauges read from the database at scrape time are not per process: add them once.
        registry.register(scheduler_collector)
        registry.register(ledger_collector)
        return registry
    return REGISTRY


def metrics_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
