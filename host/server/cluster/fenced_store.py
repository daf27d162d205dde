"""A task store that writes for a room only while this node surely holds the room's lease.

The shared store (PostgreSQL) takes writes from every node; the lease decides which node
may write for which room. Each write first asks the node for its fencing token: a node
that lost the room, or paused past its lease's TTL, is refused before anything reaches
the store, so an old owner cannot overwrite what the new owner recorded.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from taskroom.host.protocol.tasks import TaskEvent, TaskRecord
from taskroom.host.server.cluster.errors import FencedOut
from taskroom.host.server.cluster.node import ClusterNode
from taskroom.host.server.tasks.store import StoredSchema, TaskStore, TaskStoreError


class FencedStore(TaskStore):
    """Wraps the shared store; reads pass through, writes are checked against the lease."""

    def __init__(self, inner: TaskStore, node: ClusterNode) -> None:
        self.inner = inner
        self.node = node

    def _check(self, room: str) -> None:
        try:
            self.node.check_write(room)
        except FencedOut as exc:
            raise TaskStoreError(exc.message) from None

    async def save(self, task: TaskRecord) -> None:
        self._check(task.room)
        await self.inner.save(task)

    async def save_many(self, tasks: Sequence[TaskRecord]) -> None:
        for room in {t.room for t in tasks}:
            self._check(room)
        await self.inner.save_many(tasks)

    async def add_event(self, room: str, task_id: str, data: dict[str, Any]) -> TaskEvent:
        self._check(room)
        return await self.inner.add_event(room, task_id, data)

    async def save_checkpoint(self, room: str, task_id: str, checkpoint: dict[str, Any]) -> None:
        self._check(room)
        await self.inner.save_checkpoint(room, task_id, checkpoint)

    async def put_schema(self, room: str, schema: StoredSchema) -> None:
        self._check(room)
        await self.inner.put_schema(room, schema)

    async def remove_schema(self, room: str, name: str) -> None:
        self._check(room)
        await self.inner.remove_schema(room, name)

    async def checkpoint(self, room: str, task_id: str) -> dict[str, Any] | None:
        return await self.inner.checkpoint(room, task_id)

    async def schemas(self, room: str) -> builtins.list[StoredSchema]:
        return await self.inner.schemas(room)

    async def get(self, room: str, task_id: str) -> TaskRecord | None:
        return await self.inner.get(room, task_id)

    async def list(
        self,
        room: str,
        *,
        status: str | None = None,
        agent: str | None = None,
        batch_id: str | None = None,
        caller: str | None = None,
        before: float | None = None,
        limit: int = 50,
    ) -> builtins.list[TaskRecord]:
        return await self.inner.list(
            room,
            status=status,
            agent=agent,
            batch_id=batch_id,
            caller=caller,
            before=before,
            limit=limit,
        )

    async def unfinished(self, room: str | None = None) -> builtins.list[TaskRecord]:
        return await self.inner.unfinished(room)

    async def events(self, room: str, task_id: str, *, limit: int = 50) -> builtins.list[TaskEvent]:
        return await self.inner.events(room, task_id, limit=limit)

    async def sweep(self, older_than: float) -> int:
        """Deletes only finished records, which no owner writes again: no lease needed."""
        return await self.inner.sweep(older_than)

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()
