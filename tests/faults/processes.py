"""The service's own processes, started for one fault test on free loopback ports, and stopped by it.

Every process here binds 127.0.0.1 only, on a port found free just before, writes its output to a
log file in the test's directory (read it when a test fails), and is stopped by the test that started
it: terminate, wait, then kill, by its own PID only. Nothing here touches a process or service the
test did not start.

Shared with the other fault tests (keep these signatures stable): free_port(), wait_until(), Process
(and its stop()), start_process(), require_binary(). The service's processes: start_web() (gunicorn
with docker/gunicorn.conf.py, the shipped configuration, bound to a free loopback port),
start_worker() (the command that drains the ledger: worker_argv() is the one place to change it),
redis_server() (a private redis-server for the broker and the cache), service_env() (the environment
they share: the test database, the sandbox, the signing secret).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONF = ROOT / "docker" / "gunicorn.conf.py"
T = TypeVar("T")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_binary(name: str, *, search: list[str] | None = None) -> str:
    """The path of a program a fault test needs; missing, it fails the test in CI and skips it elsewhere."""
    found = shutil.which(name)
    for folder in search or []:
        candidate = Path(folder) / name
        if found is None and candidate.is_file() and os.access(candidate, os.X_OK):
            found = str(candidate)
    if found is None:
        message = f"{name} is not installed: the fault suite needs it"
        if in_ci():
            pytest.fail(message + " (CI must provide it)")
        pytest.skip(message)
    return found


def free_port() -> int:
    """A TCP port free on 127.0.0.1 at the time of the call (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], T], *, timeout: float, interval: float = 0.1, what: str = "condition") -> T:
    """Calls predicate until it returns something truthy, and returns that; AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:g} s")
        time.sleep(interval)


@dataclass
class Process:
    """One process a test started: its Popen, its log, and the way to stop it."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Sends sig to this process only (its PID, not its group), and reaps it on SIGKILL."""
        if self.alive():
            self.popen.send_signal(sig)
            if sig == signal.SIGKILL:
                self.popen.wait(timeout=10)

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
        """Signal (SIGTERM unless told), wait up to timeout, then kill. Safe to call twice. The exit code."""
        if self.alive():
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        return self.popen.returncode

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def start_process(name: str, argv: list[str], *, env: dict[str, str], log_dir: Path, cwd: Path = ROOT) -> Process:
    """Starts argv with its output in log_dir/<name>.log. The caller stops it (finally or fixture)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        popen = subprocess.Popen(  # noqa: S603 - our own interpreter and programs, no shell
            argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    return Process(name=name, popen=popen, log_path=log_path)


@contextlib.contextmanager
def running(process: Process) -> Iterator[Process]:
    """`with running(start_worker(...)) as worker:` stops it when the block ends, failing or not."""
    try:
        yield process
    finally:
        process.stop()


# --- reading a process ---------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    """Resident set size of one process in MB (VmRSS in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def children_of(pid: int) -> list[int]:
    """The PIDs whose parent is pid (gunicorn's workers under its master)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command may contain spaces and parentheses: the fields after the last ')' are fixed.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


# --- the service's processes --------------------------------------------------------------------


@dataclass
class Redis:
    process: Process
    port: int

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        self.process.stop()


def redis_server(workdir: Path) -> Redis:
    """A private, memory-only redis-server on a free loopback port (the broker and cache of one test).

    tests/faults/private_services.py has the one that R2 stops and restarts; this one only starts and
    stops, so that the storm's broker is nobody else's queue.
    """
    binary = require_binary("redis-server")
    port = free_port()
    argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    argv += ["--dir", str(workdir)]
    process = start_process(f"redis-{port}", argv, env=dict(os.environ), log_dir=workdir)
    redis = Redis(process, port)
    try:
        wait_until(lambda: _redis_pong(port) or _exited(process), timeout=10, what="redis-server answering")
    except BaseException:
        process.stop()
        raise
    if not process.alive():
        raise AssertionError(f"redis-server exited: {process.log_tail()}")
    return redis


def _redis_pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _exited(process: Process) -> bool:
    return not process.alive()


def live_database_url() -> str:
    """The test database pytest-django made, as a URL the processes can use (committed data only)."""
    from django.db import connection

    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def service_env(
    *,
    var_dir: Path,
    redis_url: str,
    broker_url: str,
    stripe_api_host: str | None = None,
    stripe_secret_key: str | None = None,
    webhook_secret: str | None = None,
    database_url: str | None = None,
    **extra: str,
) -> dict[str, str]:
    """The environment of the web server and workers of one test: the test database, its own Redis
    (cache and broker), the sandbox as Stripe, and a rate limit the load of a fault test stays under."""
    env = {
        key: value
        for key, value in os.environ.items()
        # The test process's own service settings must not leak into the processes it starts.
        if not key.startswith(("DJANGO_", "CELERY_", "STRIPE_", "REDIS_", "DATABASE_", "PYTEST_", "PROMETHEUS_"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "billing_service.settings",
            "DJANGO_ENV": "test",
            "DATABASE_URL": database_url or live_database_url(),
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": broker_url,
            "VAR_DIR": str(var_dir),
            "LOG_LEVEL": "WARNING",
            "API_RATE_LIMIT": "10000000/min",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if stripe_api_host:
        env["STRIPE_API_HOST"] = stripe_api_host
    if stripe_secret_key:
        env["STRIPE_SECRET_KEY"] = stripe_secret_key
    if webhook_secret:
        env["STRIPE_WEBHOOK_SECRETS"] = webhook_secret
    env.update(extra)
    return env


@dataclass
class WebServer:
    process: Process
    port: int
    base_url: str = field(init=False)

    def __post_init__(self) -> None:
        self.base_url = f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        """gunicorn's worker processes (not the master, which serves nothing)."""
        return children_of(self.process.pid)

    def stop(self) -> None:
        # SIGINT is gunicorn's quick shutdown: a test has no request to let finish, and SIGTERM's
        # graceful one waits on idle keep-alive connections for up to graceful_timeout (30 s).
        self.process.stop(timeout=10, sig=signal.SIGINT)


def web_argv(port: int) -> list[str]:
    """gunicorn as the container's web role runs it (docker/gunicorn.conf.py), on a loopback port."""
    return [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONF), "--bind", f"127.0.0.1:{port}"]


def start_web(env: dict[str, str], *, log_dir: Path, startup_timeout: float = 90.0) -> WebServer:
    port = free_port()
    process = start_process(f"web-{port}", web_argv(port), env=env, log_dir=log_dir)
    web = WebServer(process, port)
    try:
        wait_until(
            lambda: _http_ok(f"{web.base_url}/live") or _exited(process), timeout=startup_timeout, what="web /live"
        )
        if not process.alive():
            raise AssertionError(f"gunicorn exited: {process.log_tail()}")
    except BaseException:
        web.stop()
        raise
    return web


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - http://127.0.0.1 only
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def worker_argv() -> list[str]:
    """The process that drains the ledger: one process (solo pool), so its PID is the one that works,
    the one a test kills and the one whose memory it reads. Change it here when the drain changes."""
    return [sys.executable, "-m", "celery", "-A", "billing_service", "worker", "--pool", "solo", "-l", "WARNING"]


def start_worker(env: dict[str, str], *, log_dir: Path, name: str = "worker") -> Process:
    """A worker; it starts taking work once connected (a test waits on the work's effects, not on it)."""
    return start_process(name, worker_argv(), env=env, log_dir=log_dir)


def http_get_json(url: str, *, headers: dict[str, str] | None = None, timeout: float = 10) -> tuple[int, Any]:
    import json

    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - http://127.0.0.1 only
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return int(exc.code), None
