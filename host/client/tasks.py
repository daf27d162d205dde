"""The task API from a participant's side: start, status, result, wait, cancel, list."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from taskroom.host.protocol import RoomError
from taskroom.host.protocol.table import request_data

if TYPE_CHECKING:
    from taskroom.host.client.room_client import RoomClient


class TasksClient:
    """Typed wrappers over the room's ``tasks.*`` requests. Each request's data is built
    through its protocol model, so a bad argument fails here with ``invalid_request``."""

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
        data = request_data(
            "tasks.start",
            agent=agent,
            arguments=arguments or {},
            read_only=read_only,
            models=list(models) if models else None,
            deadline=deadline or None,
            inactivity_timeout=inactivity_timeout or None,
        )
        return await self.room.request("tasks.start", data)

    async def get(self, task_id: str) -> dict[str, Any]:
        return await self.room.request("tasks.get", request_data("tasks.get", task_id=task_id))

    async def result(self, task_id: str) -> dict[str, Any]:
        return await self.room.request(
            "tasks.result", request_data("tasks.result", task_id=task_id)
        )

    async def wait(
        self,
        task_id: str | None = None,
        *,
        batch_id: str | None = None,
        mode: str = "all",
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Wait up to ``timeout`` seconds for the task or batch; the request itself may
        take that long, so its own timeout is extended by as much."""
        data = request_data(
            "tasks.wait",
            task_id=task_id or None,
            batch_id=None if task_id else batch_id,
            mode=mode,
            timeout=timeout,
        )
        grace = self.room.request_timeout
        return await self.room.request(
            "tasks.wait", data, timeout=None if grace is None else timeout + grace
        )

    async def cancel(
        self, task_id: str | None = None, *, batch_id: str | None = None
    ) -> dict[str, Any]:
        data = request_data(
            "tasks.cancel", task_id=task_id or None, batch_id=None if task_id else batch_id
        )
        return await self.room.request("tasks.cancel", data)

    async def list(self, **filters: Any) -> dict[str, Any]:
        return await self.room.request("tasks.list", request_data("tasks.list", **filters))

    async def subscribe(
        self, task_id: str | None = None, *, batch_id: str | None = None, all: bool = False
    ) -> None:
        data = request_data(
            "tasks.subscribe", task_id=task_id or None, batch_id=batch_id or None, all=all
        )
        await self.room.request("tasks.subscribe", data)

    async def run(
        self,
        agent: str,
        arguments: dict[str, Any] | None = None,
        *,
        timeout: float = 600.0,
        read_only: bool = False,
        deadline: float | None = None,
        inactivity_timeout: float | None = None,
    ) -> dict[str, Any]:
        """Start one task and wait up to ``timeout`` seconds for it, in one request;
        returns its snapshot then (finished, unless the timeout came first). Cancelling the
        awaiting coroutine cancels the task, even before its id has come back."""
        data = request_data(
            "tasks.start",
            agent=agent,
            arguments=arguments or {},
            read_only=read_only,
            deadline=deadline or None,
            inactivity_timeout=inactivity_timeout or None,
            wait=timeout,
        )
        sent: list[int] = []
        grace = self.room.request_timeout
        try:
            answer = await self.room.request(
                "tasks.start",
                data,
                timeout=None if grace is None else timeout + grace,
                on_sent=sent.append,
            )
        except asyncio.CancelledError:
            if sent:
                with contextlib.suppress(RoomError):
                    await asyncio.shield(
                        self.room.request("tasks.cancel", {"start_request": sent[0]})
                    )
            raise
        task: dict[str, Any] = answer["tasks"][0]
        return task
