"""Worker processes: one agent served by several processes, so a runner uses every core.

A Python process runs its event loop on one core, and an LLM runner spends its CPU in the
HTTP client (about 2 ms a request), so one process tops out long before a thousand tasks
in flight. With ``workers=N`` a service path's agent runs in the service process and in
N-1 worker processes; each joins the room with the token the room minted for the call, so
the room sees N instances of the agent and spreads tasks over them (least loaded first).

Workers are started with the ``spawn`` method, so the agent factory must be importable by
name (a class or a module-level function), which :func:`check_factory` checks up front.
They leave with the instance: when the room dismisses it, its connection closes for good,
or the service stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import pickle
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

logger = logging.getLogger(__name__)

STOP_GRACE = 5.0
"""Seconds a worker has to leave its room before it is killed."""

_context = multiprocessing.get_context("spawn")


def check_factory(factory: Callable[[], Any], workers: int) -> None:
    """Refuse a factory worker processes cannot import (a lambda, a closure)."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    if workers == 1:
        return
    try:
        pickle.dumps(factory)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise ValueError(
            f"workers={workers} needs an agent factory other processes can import by name "
            f"(a class or a module-level function), not {factory!r}: {exc}"
        ) from None


@dataclass
class WorkerPool:
    """The worker processes serving one agent instance beside the service's own."""

    processes: list[BaseProcess] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid is not None]

    async def stop(self) -> None:
        """Ask each worker to leave its room (SIGTERM), then kill what is left."""
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        loop = asyncio.get_running_loop()
        for process in self.processes:
            await loop.run_in_executor(None, process.join, STOP_GRACE)
            if process.is_alive():
                logger.warning(
                    "worker %s did not leave within %g s; killing it", process.pid, STOP_GRACE
                )
                process.kill()
                await loop.run_in_executor(None, process.join, STOP_GRACE)
        self.processes.clear()


async def start_workers(
    factory: Callable[[], Any],
    count: int,
    room_url: str,
    room_name: str,
    token: str,
    *,
    timeout: float,
) -> WorkerPool:
    """Start ``count`` workers, each with its own agent in the room; returns once all have
    started, or stops them all and raises with the first worker's reason."""
    pool = WorkerPool()
    pipes: list[Connection] = []
    for _ in range(count):
        receive, send = _context.Pipe(duplex=False)
        process = _context.Process(
            target=_worker_main,
            args=(factory, room_url, room_name, token, send),
            name=f"taskroom-worker-{room_name}",
            daemon=True,
        )
        process.start()
        send.close()
        pool.processes.append(process)
        pipes.append(receive)
    try:
        loop = asyncio.get_running_loop()
        for receive in pipes:
            status = await asyncio.wait_for(loop.run_in_executor(None, _receive, receive), timeout)
            if status != "ready":
                raise RuntimeError(f"a worker process failed to start: {status}")
    except BaseException:
        await pool.stop()
        raise
    finally:
        for receive in pipes:
            receive.close()
    return pool


def _receive(pipe: Connection) -> str:
    try:
        return str(pipe.recv())
    except EOFError:
        return "it exited before starting its agent"


def _worker_main(
    factory: Callable[[], Any], room_url: str, room_name: str, token: str, report: Connection
) -> None:
    """A worker process: join, start the agent, serve until told to stop."""
    logging.basicConfig(level=logging.INFO, format=f"worker {os.getpid()}: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(factory, room_url, room_name, token, report))


async def _serve(
    factory: Callable[[], Any], room_url: str, room_name: str, token: str, report: Connection
) -> None:
    from taskroom.host.client.room_client import RoomClient
    from taskroom.host.service.service_host import _keep_token_fresh

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    client = RoomClient(room_url, room_name, token)
    try:
        agent = factory()
        await client.connect()
        await agent.start(room=client)
    except BaseException as exc:
        report.send(f"{type(exc).__name__}: {exc}")
        await client.close()
        raise SystemExit(1) from None
    report.send("ready")
    report.close()
    client.on("closed", lambda _: stopping.set())
    client.on("room.dismissed", lambda _: stopping.set())
    refresher = loop.create_task(_keep_token_fresh(client))
    try:
        await stopping.wait()
    finally:
        refresher.cancel()
        with contextlib.suppress(Exception):
            await agent.stop()
        await client.close()
