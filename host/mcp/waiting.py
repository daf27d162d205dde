"""Following room tasks while an MCP call blocks: pushed updates and readable progress lines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from taskroom.host.client.room_client import RoomClient
from taskroom.host.protocol.progress import describe_event
from taskroom.host.protocol.tasks import FINISHED


class TaskWatch:
    """Wakes a waiter when a watched task changes and keeps its latest progress line."""

    def __init__(self, task_id: str | None, batch_id: str | None) -> None:
        self.task_id = task_id
        self.batch_id = batch_id
        self.changed = asyncio.Event()
        self.latest: tuple[str, str] | None = None
        """(task id, line) of the newest progress event pushed by the room."""

    def _mine(self, event: dict[str, Any]) -> bool:
        if self.task_id is not None:
            return event.get("task_id") == self.task_id
        return event.get("batch_id") == self.batch_id

    def on_progress(self, event: dict[str, Any]) -> None:
        if self._mine(event):
            self.latest = (str(event.get("task_id")), describe_event(event.get("data") or {}))

    def on_updated(self, event: dict[str, Any]) -> None:
        if self._mine(event):
            self.changed.set()

    def progress_line(self, tasks: list[dict[str, Any]], elapsed: float) -> str:
        """What a progress notification says: status (or batch count) and the latest event."""
        line = self._latest_line(tasks)
        if len(tasks) == 1:
            head = tasks[0]["status"]
        else:
            done = sum(t["status"] in FINISHED for t in tasks)
            head = f"{done}/{len(tasks)} finished"
        return f"{head}{': ' + line if line else ''} ({elapsed:.0f} s)"

    def _latest_line(self, tasks: list[dict[str, Any]]) -> str | None:
        if self.latest is not None:
            task_id, line = self.latest
            if len(tasks) > 1:
                model = next((t.get("model") for t in tasks if t["id"] == task_id), None)
                return f"[{model or task_id}] {line}"
            return line
        events = tasks[0].get("events") if len(tasks) == 1 else None
        return describe_event(events[-1]["data"]) if events else None


@asynccontextmanager
async def watch_tasks(
    room: RoomClient, *, task_id: str | None = None, batch_id: str | None = None
) -> AsyncIterator[TaskWatch]:
    """Subscribe to a task's (or batch's) pushes for the duration of a wait."""
    watch = TaskWatch(task_id, batch_id)
    offs = [room.on("task.progress", watch.on_progress), room.on("task.updated", watch.on_updated)]
    try:
        await room.tasks.subscribe(task_id, batch_id=batch_id)
        yield watch
    finally:
        for off in offs:
            off()
