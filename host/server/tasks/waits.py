"""``tasks.wait``: bounded per connection, and dying with the connection."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.protocol.tasks import TaskRecord, TaskWait
from taskroom.host.server.participant import Participant
from taskroom.host.server.tasks.live import LiveTask

MAX_WAITS_PER_CONNECTION = 1000
"""Concurrent ``tasks.wait`` requests one connection may have open."""


class Waits:
    """The open waits of each connection, so they can be counted and cancelled."""

    def __init__(self, live: dict[str, LiveTask]) -> None:
        self.live = live
        self.by_connection: dict[Participant, set[asyncio.Task[Any]]] = {}

    async def wait(self, p: Participant, records: list[TaskRecord], req: TaskWait) -> bool:
        """Wait until the tasks finish as ``req.mode`` asks; True if the timeout came first."""
        mine = self.by_connection.setdefault(p, set())
        if len(mine) >= MAX_WAITS_PER_CONNECTION:
            raise RoomError(
                ErrorCode.UNAVAILABLE,
                f"this connection already has {MAX_WAITS_PER_CONNECTION} waits open",
            )
        futures = []
        for record in records:
            live = self.live.get(record.id)
            if live is not None:
                fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                live.waiters.append(fut)
                futures.append((live, fut))
        finished_now = len(records) - len(futures)
        timed_out = False
        me = asyncio.current_task()
        if me is not None:
            mine.add(me)  # cancelled if this connection leaves: waits die with it
        try:
            if futures and not (req.mode == "first" and finished_now):
                when = asyncio.FIRST_COMPLETED if req.mode == "first" else asyncio.ALL_COMPLETED
                _, pending = await asyncio.wait(
                    [f for _, f in futures], timeout=req.timeout, return_when=when
                )
                timed_out = bool(pending) and (req.mode == "all" or len(pending) == len(futures))
        finally:
            if me is not None:
                mine.discard(me)
            if not mine:
                self.by_connection.pop(p, None)
            for live, fut in futures:
                fut.cancel()
                with contextlib.suppress(ValueError):
                    live.waiters.remove(fut)
        return timed_out

    def drop(self, p: Participant) -> None:
        """Cancel the waits of a connection that has gone."""
        for wait in self.by_connection.pop(p, ()):
            wait.cancel()

    @staticmethod
    def release(live: LiveTask) -> None:
        """Wake everyone waiting for a task that has just finished."""
        for waiter in live.waiters:
            if not waiter.done():
                waiter.set_result(None)
