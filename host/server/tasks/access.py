"""Which tasks a participant may see, and loading them for it."""

from __future__ import annotations

from typing import Any

from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.protocol.tasks import TaskOrBatch, TaskRecord
from taskroom.host.server.participant import Participant
from taskroom.host.server.tasks.live import LiveTask
from taskroom.host.server.tasks.store import TaskStore

RECENT_EVENTS = 10


def can_access(p: Participant, record: TaskRecord) -> bool:
    """A task is its caller's (or the user an agent acts for), or anyone's with tasks.all."""
    if p.allows("tasks.all") or p.allows("*"):
        return True
    behalf = record.caller.get("on_behalf_of") or {}
    return p.name in (record.caller.get("name"), behalf.get("name"))


class TaskReader:
    """Loads tasks for a participant, the live copy first; unseen tasks do not exist."""

    def __init__(self, room_name: str, store: TaskStore, live: dict[str, LiveTask]) -> None:
        self.room_name = room_name
        self.store = store
        self.live = live

    def current(self, record: TaskRecord) -> TaskRecord:
        live = self.live.get(record.id)
        return live.record if live else record

    async def load(self, p: Participant, task_id: str) -> TaskRecord:
        live = self.live.get(task_id)
        record = live.record if live else await self.store.get(self.room_name, task_id)
        if record is None or not can_access(p, record):
            raise RoomError(ErrorCode.NOT_FOUND, f"no task {task_id!r} in room {self.room_name!r}")
        return record

    async def batch(self, p: Participant, batch_id: str) -> list[TaskRecord]:
        records = [
            r
            for r in await self.store.list(self.room_name, batch_id=batch_id, limit=500)
            if can_access(p, r)
        ]
        if not records:
            raise RoomError(
                ErrorCode.NOT_FOUND, f"no batch {batch_id!r} in room {self.room_name!r}"
            )
        return [self.current(r) for r in records]

    async def targets(self, p: Participant, req: TaskOrBatch) -> list[TaskRecord]:
        """The task or the batch a request names."""
        if req.task_id:
            return [await self.load(p, req.task_id)]
        return await self.batch(p, req.batch_id or "")

    async def snapshot(self, record: TaskRecord, *, events: int = RECENT_EVENTS) -> dict[str, Any]:
        """A task as answered to clients: the record, its latest events and a poll hint."""
        data = record.model_dump(mode="json")
        data["events"] = (
            [
                e.model_dump(mode="json")
                for e in await self.store.events(self.room_name, record.id, limit=events)
            ]
            if events
            else []
        )
        data["poll_interval"] = (
            None if record.finished else (1.0 if record.status == "running" else 2.0)
        )
        return data
