"""Worker metrics with no setting to forget: PROMETHEUS_MULTIPROC_DIR's default, the worker's exporter,
and what `make run` does with both. The end-to-end proof with a real worker is tests/e2e/test_worker_metrics.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured

from apps.common import worker_metrics
from billing_service.metrics_dir import multiproc_dir_default, multiproc_dir_empty, multiproc_dir_install
from devtools.management.commands.devstack import Command

ROOT = Path(__file__).resolve().parents[2]


# --- the default directory ------------------------------------------------------------------------


def test_unset_it_defaults_to_one_under_var_dir_and_is_put_in_the_environment(tmp_path: Path) -> None:
    environ: dict[str, str] = {}
    path = multiproc_dir_default(environ, var_dir=tmp_path / "var", django_env="production")
    assert path == tmp_path / "var" / "prometheus-multiproc"
    # In the environment, so that the processes this one starts (gunicorn's, the pool's) agree.
    assert environ == {"PROMETHEUS_MULTIPROC_DIR": str(path)}


def test_a_relative_var_dir_gives_an_absolute_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    environ: dict[str, str] = {}
    multiproc_dir_default(environ, var_dir=Path("var"), django_env="development")
    assert environ["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path / "var" / "prometheus-multiproc")


def test_an_empty_value_counts_as_unset(tmp_path: Path) -> None:
    environ = {"PROMETHEUS_MULTIPROC_DIR": " "}
    assert multiproc_dir_default(environ, var_dir=tmp_path, django_env="development") == (
        tmp_path / "prometheus-multiproc"
    )
    assert environ["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path / "prometheus-multiproc")


@pytest.mark.parametrize("django_env", ["development", "production", "test"])
def test_a_directory_set_explicitly_is_kept(tmp_path: Path, django_env: str) -> None:
    environ = {"PROMETHEUS_MULTIPROC_DIR": "/srv/metrics"}
    assert multiproc_dir_default(environ, var_dir=tmp_path, django_env=django_env) == Path("/srv/metrics")
    assert environ == {"PROMETHEUS_MULTIPROC_DIR": "/srv/metrics"}


def test_in_the_test_environment_an_unset_one_stays_unset(tmp_path: Path) -> None:
    environ = {"OTHER": "x"}
    assert multiproc_dir_default(environ, var_dir=tmp_path, django_env="test") is None
    assert environ == {"OTHER": "x"}


def test_in_the_test_environment_an_empty_one_is_removed(tmp_path: Path) -> None:
    # prometheus_client would take an empty value as "files, in the working directory".
    environ = {"PROMETHEUS_MULTIPROC_DIR": ""}
    assert multiproc_dir_default(environ, var_dir=tmp_path, django_env="test") is None
    assert environ == {}


def test_install_creates_the_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "a" / "b"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(target))
    assert multiproc_dir_install(var_dir=tmp_path, django_env="production") == target
    assert target.is_dir()


def test_install_refuses_a_directory_it_cannot_create(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "a-file" / "metrics"))
    with pytest.raises(ImproperlyConfigured, match=r"PROMETHEUS_MULTIPROC_DIR: cannot create .*a-file/metrics"):
        multiproc_dir_install(var_dir=tmp_path, django_env="production")


def test_install_leaves_it_unset_when_prometheus_client_already_chose_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This test process imported prometheus_client without the variable: its values are in memory,
    # and pointing /metrics at a directory now would hide them.
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with pytest.warns(RuntimeWarning, match="imported before the settings"):
        assert multiproc_dir_install(var_dir=tmp_path, django_env="production") is None
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    assert not (tmp_path / "prometheus-multiproc").exists()


def _settings_in_a_fresh_process(tmp_path: Path, **env: str) -> dict[str, Any]:
    """Loads the real settings and Django in a new interpreter: what prometheus_client chose there."""
    script = (
        "import json, os, django; django.setup(); from prometheus_client import values; "
        "print(json.dumps({'dir': os.environ.get('PROMETHEUS_MULTIPROC_DIR'), "
        "'files': values.ValueClass._multiprocess}))"
    )
    base = {k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "DJANGO_ENV", "ENVIRONMENT")}
    full_env = {**base, "DJANGO_SETTINGS_MODULE": "billing_service.settings", "VAR_DIR": str(tmp_path), **env}
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", script], cwd=ROOT, env=full_env, capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_outside_tests_the_real_settings_set_the_default_before_prometheus_client_chooses(tmp_path: Path) -> None:
    dotenv = ROOT / ".env"
    if dotenv.is_file() and "\nPROMETHEUS_MULTIPROC_DIR=" in "\n" + dotenv.read_text():
        pytest.skip("the local .env sets PROMETHEUS_MULTIPROC_DIR, which the development settings read")
    seen = _settings_in_a_fresh_process(tmp_path, DJANGO_ENV="development")
    assert seen == {"dir": str(tmp_path / "prometheus-multiproc"), "files": True}
    assert (tmp_path / "prometheus-multiproc").is_dir()


def test_under_the_test_settings_values_stay_in_memory(tmp_path: Path) -> None:
    assert _settings_in_a_fresh_process(tmp_path, DJANGO_ENV="test") == {"dir": None, "files": False}


def test_empty_removes_only_metric_files(tmp_path: Path) -> None:
    (tmp_path / "counter_1.db").write_bytes(b"")
    (tmp_path / "histogram_2.db").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not ours")
    assert multiproc_dir_empty(tmp_path) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


# --- the worker's exporter ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def exporter_stopped() -> Iterator[None]:
    yield
    worker_metrics.exporter_stop()


def test_the_exporter_serves_every_worker_processs_counters_from_the_directory(
    settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exporter_stopped: None
) -> None:
    # Another process (as a pool process would) counts into the directory, then exits.
    count = "from prometheus_client import Counter; Counter('test_exporter_probe', 'A probe.').inc(3)"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", count], env=env, check=True)  # noqa: S603
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    settings.WORKER_METRICS_PORT = _free_port()
    settings.WORKER_METRICS_ADDR = "127.0.0.1"
    worker_metrics.exporter_start()
    url = f"http://127.0.0.1:{settings.WORKER_METRICS_PORT}/metrics"
    assert "test_exporter_probe_total 3.0" in requests.get(url, timeout=5).text

    worker_metrics.exporter_stop()
    with pytest.raises(requests.ConnectionError):  # the port is given back with the worker
        requests.get(url, timeout=5)


def test_without_a_directory_there_is_no_exporter(
    settings: Any, monkeypatch: pytest.MonkeyPatch, exporter_stopped: None, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    settings.WORKER_METRICS_PORT = _free_port()
    worker_metrics.exporter_start()
    assert worker_metrics._exporter == []
    assert "worker_metrics_no_directory" in caplog.text


def test_port_zero_turns_the_exporter_off(settings: Any, exporter_stopped: None) -> None:
    settings.WORKER_METRICS_PORT = 0
    worker_metrics.exporter_start()
    assert worker_metrics._exporter == []


def test_a_taken_port_is_logged_and_the_worker_runs_on(
    settings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    exporter_stopped: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        settings.WORKER_METRICS_PORT = holder.getsockname()[1]
        settings.WORKER_METRICS_ADDR = "127.0.0.1"
        worker_metrics.exporter_start()  # no exception: a worker without metrics still works
    assert worker_metrics._exporter == []
    assert "worker_metrics_port_unavailable" in caplog.text


def test_the_test_environment_gives_the_exporter_no_port() -> None:
    from django.conf import settings

    assert settings.WORKER_METRICS_PORT == 0  # test workers take no fixed port (9808 elsewhere)
    assert settings.WORKER_METRICS_ADDR == "127.0.0.1"


def test_a_pool_process_that_exits_takes_its_live_gauges_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    (tmp_path / "gauge_livesum_4242.db").write_bytes(b"")
    (tmp_path / "counter_4242.db").write_bytes(b"")
    worker_metrics.process_exited(pid=4242)
    assert [p.name for p in tmp_path.iterdir()] == ["counter_4242.db"]  # totals outlive the process


# --- make run -------------------------------------------------------------------------------------


def test_the_banner_names_the_merged_metrics_and_the_workers_exporter(settings: Any, tmp_path: Path) -> None:
    settings.PROMETHEUS_MULTIPROC_DIR = tmp_path / "prometheus-multiproc"
    settings.WORKER_METRICS_ADDR = "127.0.0.1"
    settings.WORKER_METRICS_PORT = _free_port()
    text = "\n".join(Command()._metrics_help("http://127.0.0.1:8000"))
    assert "http://127.0.0.1:8000/metrics: web, worker and beat together" in text
    assert str(tmp_path / "prometheus-multiproc") in text
    assert f"http://127.0.0.1:{settings.WORKER_METRICS_PORT}/metrics" in text


def test_the_banner_says_when_the_exporter_cannot_listen(settings: Any, tmp_path: Path) -> None:
    settings.PROMETHEUS_MULTIPROC_DIR = tmp_path
    settings.WORKER_METRICS_ADDR = "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        settings.WORKER_METRICS_PORT = holder.getsockname()[1]
        text = "\n".join(Command()._metrics_help("http://127.0.0.1:8000"))
    assert f"port {settings.WORKER_METRICS_PORT} is in use" in text
    settings.WORKER_METRICS_PORT = 0
    assert "exporter is off (WORKER_METRICS_PORT=0)" in "\n".join(Command()._metrics_help("http://127.0.0.1:8000"))


def test_make_run_empties_the_directory_before_starting_its_processes(settings: Any, tmp_path: Path) -> None:
    (tmp_path / "counter_99999.db").write_bytes(b"")  # a previous run's
    settings.PROMETHEUS_MULTIPROC_DIR = tmp_path
    Command()._metrics_dir_prepare()
    assert list(tmp_path.iterdir()) == []
