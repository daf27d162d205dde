"""The SQLite task store: one file in WAL mode, with no SQLite call on the event loop.

Writes go to one writer thread that groups them into few commits (see sqlite_writer);
reads run on one reader thread with its own connection. A write is answered only once
it has committed, so a read issued after it sees it, and a kill -9 of the process after
the ``await`` loses nothing (WAL with synchronous=NORMAL survives a process crash; only a
power cut can drop the last commits before a checkpoint).
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from taskroom.host.protocol.tasks import FINISHED, TaskEvent, TaskRecord
from taskroom.host.server.tasks.sqlite_open import describe_row_error, open_reader
from taskroom.host.server.tasks.sqlite_writer import SQLiteWriter, TaskRow
from taskroom.host.server.tasks.store import (
    OnDamage,
    StoredSchema,
    StoreStats,
    TaskStore,
    TaskStoreError,
)

logger = logging.getLogger(__name__)

DEFAULT_CACHED_SEQUENCES = 10_000
"""Per-task event counters kept in memory; a task not in the cache is read from the file."""

RECENTLY_FINISHED = 4096
"""Finished records kept as committed, so the ``tasks.wait`` or ``tasks.result`` that
follows a task's end is answered without a trip to the reader thread."""

T = TypeVar("T")


class SQLiteTaskStore(TaskStore):
    """Task records in one SQLite file.

    ``on_damage`` says what to do when the file is damaged (see ``OnDamage``); the default
    refuses with a ``TaskStoreError`` naming the file. Opening waits for the writer thread
    to open and check the file, so build the store before serving, not on a busy loop.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        on_damage: OnDamage = "refuse",
        max_cached_sequences: int = DEFAULT_CACHED_SEQUENCES,
    ) -> None:
        self.path = Path(path)
        self._closed = False
        self._last_write: asyncio.Future[Any] | None = None
        self._finished: OrderedDict[tuple[str, str], str] = OrderedDict()
        """(room, id) → the committed body of a recently finished task."""
        self._saving: dict[tuple[str, str], object] = {}
        """(room, id) → the latest save of that task not yet committed."""
        self._writer = SQLiteWriter(self.path, on_damage, max_cached_sequences)
        self._reads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="task-store-reader")
        try:
            self._reader = self._reads.submit(SQLiteReader, self.path, on_damage).result()
        except TaskStoreError:
            self._writer.stop()
            self._writer.join()
            self._reads.shutdown()
            raise

    async def open(self) -> None:
        """The file is opened and checked when the store is built."""

    def stats(self) -> StoreStats:
        return StoreStats(self._writer.commits, len(self._writer.sequences))

    # -- writes -------------------------------------------------------------------

    async def save(self, task: TaskRecord) -> None:
        row = self._row(task)
        self._finished.pop(row.key, None)
        self._saving[row.key] = row
        try:
            await self._write(self._writer.save_rows, [row])
        finally:
            latest = self._saving.get(row.key) is row
            if latest:
                del self._saving[row.key]
        if latest and row.finished:
            self._finished[row.key] = row.params[-1]
            if len(self._finished) > RECENTLY_FINISHED:
                self._finished.popitem(last=False)

    async def save_many(self, tasks: Sequence[TaskRecord]) -> None:
        if tasks:
            rows = [self._row(task) for task in tasks]
            for row in rows:
                self._finished.pop(row.key, None)
            await self._write(self._writer.save_rows, rows)

    async def add_event(self, room: str, task_id: str, data: dict[str, Any]) -> TaskEvent:
        try:
            text = json.dumps(data, default=str)
        except (TypeError, ValueError) as exc:
            raise self._write_error(f"event of task {room}/{task_id}: {exc}") from None
        at = time.time()
        seq = await self._write(self._writer.add_event, room, task_id, at, text)
        return TaskEvent(seq=seq, at=at, data=data)

    async def save_checkpoint(self, room: str, task_id: str, checkpoint: dict[str, Any]) -> None:
        body = self._json(checkpoint, f"checkpoint of task {room}/{task_id}")
        await self._write(self._writer.save_checkpoint, room, task_id, body)

    async def put_schema(self, room: str, schema: StoredSchema) -> None:
        body = self._json(schema.schema, f"schema {schema.name!r} of room {room!r}")
        await self._write(self._writer.put_schema, room, schema.name, schema.owner, body)

    async def remove_schema(self, room: str, name: str) -> None:
        await self._write(self._writer.remove_schema, room, name)

    async def sweep(self, older_than: float) -> int:
        self._finished.clear()
        removed = await self._write(self._writer.sweep, older_than)
        if removed:
            logger.info("retention removed %d finished tasks", removed)
        return removed

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.stop()
        await asyncio.get_running_loop().run_in_executor(self._reads, self._shut_down)
        self._reads.shutdown(wait=False)

    def _shut_down(self) -> None:
        self._writer.join()
        self._reader.close()

    async def _write(self, run: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise TaskStoreError(f"the task store {self.path} is closed")
        future = self._last_write = self._writer.submit(run, *args)
        future.add_done_callback(self._written)
        # Shielded: a caller that gives up does not take the write back, and reads
        # still wait for it (see _read).
        return await asyncio.shield(future)

    def _written(self, future: asyncio.Future[Any]) -> None:
        """Forget a settled last write: a failed one holds its error, and the error's
        traceback every frame it passed through, with the data being written (MBs)."""
        if self._last_write is future:
            self._last_write = None

    def _row(self, task: TaskRecord) -> TaskRow:
        """Serialise now: the caller may change the record while the write is queued."""
        try:
            body = task.model_dump_json()
        except ValueError as exc:
            raise self._write_error(f"task {task.room}/{task.id}: {exc}") from None
        params = (
            task.room,
            task.id,
            task.agent,
            task.status,
            task.batch_id,
            task.principal,
            task.created_at,
            task.finished_at,
            body,
        )
        return TaskRow((task.room, task.id), params, task.status in FINISHED)

    def _json(self, value: dict[str, Any], what: str) -> str:
        try:
            return json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise self._write_error(f"{what}: {exc}") from None

    def _write_error(self, reason: str) -> TaskStoreError:
        return TaskStoreError(f"cannot write the task store {self.path}: {reason}")

    # -- reads --------------------------------------------------------------------

    async def get(self, room: str, task_id: str) -> TaskRecord | None:
        body = self._finished.get((room, task_id))
        if body is not None and not self._closed:
            return TaskRecord.model_validate_json(body)
        records = await self._read(
            self._reader.records,
            "SELECT room, id, body FROM tasks WHERE room = ? AND id = ?",
            (room, task_id),
        )
        return records[0] if records else None

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
        sql = "SELECT room, id, body FROM tasks WHERE room = ?"
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
        return await self._read(self._reader.records, sql, params)

    async def unfinished(self, room: str | None = None) -> builtins.list[TaskRecord]:
        sql = "SELECT room, id, body FROM tasks WHERE status IN ('pending', 'running')"
        params: tuple[Any, ...] = ()
        if room is not None:
            sql += " AND room = ?"
            params = (room,)
        sql += " ORDER BY created_at"
        return await self._read(self._reader.records, sql, params)

    async def events(self, room: str, task_id: str, *, limit: int = 50) -> builtins.list[TaskEvent]:
        return await self._read(self._reader.events, room, task_id, limit)

    async def checkpoint(self, room: str, task_id: str) -> dict[str, Any] | None:
        return await self._read(self._reader.checkpoint, room, task_id)

    async def schemas(self, room: str) -> builtins.list[StoredSchema]:
        return await self._read(self._reader.schemas, room)

    async def _read(self, run: Callable[..., T], *args: Any) -> T:
        """Run a query once every write issued before it has settled (read-your-writes).

        The writer settles writes in the order they were issued, so waiting for the
        last one issued is waiting for all of them.
        """
        if self._closed:
            raise TaskStoreError(f"the task store {self.path} is closed")
        pending = self._last_write
        if pending is not None and not pending.done():
            await asyncio.wait([pending])
        return await asyncio.get_running_loop().run_in_executor(self._reads, run, *args)


class SQLiteReader:
    """The reading connection, used only on the reader thread; parses what it reads."""

    def __init__(self, path: Path, on_damage: OnDamage) -> None:
        self.path = path
        self.on_damage = on_damage
        self.db = open_reader(path)

    def records(self, sql: str, params: Iterable[Any]) -> list[TaskRecord]:
        records = []
        for room, task_id, body in self._query(sql, params):
            try:
                records.append(TaskRecord.model_validate_json(body))
            except ValueError as exc:
                self._damaged(f"task {room}/{task_id}", exc)
        return records

    def events(self, room: str, task_id: str, limit: int) -> list[TaskEvent]:
        rows = self._query(
            "SELECT seq, at, data FROM task_events WHERE room = ? AND task_id = ?"
            " ORDER BY seq DESC LIMIT ?",
            (room, task_id, limit),
        )
        events = []
        for seq, at, data in reversed(rows):
            try:
                events.append(TaskEvent(seq=seq, at=at, data=json.loads(data)))
            except (ValueError, TypeError) as exc:
                self._damaged(f"event {seq} of task {room}/{task_id}", exc)
        return events

    def checkpoint(self, room: str, task_id: str) -> dict[str, Any] | None:
        rows = self._query(
            "SELECT body FROM task_checkpoints WHERE room = ? AND task_id = ?", (room, task_id)
        )
        if not rows:
            return None
        try:
            value = json.loads(rows[0][0])
        except ValueError as exc:
            self._damaged(f"checkpoint of task {room}/{task_id}", exc)
            return None
        return value if isinstance(value, dict) else None

    def schemas(self, room: str) -> list[StoredSchema]:
        found = []
        for name, owner, body in self._query(
            "SELECT name, owner, body FROM room_schemas WHERE room = ? ORDER BY name", (room,)
        ):
            try:
                found.append(StoredSchema(name, json.loads(body), owner))
            except ValueError as exc:
                self._damaged(f"schema {name!r} of room {room!r}", exc)
        return found

    def close(self) -> None:
        self.db.close()

    def _query(self, sql: str, params: Iterable[Any]) -> list[Any]:
        try:
            return self.db.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise TaskStoreError(f"cannot read the task store {self.path}: {exc}") from None

    def _damaged(self, what: str, exc: Exception) -> None:
        """A row that does not parse: skipped if the store was opened with "skip"."""
        reason = describe_row_error(exc)
        if self.on_damage != "skip":
            raise TaskStoreError(f"the task store {self.path} has a damaged {what}: {reason}")
        logger.warning("task store %s: skipping damaged %s: %s", self.path, what, reason)
