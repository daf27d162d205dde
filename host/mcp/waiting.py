"""Blocking MCP calls on room tasks: the room's ``tasks.wait`` plus progress for the client.

The room does the waiting (one request, answered when the task or batch ends or the
timeout passes); the gateway only relays what the room pushes (``task.progress``,
``task.updated``) as MCP progress notifications, with a heartbeat in between so clients
whose request timeout resets on progress keep waiting through a long model call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from taskroom.host.client.room_client import RoomClient
from taskroom.host.protocol.progress import describe_event
from taskroom.host.protocol.tasks import FINISHED, MAX_WAIT_SECONDS

logger = logging.getLogger(__name__)

Snapshot = dict[str, Any]
Report = Callable[[float, str], Awaitable[None]]


class ProgressRelay:
    """Turns the room's pushes about some tasks into progress lines for one MCP call."""

    def __init__(self, tasks: list[Snapshot], report: Report) -> None:
        self.status = {t["id"]: t["status"] for t in tasks}
        self.models = {t["id"]: t.get("model") for t in tasks}
        self.report = report
        self.began = time.monotonic()
        self.latest: tuple[str, str] | None = None
        self.sent_at = self.began
        self._last_value = 0.0
        self._broken = False

    def line(self) -> str:
        """Status (or a batch's count) and the newest event, with the time waited so far."""
        elapsed = time.monotonic() - self.began
        if len(self.status) == 1:
            head = next(iter(self.status.values()))
        else:
            done = sum(s in FINISHED for s in self.status.values())
            head = f"{done}/{len(self.status)} finished"
        event = ""
        if self.latest is not None:
            task_id, text = self.latest
            who = f"[{self.models.get(task_id) or task_id}] " if len(self.status) > 1 else ""
            event = f": {who}{text}"
        return f"{head}{event} ({elapsed:.0f} s)"

    async def send(self) -> None:
        """One notification; progress values strictly increase, as MCP requires."""
        if self._broken:
            return
        now = time.monotonic()
        value = max(round(now - self.began, 2), round(self._last_value + 0.01, 2))
        self._last_value, self.sent_at = value, now
        try:
            await self.report(value, self.line())
        except Exception as exc:  # the client went away; the wait itself goes on
            logger.debug("progress notification failed: %s", exc)
            self._broken = True

    async def on_progress(self, event: dict[str, Any]) -> None:
        task_id = event.get("task_id")
        if task_id in self.status:
            self.latest = (str(task_id), describe_event(event.get("data") or {}))
            await self.send()

    def on_updated(self, event: dict[str, Any]) -> None:
        task_id = event.get("task_id")
        if task_id in self.status and isinstance(event.get("status"), str):
            self.status[task_id] = event["status"]

    async def heartbeat(self, interval: float) -> None:
        while True:
            await asyncio.sleep(max(0.05, self.sent_at + interval - time.monotonic()))
            if time.monotonic() - self.sent_at >= interval * 0.95:
                await self.send()


@asynccontextmanager
async def relayed(
    room: RoomClient,
    tasks: list[Snapshot],
    report: Report,
    interval: float,
    *,
    batch_id: str | None = None,
) -> AsyncIterator[ProgressRelay]:
    """Subscribe to the tasks' pushes and relay them (and a heartbeat) while the block runs."""
    relay = ProgressRelay(tasks, report)
    offs = [room.on("task.progress", relay.on_progress), room.on("task.updated", relay.on_updated)]
    beat: asyncio.Task[None] | None = None
    try:
        if batch_id is not None:
            await room.tasks.subscribe(batch_id=batch_id)
        else:
            for task in tasks:
                await room.tasks.subscribe(task["id"])
        beat = asyncio.create_task(relay.heartbeat(interval))
        yield relay
    finally:
        if beat is not None:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        for off in offs:
            off()


async def wait_until_finished(room: RoomClient, task_id: str) -> Snapshot:
    """The task's final snapshot, however long it runs (the room's deadline bounds it)."""
    while True:
        waited = await room.tasks.wait(task_id, timeout=MAX_WAIT_SECONDS)
        if not waited["timed_out"]:
            return waited["tasks"][0]


async def wait_for_next(room: RoomClient, task_ids: list[str], timeout: float) -> bool:
    """Wait until one of ``task_ids`` finishes; False if none did within ``timeout``.

    The room's own ``first`` mode answers at once when a task of the batch had already
    finished, so each unfinished task gets its own room wait and the first answer wins.
    """
    waits = [asyncio.create_task(room.tasks.wait(t, timeout=timeout)) for t in task_ids]
    try:
        for next_done in asyncio.as_completed(waits):
            if not (await next_done)["timed_out"]:
                return True
        return False
    finally:
        for wait in waits:
            wait.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
