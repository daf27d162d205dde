"""Throwaway PostgreSQL and Redis servers for the tests that need them.

Each server runs from the machine's Debian packages (``make services`` installs them) in
a temporary folder, on a free loopback port, and is stopped at the end of the session.
PostgreSQL refuses to run as root, which CI is: then initdb and postgres run as an
unprivileged user that owns the temporary folder.

These tests are never skipped in CI: a server that cannot start fails them loudly. On a
machine without the binaries, ``TASKROOM_SKIP_SERVICES=1`` skips them instead.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.processes import free_port

UNPRIVILEGED_USER = os.environ.get("TASKROOM_SERVICES_USER", "nobody")
START_TIMEOUT = 30.0


class ServiceUnavailable(RuntimeError):
    """A server binary is missing or the server did not come up."""


def _missing(what: str) -> None:
    """Skip when allowed (binaries absent and TASKROOM_SKIP_SERVICES=1), else fail loudly."""
    message = f"{what} (run `make services` to install PostgreSQL and Redis)"
    if os.environ.get("TASKROOM_SKIP_SERVICES") == "1":
        pytest.skip(message)
    raise ServiceUnavailable(message)


def postgres_bindir() -> Path | None:
    """Debian keeps PostgreSQL's server binaries off PATH, in /usr/lib/postgresql/<ver>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent  # a link on PATH points into the real folder
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return versions[-1].parent if versions else None


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceUnavailable(f"{what} exited at start: {_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise ServiceUnavailable(f"{what} did not listen on port {port} within {START_TIMEOUT} s")


def _tail(log: Path) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-5:])
    except OSError:
        return "(no log)"


class _Server:
    """A server process in its own session; stop() and kill() end it and its children."""

    proc: subprocess.Popen[bytes] | None = None

    def kill(self) -> None:
        """SIGKILL: what a crashed machine looks like to the room server."""
        self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


class PostgresServer(_Server):
    """initdb in a temporary folder, then postgres on a free port with trust auth."""

    USER = "taskroom"

    def __init__(self) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            _missing("PostgreSQL is not installed (no initdb)")
            raise AssertionError("unreachable")
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="taskroom-pg-"))
        self.port = free_port()
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            user = pwd.getpwnam(UNPRIVILEGED_USER)
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        self.log = self.dir / "postgres.log"
        self._run(
            [
                str(bindir / "initdb"),
                "-D",
                str(self.dir / "data"),
                "-U",
                self.USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ]
        )
        self.start()

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{self.USER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start (or restart after stop/kill) on the same port and data folder."""
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(self.bindir / "postgres"),
                    "-D",
                    str(self.dir / "data"),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.dir),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "max_connections=200",
                    "-c",
                    "fsync=off",
                ],
                cwd=self.dir,
                stdout=log,
                stderr=log,
                start_new_session=True,
                **self._as,
            )
        _wait_port(self.port, self.proc, self.log, "postgres")
        self._wait_ready()

    def _wait_ready(self) -> None:
        """The port opens before the server accepts sessions; pg_isready tells them apart."""
        deadline = time.monotonic() + START_TIMEOUT
        args = [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)]
        while subprocess.run(args, capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise ServiceUnavailable(f"postgres is not ready: {_tail(self.log)}")
            time.sleep(0.05)

    def stop(self) -> None:
        self._signal(signal.SIGINT)  # postgres: "fast" shutdown

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _run(self, args: list[str]) -> None:
        done = subprocess.run(args, cwd=self.dir, capture_output=True, **self._as)
        if done.returncode != 0:
            raise ServiceUnavailable(
                f"{Path(args[0]).name} failed: {done.stderr.decode(errors='replace').strip()}"
            )


class RedisServer(_Server):
    """redis-server on a free port, nothing saved to disk."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            _missing("Redis is not installed (no redis-server)")
            raise AssertionError("unreachable")
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="taskroom-redis-"))
        self.port = free_port()
        self.log = self.dir / "redis.log"
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.dir),
                ],
                cwd=self.dir,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        _wait_port(self.port, self.proc, self.log, "redis-server")

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# --- fixtures: import them into a conftest or a test module ---------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        yield server
    finally:
        server.remove()


async def fresh_database(server: PostgresServer) -> str:
    """A new, empty database on ``server``; its DSN."""
    import asyncpg

    name = "t_" + secrets.token_hex(6)
    admin = await asyncpg.connect(server.dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return server.dsn_for(name)


@pytest.fixture
async def postgres_dsn(postgres_server: PostgresServer) -> str:
    """A fresh, empty database for one test (left behind: the server is thrown away)."""
    return await fresh_database(postgres_server)
