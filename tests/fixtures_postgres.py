"""Fixtures: a real PostgreSQL server (the distribution's package, `wal_level=logical`) on a free port.

`postgres_server` is one server for the whole session: `initdb` in a fresh temporary directory and `postgres`
run as an unprivileged user (Popen's `user=`: the package's `postgres` user, or `sensorium-pg`, created when
missing; the tests run as root and PostgreSQL refuses to run as root), listening on 127.0.0.1 only, password
authentication (SCRAM) for every TCP connection. A server that cannot start fails the test run (never a skip),
with its log.
`postgres_db` is a private database per test, owned by a role with a password and the REPLICATION attribute (what
the `postgres` source kind needs); `restart()` stops and starts the server (same port, same data).

Binaries are found under `/usr/lib/postgresql/*/bin` (Debian's layout; the newest version wins). `.ci/run`
installs `postgresql` and the `wal2json` output plugin.
"""

from __future__ import annotations

import contextlib
import glob
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.markers import needs_integration_marker

SUPERUSER = "postgres"
_FALLBACK_USER = "sensorium-pg"


def bin_dir() -> Path:
    """The newest `/usr/lib/postgresql/<version>/bin` holding `initdb` and `postgres`."""
    found = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")
             if (Path(p) / "initdb").is_file() and (Path(p) / "postgres").is_file()]
    if not found:
        raise RuntimeError("no PostgreSQL server under /usr/lib/postgresql/*/bin: install the `postgresql` package "
                           "(.ci/run does)")
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


def run_as_user() -> str:
    """An unprivileged system user to run the server as (created when missing, idempotent)."""
    for name in ("postgres", _FALLBACK_USER):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", _FALLBACK_USER],
                   check=True, capture_output=True)
    return _FALLBACK_USER


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Database:
    """A test's database: its name, and its owner (a REPLICATION role) with the password."""

    host: str
    port: int
    name: str
    user: str
    password: str

    @property
    def dsn(self) -> str:
        return f"host={self.host} port={self.port} dbname={self.name} user={self.user} password={self.password}"

    def execute(self, *statements: str) -> None:
        """Run each statement in autocommit mode (each its own transaction) as the database's owner."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement.encode())

    def transaction(self, *statements: str) -> None:
        """Run the statements in one transaction."""
        with psycopg.connect(self.dsn) as conn:
            for statement in statements:
                conn.execute(statement.encode())


class PostgresServer:
    """One PostgreSQL server in a temporary directory, run as an unprivileged user."""

    def __init__(self) -> None:
        self.bin = bin_dir()
        self.user = run_as_user()
        self.dir = Path(tempfile.mkdtemp(prefix="sensorium-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.port = _free_port()
        self.password = secrets.token_hex(12)
        self.proc: subprocess.Popen[bytes] | None = None
        shutil.chown(self.dir, self.user)

    def _as_user(self) -> dict[str, Any]:
        """Popen arguments running the child as the unprivileged user (its pid is the server's own, so signals
        reach it: `runuser` would stand between)."""
        return {"user": self.user, "group": pwd.getpwnam(self.user).pw_gid, "extra_groups": [],
                "cwd": str(self.dir)}

    def init(self) -> None:
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password + "\n")
        shutil.chown(pwfile, self.user)
        done = subprocess.run([str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={pwfile}",
                               "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"],
                              capture_output=True, text=True, **self._as_user())
        pwfile.unlink()
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")

    def start(self) -> None:
        log = open(self.log, "ab")  # the child keeps writing it
        shutil.chown(self.log, self.user)
        self.proc = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
             "-c", "wal_level=logical", "-c", "max_replication_slots=64", "-c", "max_wal_senders=16",
             "-c", "fsync=off", "-c", "full_page_writes=off"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **self._as_user())
        log.close()
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with psycopg.connect(self.admin_dsn(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"postgres did not accept connections within 60 s:\n{self.log_tail()}"
                                       ) from None
                time.sleep(0.1)

    def stop(self) -> None:
        """A fast shutdown (SIGINT): open connections are cut, the data is kept."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-3000:]
        return ""

    def admin_dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={SUPERUSER} password={self.password}"

    def admin(self, *statements: str, dbname: str = "postgres") -> None:
        with psycopg.connect(self.admin_dsn(dbname), autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement.encode())

    def new_database(self) -> Database:
        """A fresh database owned by a fresh role with a random password and REPLICATION."""
        name = f"t_{uuid.uuid4().hex[:10]}"
        password = secrets.token_hex(12)
        self.admin(f"CREATE ROLE {name} LOGIN REPLICATION PASSWORD '{password}'",
                   f"CREATE DATABASE {name} OWNER {name}")
        return Database("127.0.0.1", self.port, name, name, password)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def postgres_db(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[Database]:
    """A private database of the session server; its replication slots are dropped after the test."""
    needs_integration_marker(request, "the PostgreSQL server (postgres_db)")
    if not postgres_server.running:  # a previous test stopped it and failed before restarting
        postgres_server.start()
    db = postgres_server.new_database()
    yield db
    if postgres_server.running:
        with psycopg.connect(postgres_server.admin_dsn(), autocommit=True) as conn:
            slots = conn.execute("SELECT slot_name FROM pg_replication_slots WHERE database = %s",
                                 (db.name,)).fetchall()
            for (slot,) in slots:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
