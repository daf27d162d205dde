"""``tasks.checkpoint`` and ``tasks.resume``: a running task's checkpoint, kept with its record.

Only the participant the room is running the task on may write or read it; to anyone
else the task does not exist here (``not_found``, the same answer as for a wrong id), so
a checkpoint cannot be used to learn about or tamper with another participant's task.
"""

from __future__ import annotations

from typing import Any, cast

from taskroom.host.protocol import ErrorCode, Frame, RoomError
from taskroom.host.protocol.checkpoint import TaskCheckpoint
from taskroom.host.protocol.tasks import TaskRef
from taskroom.host.server.participant import Participant
from taskroom.host.server.room import Handler, Room
from taskroom.host.server.tasks.live import LiveTask
from taskroom.host.server.tasks.store import TaskStore, TaskStoreError


class Checkpoints:
    """The checkpoint requests of one room."""

    def __init__(self, room: Room, store: TaskStore, live: dict[str, LiveTask]) -> None:
        self.room_name = room.name
        self.store = store
        self.live = live
        for type_, fn in {"tasks.checkpoint": self._save, "tasks.resume": self._resume}.items():
            room.handle(type_, cast(Handler, fn))

    def _serving(self, p: Participant, task_id: str) -> LiveTask:
        live = self.live.get(task_id)
        if live is None or live.call is None or live.call.host is not p:
            raise RoomError(
                ErrorCode.NOT_FOUND,
                f"you are not running a task {task_id!r} in room {self.room_name!r}",
            )
        return live

    async def _save(self, p: Participant, req: TaskCheckpoint, frame: Frame) -> dict[str, Any]:
        self._serving(p, req.task_id)
        data = req.model_dump(mode="json", exclude={"task_id"})
        try:
            await self.store.save_checkpoint(self.room_name, req.task_id, data)
        except TaskStoreError as exc:
            raise RoomError(
                ErrorCode.FAILED, f"the checkpoint could not be stored: {exc}"
            ) from None
        return {"task_id": req.task_id, "turn": req.turn}

    async def _resume(self, p: Participant, req: TaskRef, frame: Frame) -> dict[str, Any]:
        self._serving(p, req.task_id)
        try:
            saved = await self.store.checkpoint(self.room_name, req.task_id)
        except TaskStoreError as exc:
            raise RoomError(ErrorCode.FAILED, f"the checkpoint could not be read: {exc}") from None
        return {
            "task_id": req.task_id,
            "checkpoint": {**saved, "task_id": req.task_id} if saved is not None else None,
        }
