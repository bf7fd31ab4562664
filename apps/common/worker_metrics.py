"""The Celery worker's metrics: an HTTP exporter in its main process, and pool processes' files tidied on exit.

Every worker process (the main one and each prefork pool process) writes its values to files in
PROMETHEUS_MULTIPROC_DIR (billing_service/metrics_dir.py). The exporter serves all of them merged on
WORKER_METRICS_ADDR:WORKER_METRICS_PORT, for when the web does not share that directory (separate
containers); on one host the web's /metrics already shows them. billing_service/celery.py connects
these receivers when a worker starts (worker_init).

prometheus_client is imported inside the functions only, so that importing this module can never be
what makes prometheus_client choose its mode before the settings have set PROMETHEUS_MULTIPROC_DIR.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import structlog
from celery import signals
from django.conf import settings

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client import CollectorRegistry

log = structlog.get_logger("billing.worker")

# The main process's exporter, shut down with the worker so that its port is free for the next one.
_exporter: list[WSGIServer] = []


def exporter_registry() -> CollectorRegistry:
    """Every worker process's values, merged from the directory."""
    from prometheus_client import CollectorRegistry, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def exporter_start(**kwargs: Any) -> None:
    """worker_ready: sent in the worker's main process only, once its pool and broker connection are up.

    Not at worker_init: the server's thread would then be running while the pool forks its first
    processes, and would answer slowly while the worker is still importing and checking Django.
    """
    port, addr = settings.WORKER_METRICS_PORT, settings.WORKER_METRICS_ADDR
    if port == 0:
        return
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Only the tests get here (the settings give it a default elsewhere): without the directory
        # a pool process's counters never reach the main process, so an exporter would show none.
        log.warning("worker_metrics_no_directory", port=port)
        return
    from prometheus_client import start_http_server

    try:
        server, _thread = start_http_server(port, addr=addr, registry=exporter_registry())
    except OSError as exc:
        # Metrics are not worth a stopped worker: its counters still reach the directory (and the
        # web's /metrics on this host). Two workers on one host need a WORKER_METRICS_PORT each.
        log.warning("worker_metrics_port_unavailable", addr=addr, port=port, error=exc.strerror or str(exc))
        return
    _exporter.append(server)
    log.info("worker_metrics_exporter_started", url=f"http://{addr}:{port}/metrics")


def exporter_stop(**kwargs: Any) -> None:
    """worker_shutdown (main process): free the port, and drop this process's live gauges."""
    while _exporter:
        server = _exporter.pop()
        server.shutdown()
        server.server_close()
    process_exited(pid=os.getpid())


def process_exited(pid: int | None = None, **kwargs: Any) -> None:
    """worker_process_shutdown, in a pool process about to exit: its live gauges go with it.

    Its counters and histograms stay in the directory, so totals do not drop when the pool
    replaces a process.
    """
    if pid is None or not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def worker_metrics_connect() -> None:
    signals.worker_ready.connect(exporter_start, dispatch_uid="billing.worker_metrics.start")
    signals.worker_shutdown.connect(exporter_stop, dispatch_uid="billing.worker_metrics.stop")
    signals.worker_process_shutdown.connect(process_exited, dispatch_uid="billing.worker_metrics.exit")
