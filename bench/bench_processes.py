"""What the benchmark scripts share: free ports, child processes, waiting for servers."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import httpx2 as httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SECRET = "bench-secret-" + "x" * 32


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, *, main_thread: bool = False) -> float:
    """User + system CPU time of process ``pid`` so far, from /proc: all its threads, or
    with ``main_thread`` only the one running its event loop (whose id is the pid's)."""
    path = f"/proc/{pid}/task/{pid}/stat" if main_thread else f"/proc/{pid}/stat"
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


PACKAGE_DIRS = ("host", "agents", "toolkits", "invoke")
"""Top-level folders that form the ``taskroom`` namespace (see pyproject.toml)."""


def source_env(checkout: str) -> dict[str, str]:
    """Environment that makes a child import ``taskroom`` from another checkout of the
    project (say, the commit before a change), so one run can measure both side by side.

    The checkout's folders are linked under a temporary ``taskroom/`` put first on
    ``PYTHONPATH``; it wins over the installed (editable) copy.
    """
    source = Path(checkout).resolve()
    missing = [d for d in PACKAGE_DIRS if not (source / d).is_dir()]
    if missing:
        raise SystemExit(f"error: {source} is not a taskroom checkout (no {', '.join(missing)})")
    links = Path(tempfile.mkdtemp(prefix="taskroom-baseline-"))
    atexit.register(shutil.rmtree, links, True)
    (links / "taskroom").mkdir()
    for d in PACKAGE_DIRS:
        (links / "taskroom" / d).symlink_to(source / d)
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(links), os.environ.get("PYTHONPATH")]))}


class ScriptChild:
    """A process running its bench script's own ``_serve ROLE ARGS...`` entry; it prints
    ``READY <port>`` when up. Subclasses name the script."""

    script: str = ""

    def __init__(self, role: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.role = role
        self.args = args
        self.env = env or {}
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 20.0) -> str:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            self.script,
            "_serve",
            self.role,
            *self.args,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            line = b""
        text = line.decode().strip()
        if not text.startswith("READY "):
            await self.stop()
            raise RuntimeError(f"the {self.role} process did not start (said {text!r})")
        return text.split()[1]

    def cpu_seconds(self, *, main_thread: bool = False) -> float:
        """User + system CPU time of the process (or of its main thread) so far."""
        assert self.proc is not None
        return cpu_seconds(self.proc.pid, main_thread=main_thread)

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


def run_child(main: Coroutine[Any, Any, None], *, room: bool, profile: bool | None = None) -> None:
    """Run a bench child's coroutine until it ends or the process is terminated. For the
    room (or any child with ``profile``), with ``TASKROOM_BENCH_PROFILE=<file>`` it runs
    under cProfile and writes its stats there at the end; for the room, with
    ``TASKROOM_BENCH_LOOP=uvloop`` it runs on uvloop."""
    profile_to = (
        os.environ.get("TASKROOM_BENCH_PROFILE") if (room if profile is None else profile) else None
    )
    profiler = None
    if profile_to:
        import cProfile

        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        profiler = cProfile.Profile()
        profiler.enable()
    try:
        with contextlib.suppress(KeyboardInterrupt):
            if room and os.environ.get("TASKROOM_BENCH_LOOP") == "uvloop":
                import uvloop

                uvloop.run(main)
            else:
                asyncio.run(main)
    finally:
        if profiler is not None and profile_to:
            profiler.disable()
            profiler.dump_stats(profile_to)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A child process run from the project root, its output discarded."""
    return subprocess.Popen(
        args,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def wait_up(url: str) -> None:
    """Poll ``url`` until it answers (20 s at most)."""
    async with httpx.AsyncClient() as http:
        for _ in range(200):
            try:
                if (await http.get(url)).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")
