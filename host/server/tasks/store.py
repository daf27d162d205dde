"""Durable task records: the interface every task store implements.

Every run of an agent is a record here, so a finished result outlives the room process.
The interface is small on purpose and speaks only of records and events, so another
store (PostgreSQL through asyncpg, say) can implement it without SQLite's notions.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from taskroom.host.protocol.errors import TaskroomError
from taskroom.host.protocol.tasks import TaskEvent, TaskRecord

OnDamage = Literal["refuse", "fresh", "skip"]
"""What to do with a damaged store: refuse to open it (the default), move the damaged
file aside and start a new one, or skip the records that cannot be read."""


class TaskStoreError(TaskroomError):
    """The store cannot be opened, read or written; the message says which store and why."""


@dataclass(frozen=True)
class StoreStats:
    """Counters for tests and benchmarks."""

    commits: int
    cached_sequences: int


@dataclass(frozen=True)
class StoredSchema:
    """A room's named JSON Schema and the participant who first put it (its owner)."""

    name: str
    schema: dict[str, Any]
    owner: str


class TaskStore(ABC):
    """What the room needs from a task store.

    Every method is a coroutine: an implementation does its I/O off the event loop (a
    thread for SQLite, a network driver for PostgreSQL), so no room ever waits on a disk.
    A write is durable when its ``await`` returns, and a read issued after it sees it.
    Failures are raised as ``TaskStoreError``.
    """

    @abstractmethod
    async def save(self, task: TaskRecord) -> None:
        """Insert or replace one record."""

    @abstractmethod
    async def save_many(self, tasks: Sequence[TaskRecord]) -> None:
        """Insert or replace several records in one transaction: all are stored or none."""

    @abstractmethod
    async def get(self, room: str, task_id: str) -> TaskRecord | None: ...

    @abstractmethod
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
    ) -> list[TaskRecord]:
        """The room's records matching every given filter, newest first."""

    @abstractmethod
    async def unfinished(self, room: str | None = None) -> builtins.list[TaskRecord]:
        """Pending and running records (of one room, or of all), oldest first."""

    @abstractmethod
    async def add_event(self, room: str, task_id: str, data: dict[str, Any]) -> TaskEvent:
        """Append a progress event; its ``seq`` is one more than the task's previous event.

        Only the last ``MAX_EVENTS_PER_TASK`` events of a task are kept.
        """

    @abstractmethod
    async def events(self, room: str, task_id: str, *, limit: int = 50) -> builtins.list[TaskEvent]:
        """The task's last ``limit`` events, oldest first."""

    @abstractmethod
    async def sweep(self, older_than: float) -> int:
        """Delete records (and their events) finished before ``older_than``; return how many."""

    @abstractmethod
    async def save_checkpoint(self, room: str, task_id: str, checkpoint: dict[str, Any]) -> None:
        """Replace the task's checkpoint: what a re-queued attempt resumes from.

        A finished task needs none: saving a finished record drops its checkpoint.
        """

    @abstractmethod
    async def checkpoint(self, room: str, task_id: str) -> dict[str, Any] | None:
        """The task's last checkpoint, or None."""

    @abstractmethod
    async def put_schema(self, room: str, schema: StoredSchema) -> None:
        """Insert or replace one of the room's schemas, so it outlives the room process."""

    @abstractmethod
    async def remove_schema(self, room: str, name: str) -> None: ...

    @abstractmethod
    async def schemas(self, room: str) -> builtins.list[StoredSchema]:
        """The room's schemas, by name."""

    @abstractmethod
    async def open(self) -> None:
        """Connect before the first use (a network store); a store that opens when it is
        built does nothing here. Raises ``TaskStoreError`` naming what cannot be reached."""

    @abstractmethod
    async def close(self) -> None:
        """Finish pending writes and release the store; later calls raise TaskStoreError."""
