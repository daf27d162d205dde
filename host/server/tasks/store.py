"""Durable task records: an interface and its SQLite (WAL) implementation.

Every run of an agent is a record here, so a finished result outlives the room process.
The interface is small on purpose, so another store (Postgres, Redis) can implement it.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from taskroom.host.protocol.tasks import MAX_EVENTS_PER_TASK, TaskEvent, TaskRecord

logger = logging.getLogger(__name__)


class TaskStoreError(Exception):
    """The store cannot be opened or written; the message says which file and why."""


class TaskStore(ABC):
    """What the room needs from a task store.

    Every method is a coroutine: an implementation does its I/O off the event loop (a
    thread for SQLite, a network driver for PostgreSQL), so no room ever waits on a disk.
    """

    @abstractmethod
    async def save(self, task: TaskRecord) -> None: ...

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
    ) -> list[TaskRecord]: ...

    @abstractmethod
    async def unfinished(self, room: str | None = None) -> list[TaskRecord]: ...

    @abstractmethod
    async def add_event(self, room: str, task_id: str, data: dict[str, Any]) -> TaskEvent: ...

    @abstractmethod
    async def events(self, room: str, task_id: str, *, limit: int = 50) -> list[TaskEvent]: ...

    @abstractmethod
    async def sweep(self, older_than: float) -> int: ...

    @abstractmethod
    async def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    room TEXT NOT NULL,
    id TEXT NOT NULL,
    agent TEXT NOT NULL,
    status TEXT NOT NULL,
    batch_id TEXT,
    caller_name TEXT,
    created_at REAL NOT NULL,
    finished_at REAL,
    body TEXT NOT NULL,
    PRIMARY KEY (room, id)
);
CREATE INDEX IF NOT EXISTS tasks_by_room_time ON tasks (room, created_at DESC);
CREATE INDEX IF NOT EXISTS tasks_by_batch ON tasks (room, batch_id);
CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks (status);
CREATE TABLE IF NOT EXISTS task_events (
    room TEXT NOT NULL,
    task_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at REAL NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (room, task_id, seq)
);
"""


class SQLiteTaskStore(TaskStore):
    """One SQLite file in WAL mode; each call is short, so it runs on the event loop."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            self.db.execute("SELECT count(*) FROM tasks").fetchone()
        except (sqlite3.DatabaseError, OSError) as exc:
            raise TaskStoreError(f"cannot open the task store {self.path}: {exc}") from None
        self._seq: dict[tuple[str, str], int] = {}

    def _write(self, sql: str, params: Iterable[Any]) -> None:
        try:
            self.db.execute(sql, tuple(params))
        except sqlite3.DatabaseError as exc:
            raise TaskStoreError(f"cannot write the task store {self.path}: {exc}") from None

    async def save(self, task: TaskRecord) -> None:
        self._write(
            "INSERT OR REPLACE INTO tasks (room, id, agent, status, batch_id, caller_name,"
            " created_at, finished_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                task.room,
                task.id,
                task.agent,
                task.status,
                task.batch_id,
                task.principal,
                task.created_at,
                task.finished_at,
                task.model_dump_json(),
            ),
        )

    async def get(self, room: str, task_id: str) -> TaskRecord | None:
        row = self.db.execute(
            "SELECT body FROM tasks WHERE room = ? AND id = ?", (room, task_id)
        ).fetchone()
        return TaskRecord.model_validate_json(row[0]) if row else None

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
        sql = "SELECT body FROM tasks WHERE room = ?"
        params: list[Any] = [room]
        for column, value in (
            ("status", status),
            ("agent", agent),
            ("batch_id", batch_id),
            ("caller_name", caller),
        ):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        if before is not None:
            sql += " AND created_at < ?"
            params.append(before)
        sql += " ORDER BY created_at DESC LIMIT ?"
        params.append(limit)
        return [TaskRecord.model_validate_json(r[0]) for r in self.db.execute(sql, params)]

    async def unfinished(self, room: str | None = None) -> list[TaskRecord]:
        sql = "SELECT body FROM tasks WHERE status IN ('pending', 'running')"
        params: tuple[Any, ...] = ()
        if room is not None:
            sql += " AND room = ?"
            params = (room,)
        sql += " ORDER BY created_at"
        return [TaskRecord.model_validate_json(r[0]) for r in self.db.execute(sql, params)]

    async def add_event(self, room: str, task_id: str, data: dict[str, Any]) -> TaskEvent:
        key = (room, task_id)
        seq = self._seq.get(key)
        if seq is None:
            row = self.db.execute(
                "SELECT max(seq) FROM task_events WHERE room = ? AND task_id = ?", key
            ).fetchone()
            seq = row[0] or 0
        seq += 1
        self._seq[key] = seq
        event = TaskEvent(seq=seq, at=time.time(), data=data)
        self._write(
            "INSERT INTO task_events (room, task_id, seq, at, data) VALUES (?, ?, ?, ?, ?)",
            (room, task_id, seq, event.at, json.dumps(data, default=str)),
        )
        if seq > MAX_EVENTS_PER_TASK:
            self._write(
                "DELETE FROM task_events WHERE room = ? AND task_id = ? AND seq <= ?",
                (room, task_id, seq - MAX_EVENTS_PER_TASK),
            )
        return event

    def forget_sequence(self, room: str, task_id: str) -> None:
        self._seq.pop((room, task_id), None)

    async def events(self, room: str, task_id: str, *, limit: int = 50) -> list[TaskEvent]:
        rows = self.db.execute(
            "SELECT seq, at, data FROM task_events WHERE room = ? AND task_id = ?"
            " ORDER BY seq DESC LIMIT ?",
            (room, task_id, limit),
        ).fetchall()
        return [TaskEvent(seq=s, at=a, data=json.loads(d)) for s, a, d in reversed(rows)]

    async def sweep(self, older_than: float) -> int:
        cur = self.db.execute(
            "SELECT room, id FROM tasks WHERE finished_at IS NOT NULL AND finished_at < ?",
            (older_than,),
        )
        doomed = cur.fetchall()
        for room, task_id in doomed:
            self._write("DELETE FROM task_events WHERE room = ? AND task_id = ?", (room, task_id))
            self._write("DELETE FROM tasks WHERE room = ? AND id = ?", (room, task_id))
        if doomed:
            logger.info("retention removed %d finished tasks", len(doomed))
        return len(doomed)

    async def close(self) -> None:
        self.db.close()
