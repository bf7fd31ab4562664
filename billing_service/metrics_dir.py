"""PROMETHEUS_MULTIPROC_DIR and its default: one directory of metric files for every process on a host.

prometheus_client decides once, when prometheus_client.values is first imported, whether a process
keeps its values in memory or in files of its own in this directory, and it decides from the
environment variable alone. The web's /metrics merges the directory's files (apps/common/metrics.py),
so a counter incremented in the Celery worker, in one of its pool processes, or in a gunicorn
started by hand shows there only if all of them write to the same directory. The default is
therefore put into os.environ (where the processes this one starts inherit it) by the settings,
before anything imports prometheus_client; docs/operations.md, "Metrics from the worker", says why.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import MutableMapping
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

ENV_NAME = "PROMETHEUS_MULTIPROC_DIR"
DEFAULT_NAME = "prometheus-multiproc"


def multiproc_dir_default(environ: MutableMapping[str, str], *, var_dir: Path, django_env: str) -> Path | None:
    """The directory `environ` names, or its default put into `environ`; None: values stay in memory.

    Unset (or empty) outside the test environment: VAR_DIR/prometheus-multiproc, made absolute so that
    a process started in another working directory agrees. In the test environment an unset one stays
    unset, so the suite reads each metric in its own process; the end-to-end tests set it for the
    processes they start.
    """
    raw = environ.get(ENV_NAME, "").strip()
    if raw:
        return Path(raw)
    if django_env == "test":
        # An empty value would still switch prometheus_client to files, written to the working directory.
        environ.pop(ENV_NAME, None)
        return None
    path = (var_dir / DEFAULT_NAME).resolve()
    environ[ENV_NAME] = str(path)
    return path


def _values_in_memory_already() -> bool:
    """prometheus_client imported before the settings, and in memory mode: too late to change it here."""
    values = sys.modules.get("prometheus_client.values")
    return values is not None and not getattr(values.ValueClass, "_multiprocess", False)


def multiproc_dir_install(*, var_dir: Path, django_env: str) -> Path | None:
    """Called by the settings: the directory this process writes its metric files to, created; None if none."""
    if not os.environ.get(ENV_NAME, "").strip() and _values_in_memory_already():
        # Setting the variable now would make this process's /metrics read the directory and miss
        # its own values, which stay in memory. Something imported prometheus_client too early.
        warnings.warn(
            f"prometheus_client was imported before the settings; {ENV_NAME} left unset in this process",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    path = multiproc_dir_default(os.environ, var_dir=var_dir, django_env=django_env)
    if path is not None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            # prometheus_client would fail at its first metric with a less helpful message.
            raise ImproperlyConfigured(
                f"{ENV_NAME}: cannot create {path} ({exc.strerror}); set it to a writable directory"
            ) from None
    return path


def multiproc_dir_empty(path: Path) -> int:
    """Removes the metric files of earlier runs (counters would otherwise add up across restarts).

    Only prometheus_client's own *.db files go, in case the directory was set to one holding
    something else. Call it only while no process of the service writes there. Returns the count.
    """
    removed = 0
    for file in path.glob("*.db"):
        file.unlink(missing_ok=True)
        removed += 1
    return removed
