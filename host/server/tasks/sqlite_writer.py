"""The one thread that writes the SQLite task file.

Writes queue up while a commit is in progress, and everything queued is then committed
in one transaction (group commit): a burst of saves and progress events costs a few
commits, not one each. The writes of one turn of the event loop reach the thread as one
hand-off, so a busy room wakes the thread once per turn, not once per write. Every caller is answered only after its transaction commits, so
``await`` means durable. If a batch fails, it is rolled back and each write is retried in
its own transaction: the bad one gets the error, the others still commit.

The writer also owns the per-task event sequence numbers, so numbering and inserting
happen in one order and a rolled-back insert never leaves a gap.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any

from taskroom.host.protocol.tasks import MAX_EVENTS_PER_TASK
from taskroom.host.server.tasks.sqlite_open import open_writer
from taskroom.host.server.tasks.store import OnDamage, TaskStoreError

logger = logging.getLogger(__name__)

MAX_BATCH = 1000
"""Writes per transaction; bounds how long the first write of a burst waits."""

_INSERT_TASK = (
    "INSERT INTO tasks (room, id, agent, status, batch_id, caller_name,"
    " created_at, finished_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    # An upsert changes the row in place; REPLACE would delete and re-insert it, touching
    # every index twice for each change of status.
    " ON CONFLICT (room, id) DO UPDATE SET agent = excluded.agent, status = excluded.status,"
    " batch_id = excluded.batch_id, caller_name = excluded.caller_name,"
    " created_at = excluded.created_at, finished_at = excluded.finished_at,"
    " body = excluded.body"
)
_INSERT_EVENT = "INSERT INTO task_events (room, task_id, seq, at, data) VALUES (?, ?, ?, ?, ?)"

TaskKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class TaskRow:
    """A record already serialised on the caller's side, as it was when saved."""

    key: TaskKey
    params: tuple[Any, ...]
    finished: bool


@dataclass(slots=True)
class _Write:
    run: Callable[..., Any]
    args: tuple[Any, ...]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


Outcome = tuple[_Write, Any, BaseException | None]


class SQLiteWriter:
    """Owns the writing connection and the thread that uses it."""

    def __init__(self, path: Path, on_damage: OnDamage, max_cached_sequences: int) -> None:
        self.path = path
        self.commits = 0
        self.sequences: OrderedDict[TaskKey, int] = OrderedDict()
        self.max_cached_sequences = max_cached_sequences
        self._queue: SimpleQueue[list[_Write] | None] = SimpleQueue()
        self._outbox: list[_Write] = []
        self._touched: set[TaskKey] = set()
        self._db: sqlite3.Connection | None = None
        opened: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._run, args=(on_damage, opened), name="task-store-writer", daemon=True
        )
        self._thread.start()
        opened.result()

    def submit(self, run: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Queue ``run(connection, *args)``; the future settles once its commit is done."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self._outbox and self._outbox[0].loop is not loop:
            self._flush()
        if not self._outbox:
            loop.call_soon(self._flush)
        self._outbox.append(_Write(run, args, loop, future))
        return future

    def _flush(self) -> None:
        """Hand this loop turn's writes to the thread in one piece."""
        if self._outbox:
            self._queue.put(self._outbox)
            self._outbox = []

    def stop(self) -> None:
        """Commit what is queued, close the connection and end the thread."""
        self._flush()
        self._queue.put(None)

    def join(self) -> None:
        self._thread.join()

    # -- the thread ---------------------------------------------------------------

    def _run(self, on_damage: OnDamage, opened: Future[None]) -> None:
        try:
            self._db = open_writer(self.path, on_damage)
        except TaskStoreError as exc:
            opened.set_exception(exc)
            return
        except Exception as exc:
            opened.set_exception(TaskStoreError(f"cannot open the task store {self.path}: {exc}"))
            return
        opened.set_result(None)
        stopping = False
        while not stopping:
            batch: list[_Write] = []
            item = self._queue.get()
            while item is not None:
                batch.extend(item)
                if len(batch) >= MAX_BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except Empty:
                    break
            stopping = item is None
            if batch:
                self._answer(self._commit(batch))
            del batch, item  # an idle writer must not keep its last rows (MBs, maybe) alive
        self._db.close()

    def _commit(self, batch: Sequence[_Write], *, retry_clash: bool = True) -> list[Outcome]:
        assert self._db is not None
        try:
            self._db.execute("BEGIN IMMEDIATE")
            results = [write.run(self._db, *write.args) for write in batch]
            self._db.execute("COMMIT")
        except Exception as exc:
            self._rollback()
            if len(batch) == 1:
                if retry_clash and self._numbered_twice(batch[0], exc):
                    # Another writer numbered events of this task; the rollback dropped
                    # the stale counter, so the retry reads the number from the file.
                    return self._commit(batch, retry_clash=False)
                return [(batch[0], None, self._error(exc))]
            logger.info("a batch of %d writes failed (%s); retrying one by one", len(batch), exc)
            return [outcome for write in batch for outcome in self._commit([write])]
        self.commits += 1
        self._touched.clear()
        return [(write, result, None) for write, result in zip(batch, results, strict=True)]

    def _numbered_twice(self, write: _Write, exc: Exception) -> bool:
        return write.run == self.add_event and isinstance(exc, sqlite3.IntegrityError)

    def _rollback(self) -> None:
        assert self._db is not None
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error as exc:
            logger.error("task store %s: rollback failed: %s", self.path, exc)
        for key in self._touched:
            self.sequences.pop(key, None)
        self._touched.clear()

    def _error(self, exc: Exception) -> TaskStoreError:
        return TaskStoreError(f"cannot write the task store {self.path}: {exc}")

    @staticmethod
    def _answer(outcomes: list[Outcome]) -> None:
        by_loop: defaultdict[asyncio.AbstractEventLoop, list[Outcome]] = defaultdict(list)
        for outcome in outcomes:
            by_loop[outcome[0].loop].append(outcome)
        for loop, answers in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, answers)
            except RuntimeError:
                logger.debug("an event loop closed before its writes were answered")

    # -- writes, run on the thread inside a transaction ---------------------------

    def save_rows(self, db: sqlite3.Connection, rows: Sequence[TaskRow]) -> None:
        db.executemany(_INSERT_TASK, [row.params for row in rows])
        finished = [row.key for row in rows if row.finished]
        db.executemany("DELETE FROM task_checkpoints WHERE room = ? AND task_id = ?", finished)
        for key in finished:
            self.sequences.pop(key, None)

    def save_checkpoint(self, db: sqlite3.Connection, room: str, task_id: str, body: str) -> None:
        db.execute(
            "INSERT OR REPLACE INTO task_checkpoints (room, task_id, body) VALUES (?, ?, ?)",
            (room, task_id, body),
        )

    def put_schema(
        self, db: sqlite3.Connection, room: str, name: str, owner: str, body: str
    ) -> None:
        db.execute(
            "INSERT OR REPLACE INTO room_schemas (room, name, owner, body) VALUES (?, ?, ?, ?)",
            (room, name, owner, body),
        )

    def remove_schema(self, db: sqlite3.Connection, room: str, name: str) -> None:
        db.execute("DELETE FROM room_schemas WHERE room = ? AND name = ?", (room, name))

    def add_event(
        self, db: sqlite3.Connection, room: str, task_id: str, at: float, data: str
    ) -> int:
        key = (room, task_id)
        seq = self.sequences.pop(key, None)
        if seq is None:
            row = db.execute(
                "SELECT max(seq) FROM task_events WHERE room = ? AND task_id = ?", key
            ).fetchone()
            seq = row[0] or 0
        seq += 1
        self.sequences[key] = seq
        self._touched.add(key)
        if len(self.sequences) > self.max_cached_sequences:
            self.sequences.popitem(last=False)
        db.execute(_INSERT_EVENT, (room, task_id, seq, at, data))
        if seq > MAX_EVENTS_PER_TASK:
            db.execute(
                "DELETE FROM task_events WHERE room = ? AND task_id = ? AND seq <= ?",
                (room, task_id, seq - MAX_EVENTS_PER_TASK),
            )
        return seq

    def sweep(self, db: sqlite3.Connection, older_than: float) -> int:
        doomed = db.execute(
            "SELECT room, id FROM tasks WHERE finished_at IS NOT NULL AND finished_at < ?",
            (older_than,),
        ).fetchall()
        db.executemany("DELETE FROM task_events WHERE room = ? AND task_id = ?", doomed)
        db.executemany("DELETE FROM task_checkpoints WHERE room = ? AND task_id = ?", doomed)
        db.executemany("DELETE FROM tasks WHERE room = ? AND id = ?", doomed)
        for key in doomed:
            self.sequences.pop(tuple(key), None)
        return len(doomed)


def _settle(answers: list[Outcome]) -> None:
    """On the caller's loop: hand each waiting caller its result or error."""
    for write, result, error in answers:
        if write.future.done():
            continue
        if error is None:
            write.future.set_result(result)
        else:
            write.future.set_exception(error)
