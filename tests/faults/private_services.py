"""A private redis-server and a private PostgreSQL cluster, each on a free loopback port, for the fault
tests that stop and restart them (R2, R3). The shared PostgreSQL and Redis are never touched.

- PrivateRedis: `redis-server` with its own dir; stop() shuts it down the way `docker stop` does
  (SIGTERM: it saves its dataset first, as the redis:7 image's default save points make it), so a
  restart comes back with the keys it had, as production's would.
- PrivateCluster: `initdb` + `pg_ctl` in a temporary directory. PostgreSQL refuses to run as root,
  so as root every server binary runs as the `postgres` system user (`runuser`); the data directory
  is handed to that user. Trust authentication, TCP on 127.0.0.1 only, no Unix socket.
  `database_clone()` creates a database from another one on the shared server with `pg_dump`: the
  pytest test database already holds the whole schema, so no 60-second `migrate` is needed.

Under CI=true a missing binary fails the test (CI must run the fault suite); on a bare local run it
skips with a plain message.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.faults.processes import free_port, in_ci, wait_until


def missing(what: str) -> None:
    """A fault test cannot run here: a failure in CI, a plain skip on a bare local run."""
    if in_ci():
        pytest.fail(f"{what}: CI must provide it to run the fault suite")
    pytest.skip(what)


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


# --- redis ----------------------------------------------------------------------------------------
def redis_binary() -> str | None:
    return shutil.which("redis-server")


class PrivateRedis:
    """One redis-server on 127.0.0.1:<port>, its dump and log in `workdir`."""

    def __init__(self, workdir: Path, binary: str, *, persistent: bool = True) -> None:
        self.workdir = workdir
        self.binary = binary
        self.persistent = persistent
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    @contextlib.contextmanager
    def running(cls, workdir: Path, *, persistent: bool = True) -> Iterator[PrivateRedis]:
        binary = redis_binary()
        if binary is None:
            missing("redis-server is not installed (apt-get install redis-server)")
            raise AssertionError("unreachable")  # missing() raises; for the type checker
        workdir.mkdir(parents=True, exist_ok=True)
        redis = cls(workdir, binary, persistent=persistent)
        try:
            redis.start()
            yield redis
        finally:
            redis.kill()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        argv = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--logfile",
            str(self.workdir / "redis.log"),
            # persistent: as the redis:7 image runs (save points, so an RDB save on shutdown, loaded
            # on start); else memory only, and a restart comes back empty.
            "--save",
            "3600 1" if self.persistent else "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
        wait_until(self.answers, timeout=10, interval=0.05, what=f"private redis-server on port {self.port}")

    def answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            log = (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
            raise AssertionError(f"redis-server exited {self.process.returncode}: {log}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM, as `docker stop`: Redis saves its dataset and exits; the port closes."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None


# --- postgresql -----------------------------------------------------------------------------------
def postgres_bindir() -> Path | None:
    """The newest PostgreSQL installation's bin directory that has initdb and pg_ctl."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
    )
    for bindir in reversed(candidates):
        if (Path(bindir) / "initdb").exists() and (Path(bindir) / "pg_ctl").exists():
            return Path(bindir)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def _server_user() -> str | None:
    """The user to run the server binaries as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return ""
    return "postgres"


class PrivateCluster:
    """A PostgreSQL cluster of our own on 127.0.0.1:<port>, superuser `postgres`, trust auth."""

    def __init__(self, bindir: Path, root: Path, run_as: str | None) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.run_as = run_as
        self.port = free_port()
        self.running = False

    @classmethod
    @contextlib.contextmanager
    def running_cluster(cls) -> Iterator[PrivateCluster]:
        bindir = postgres_bindir()
        if bindir is None:
            missing("PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin")
            raise AssertionError("unreachable")
        run_as = _server_user()
        if run_as == "":
            missing("running as root and there is no `postgres` user to run the private PostgreSQL as")
        if run_as and shutil.which("runuser") is None:
            missing("running as root and `runuser` is not available to run the private PostgreSQL as postgres")
        # Not under pytest's tmp_path: that is private to root (0700), and the server runs as postgres.
        root = Path(tempfile.mkdtemp(prefix="faults-pg-"))
        cluster = cls(bindir, root, run_as)
        try:
            if run_as:
                entry = pwd.getpwnam(run_as)
                os.chown(root, entry.pw_uid, entry.pw_gid)
            cluster.initdb()
            cluster.start()
            yield cluster
        finally:
            with contextlib.suppress(Exception):
                cluster.stop(mode="immediate")
            shutil.rmtree(root, ignore_errors=True)

    def _as_server_user(self, argv: Sequence[str]) -> list[str]:
        return ["runuser", "-u", self.run_as, "--", *argv] if self.run_as else list(argv)

    def _run(self, argv: Sequence[str], *, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(  # noqa: S603 - our own argv, PostgreSQL's binaries
            self._as_server_user(argv), capture_output=True, text=True, timeout=timeout, check=False, **kwargs
        )
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(argv[:2])} exited {done.returncode}: {done.stderr[-2000:]}")
        return done

    def initdb(self) -> None:
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": "''",
            # A test cluster: durability against a machine crash is not what the tests measure.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "100",
            "shared_buffers": "64MB",
        }
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# tests/faults/private_services.py\n")
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def start(self) -> None:
        self._run([str(self.bindir / "pg_ctl"), "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30"])
        self.running = True
        wait_until(
            lambda: port_open(self.port), timeout=10, interval=0.05, what=f"private PostgreSQL on port {self.port}"
        )

    def stop(self, mode: str = "fast") -> None:
        """`fast` disconnects clients and shuts down cleanly; `immediate` is a crash (recovery on start)."""
        if not self.running:
            return
        self._run([str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "30"])
        self.running = False

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _psql_command(self, database: str) -> list[str]:
        """psql on this cluster's database, quiet, stopping at the first error, no ~/.psqlrc."""
        return [
            str(self.bindir / "psql"),
            *("-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database),
            *("-v", "ON_ERROR_STOP=1", "-X", "-q"),
        ]

    def psql(self, database: str, sql: str) -> str:
        """Runs `sql` (ON_ERROR_STOP) and returns its unaligned, tuples-only output."""
        done = subprocess.run(  # noqa: S603
            [*self._psql_command(database), "-A", "-t", "-c", sql],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"psql exited {done.returncode}: {done.stderr[-2000:]}")
        return done.stdout

    def query(self, database: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Runs one statement in its own connection (autocommit); its rows, [] when it returns none."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(sql, params)
            return list(cursor.fetchall()) if cursor.description is not None else []

    def database_clone(self, name: str, source: dict[str, Any]) -> str:
        """Creates `name` here as a copy (schema and rows) of the database that Django's settings_dict
        `source` names (the pytest test database); its URL."""
        self.psql("postgres", f'CREATE DATABASE "{name}"')
        env = {**os.environ, "PGPASSWORD": str(source.get("PASSWORD") or "")}
        dump = subprocess.run(  # noqa: S603
            [
                str(self.bindir / "pg_dump"),
                "-h",
                str(source.get("HOST") or "127.0.0.1"),
                "-p",
                str(source.get("PORT") or 5432),
                "-U",
                str(source.get("USER") or "postgres"),
                "--no-owner",
                "--no-privileges",
                str(source["NAME"]),
            ],
            capture_output=True,
            timeout=120,
            check=False,
            env=env,
        )
        if dump.returncode != 0:
            raise AssertionError(f"pg_dump exited {dump.returncode}: {dump.stderr.decode(errors='replace')[-2000:]}")
        load = subprocess.run(  # noqa: S603
            self._psql_command(name),
            input=dump.stdout,
            capture_output=True,
            timeout=120,
            check=False,
        )
        if load.returncode != 0:
            raise AssertionError(f"loading the dump exited {load.returncode}: {load.stderr.decode()[-2000:]}")
        return self.url(name)
