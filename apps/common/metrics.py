"""Prometheus exposition, including gauges read from the database at scrape time."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse
from django_prometheus.middleware import Metrics
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


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "OPTIONS", "CONNECT", "PATCH"})


class RequestMetricsMiddleware:
    """The request metrics docs/operations.md lists, at the cost of a few increments per request.

    In place of django-prometheus's Before/After pair, which updates some fifteen series per request
    (transport, body sizes, charsets...) through `labels()` lookups that each take a lock; this one
    keeps django-prometheus's metric objects and names (so dashboards and alerts are unchanged) and
    updates only requests by method, responses by status and by status/view/method, and the latency
    by view/method, with each label set's children looked up once per process. First in MIDDLEWARE:
    the latency and the statuses include what the other middleware answer themselves (a 413, a 429
    page). Exceptions by type are counted by ApiErrorMiddleware (`count_exception`), which sees them.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._metrics = Metrics.get_instance()
        self._by_method: dict[str, Any] = {}
        self._by_response: dict[tuple[str, int, str], tuple[Any, Any, Any]] = {}
        self._lock = threading.Lock()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        method = request.method if request.method in _METHODS else "<invalid method>"
        counter = self._by_method.get(method)
        if counter is None:
            counter = self._by_method.setdefault(method, self._metrics.requests_by_method.labels(method=method))
        counter.inc()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = (match.view_name if match is not None else None) or "<unnamed view>"
        key = (view, response.status_code, method)
        children = self._by_response.get(key)
        if children is None:
            children = self._children(key)
        by_status, by_status_view, latency = children
        by_status.inc()
        by_status_view.inc()
        latency.observe(time.perf_counter() - started)
        return response

    def _children(self, key: tuple[str, int, str]) -> tuple[Any, Any, Any]:
        view, status_code, method = key
        status = str(status_code)
        metrics = self._metrics
        children = (
            metrics.responses_by_status.labels(status=status),
            metrics.responses_by_status_view_method.labels(status=status, view=view, method=method),
            metrics.requests_latency_by_view_method.labels(view=view, method=method),
        )
        with self._lock:
            return self._by_response.setdefault(key, children)


def count_exception(request: HttpRequest, exception: Exception) -> None:
    """An exception that escaped a view, by type and by view (django-prometheus's series)."""
    metrics = Metrics.get_instance()
    metrics.exceptions_by_type.labels(type=type(exception).__name__).inc()
    match = getattr(request, "resolver_match", None)
    if match is not None:
        metrics.exceptions_by_view.labels(view=match.view_name or "<unnamed view>").inc()
