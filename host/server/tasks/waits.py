"""Waiting for tasks to finish (``tasks.wait``, ``tasks.start`` with ``wait``): bounded per
connection, and dying with the connection."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from dataclasses import dataclass, field
from typing import Any

from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.protocol.tasks import TaskRecord
from taskroom.host.server.participant import Participant
from taskroom.host.server.tasks.live import LiveTask

MAX_WAITS_PER_CONNECTION = 1000
"""Requests one connection may have waiting at once, of both kinds together."""


@dataclass
class WaitingStart:
    """A ``tasks.start`` with ``wait`` not yet answered: what ``start_request`` cancels."""

    task_ids: list[str] = field(default_factory=list)
    cancelled_by: str | None = None
    """Set when a cancel came before its tasks were stored: they are cancelled once they are."""


class Waits:
    """The open waits of each connection, so they can be counted and cancelled."""

    def __init__(self, live: dict[str, LiveTask]) -> None:
        self.live = live
        self.by_connection: dict[Participant, set[asyncio.Task[Any]]] = {}
        self.starts: dict[tuple[Participant, int | str], WaitingStart] = {}
        self._starts_of: collections.Counter[Participant] = collections.Counter()

    def _check_room(self, p: Participant) -> None:
        if len(self.by_connection.get(p, ())) + self._starts_of[p] >= MAX_WAITS_PER_CONNECTION:
            raise RoomError(
                ErrorCode.UNAVAILABLE,
                f"this connection already has {MAX_WAITS_PER_CONNECTION} waits open",
            )

    @contextlib.contextmanager
    def start(self, p: Participant, ref: int | str) -> Any:
        """Hold a place for a waiting ``tasks.start`` from before its tasks are stored,
        so the limit holds for starts in flight together and a cancel can find it."""
        self._check_room(p)
        key = (p, ref)
        if key in self.starts:
            raise RoomError(
                ErrorCode.INVALID_REQUEST, f"request id {ref!r} is already waiting; use a new id"
            )
        entry = self.starts[key] = WaitingStart()
        self._starts_of[p] += 1
        try:
            yield entry
        finally:
            del self.starts[key]
            self._starts_of[p] -= 1
            if self._starts_of[p] <= 0:
                del self._starts_of[p]

    async def wait(
        self,
        p: Participant,
        records: list[TaskRecord],
        mode: str,
        timeout: float,
        *,
        placed: bool = False,
    ) -> bool:
        """Wait until the tasks finish (``mode`` "all" or "first"); True if the timeout came
        first. ``placed``: a waiting start that already holds its place (not counted twice)."""
        if not placed:
            self._check_room(p)
        waiting = [live for r in records if (live := self.live.get(r.id)) is not None]
        if not waiting or (mode == "first" and len(waiting) < len(records)):
            return False  # already finished, all or (for "first") one of them
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[bool] = loop.create_future()
        remaining = 1 if mode == "first" else len(waiting)

        def one_finished() -> None:
            nonlocal remaining
            remaining -= 1
            if remaining == 0 and not outcome.done():
                outcome.set_result(False)

        def time_out() -> None:
            if not outcome.done():
                outcome.set_result(True)

        for live in waiting:
            live.waiters.append(one_finished)
        timer = loop.call_later(timeout, time_out)
        mine = self.by_connection.setdefault(p, set())
        me = asyncio.current_task()
        if me is not None:
            mine.add(me)  # cancelled if this connection leaves: waits die with it
            if placed:
                self._starts_of[p] -= 1  # counted as an open wait now, not twice
        try:
            return await outcome
        finally:
            if me is not None and placed:
                self._starts_of[p] += 1
            timer.cancel()
            if me is not None:
                mine.discard(me)
            if not mine:
                self.by_connection.pop(p, None)
            for live in waiting:
                with contextlib.suppress(ValueError):
                    live.waiters.remove(one_finished)

    def drop(self, p: Participant) -> None:
        """Cancel the waits of a connection that has gone."""
        for wait in self.by_connection.pop(p, ()):
            wait.cancel()

    @staticmethod
    def release(live: LiveTask) -> None:
        """Wake everyone waiting for a task that has just finished."""
        for waiter in list(live.waiters):
            waiter()
