"""The task API from a participant's side: start, status, result, wait, cancel, list."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskroom.host.client.room_client import RoomClient


class TasksClient:
    """Thin, typed wrappers over the room's ``tasks.*`` requests."""

    def __init__(self, room: RoomClient) -> None:
        self.room = room

    async def start(
        self,
        agent: str,
        arguments: dict[str, Any] | None = None,
        *,
        models: Sequence[str] | None = None,
        read_only: bool = False,
        deadline: float | None = None,
        inactivity_timeout: float | None = None,
    ) -> dict[str, Any]:
        """Start a task (or one per model, as a batch); returns ids at once."""
        data: dict[str, Any] = {
            "agent": agent,
            "arguments": arguments or {},
            "read_only": read_only,
        }
        if models:
            data["models"] = list(models)
        if deadline:
            data["deadline"] = deadline
        if inactivity_timeout:
            data["inactivity_timeout"] = inactivity_timeout
        return await self.room.request("tasks.start", data)

    async def get(self, task_id: str) -> dict[str, Any]:
        return await self.room.request("tasks.get", {"task_id": task_id})

    async def result(self, task_id: str) -> dict[str, Any]:
        return await self.room.request("tasks.result", {"task_id": task_id})

    async def wait(
        self,
        task_id: str | None = None,
        *,
        batch_id: str | None = None,
        mode: str = "all",
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"mode": mode, "timeout": timeout}
        data.update({"task_id": task_id} if task_id else {"batch_id": batch_id})
        return await self.room.request("tasks.wait", data)

    async def cancel(
        self, task_id: str | None = None, *, batch_id: str | None = None
    ) -> dict[str, Any]:
        data = {"task_id": task_id} if task_id else {"batch_id": batch_id}
        return await self.room.request("tasks.cancel", data)

    async def list(self, **filters: Any) -> dict[str, Any]:
        return await self.room.request(
            "tasks.list", {k: v for k, v in filters.items() if v is not None}
        )

    async def subscribe(
        self, task_id: str | None = None, *, batch_id: str | None = None, all: bool = False
    ) -> None:
        data: dict[str, Any] = {"all": all}
        if task_id:
            data["task_id"] = task_id
        if batch_id:
            data["batch_id"] = batch_id
        await self.room.request("tasks.subscribe", data)

    async def run(
        self,
        agent: str,
        arguments: dict[str, Any] | None = None,
        *,
        timeout: float = 600.0,
        **kw: Any,
    ) -> dict[str, Any]:
        """Start one task and wait for it; returns its final snapshot."""
        started = await self.start(agent, arguments, **kw)
        task_id = started["task_ids"][0]
        waited = await self.wait(task_id, timeout=timeout)
        return waited["tasks"][0]
