"""Gunicorn settings for the container's `web` role (docker/entrypoint.sh runs `gunicorn -c` on this file).

Every value can be tuned through the environment; flags given on the command line override this file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

# The config file is loaded before gunicorn puts the working directory on sys.path.
_PROJECT_DIR = str(Path(__file__).resolve().parent.parent)
if _PROJECT_DIR not in sys.path:
    sys.path.insert(0, _PROJECT_DIR)

from billing_service.logging import build_logging_config  # noqa: E402


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not an integer") from None


wsgi_app = "billing_service.wsgi:application"
bind = f"0.0.0.0:{_int('PORT', 8000)}"

# gthread: a few processes, each with a thread pool; requests mostly wait on PostgreSQL and Redis.
# 2 x 4 was measured against 4 x 1, 2 x 2, 2 x 1 and 3 x 2 on two cores (docs/operations.md, "Web worker layout").
worker_class = "gthread"
workers = _int("WEB_CONCURRENCY", 2)
threads = _int("GUNICORN_THREADS", 4)
timeout = _int("GUNICORN_TIMEOUT", 30)
# On SIGTERM, workers get this long to finish in-flight requests before they are killed.
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = 5
# Gunicorn's runtime control socket (gunicornc) is not used; it would be written under $HOME.
control_socket_disable = True

# The worker heartbeat file: on tmpfs, so a slow or full disk cannot make the master kill workers.
_SHM = "/dev/shm"  # noqa: S108 - gunicorn's documented choice for the heartbeat file
if os.path.isdir(_SHM):
    worker_tmp_dir = _SHM

# Which peers may set X-Forwarded-* (the TLS proxy or load balancer in front). "*" trusts any peer,
# which is right only when the container is reachable solely through that proxy.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")

# No access log: apps.common.middleware.RequestIdMiddleware logs every request with its request id,
# app, project, status and duration. Gunicorn's own lines go through the same structlog formatter
# as Django's, so they are JSON in production too.
accesslog = None
errorlog = "-"
_django_env = os.environ.get("DJANGO_ENV", "").strip() or "development"
_log_format = os.environ.get("LOG_FORMAT", "").strip() or ("json" if _django_env == "production" else "console")
_log_level = os.environ.get("LOG_LEVEL", "").strip() or "INFO"
if _log_format not in ("json", "console"):
    raise SystemExit(f"LOG_FORMAT={_log_format!r} must be json or console")
loglevel = _log_level.lower()
logconfig_dict: dict[str, Any] = build_logging_config(fmt=_log_format, level=_log_level)
logconfig_dict["loggers"].update(
    {
        "gunicorn.error": {"level": _log_level, "handlers": [], "propagate": True},
        # Setting logconfig_dict turns gunicorn's access log on; keep it quiet.
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
    }
)


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges from the merged /metrics (see apps/common/metrics.py)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
