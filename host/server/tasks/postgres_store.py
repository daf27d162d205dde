"""The PostgreSQL task store: the rooms of every node share one database, rows keyed by room.

Writes go through one ordered queue; whatever queues up while a commit is in flight goes
into the next transaction (group commit), so a burst of progress events costs a few round
trips and a save is never overtaken by one issued before it. A write is answered once its
transaction has committed; a read waits for every write issued before it, then runs on a
pooled connection (read-your-writes, as with SQLite).

Event sequence numbers are cached per task, as in SQLite. Should another node have added
events meanwhile (the room moved and came back), the insert hits the primary key, the
batch is retried one write at a time with the cache dropped, and the numbers are read
again from the table: events are never numbered twice.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from taskroom.host.protocol.tasks import FINISHED, MAX_EVENTS_PER_TASK, TaskEvent, TaskRecord
from taskroom.host.server.tasks.sqlite_open import describe_row_error
from taskroom.host.server.tasks.store import StoredSchema, StoreStats, TaskStore, TaskStoreError

logger = logging.getLogger(__name__)

DEFAULT_POOL_SIZE = 10
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_CACHED_SEQUENCES = 10_000
MAX_BATCH = 1000
"""Writes per transaction; bounds how long the first write of a burst waits."""

_SCHEMA_LOCK = 0x7461736B726F6F6D
"""Advisory lock held while creating the tables, so nodes starting together do not race."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS taskroom_tasks (
    room TEXT NOT NULL,
    id TEXT NOT NULL,
    agent TEXT NOT NULL,
    status TEXT NOT NULL,
    batch_id TEXT,
    caller_name TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION,
    body TEXT NOT NULL,
    PRIMARY KEY (room, id)
);
CREATE INDEX IF NOT EXISTS taskroom_tasks_by_room_time ON taskroom_tasks (room, created_at DESC);
CREATE INDEX IF NOT EXISTS taskroom_tasks_by_batch ON taskroom_tasks (room, batch_id);
CREATE INDEX IF NOT EXISTS taskroom_tasks_unfinished ON taskroom_tasks (room, created_at)
    WHERE status IN ('pending', 'running');
CREATE INDEX IF NOT EXISTS taskroom_tasks_finished ON taskroom_tasks (finished_at)
    WHERE finished_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS taskroom_task_events (
    room TEXT NOT NULL,
    task_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (room, task_id, seq)
);
CREATE TABLE IF NOT EXISTS taskroom_task_checkpoints (
    room TEXT NOT NULL,
    task_id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (room, task_id)
);
CREATE TABLE IF NOT EXISTS taskroom_room_schemas (
    room TEXT NOT NULL,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (room, name)
);
"""

_TASK_COLUMNS = "room, id, agent, status, batch_id, caller_name, created_at, finished_at, body"
_SAVE_TASK = (
    "WITH saved AS ("
    f" INSERT INTO taskroom_tasks ({_TASK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    " ON CONFLICT (room, id) DO UPDATE SET agent = EXCLUDED.agent, status = EXCLUDED.status,"
    " batch_id = EXCLUDED.batch_id, caller_name = EXCLUDED.caller_name,"
    " created_at = EXCLUDED.created_at, finished_at = EXCLUDED.finished_at, body = EXCLUDED.body"
    " RETURNING room, id, status)"
    # A finished task needs no checkpoint: dropped in the same statement.
    " DELETE FROM taskroom_task_checkpoints c USING saved s"
    " WHERE c.room = s.room AND c.task_id = s.id"
    " AND s.status IN ('completed', 'failed', 'cancelled')"
)
_SAVE_CHECKPOINT = (
    "INSERT INTO taskroom_task_checkpoints (room, task_id, body) VALUES ($1, $2, $3)"
    " ON CONFLICT (room, task_id) DO UPDATE SET body = EXCLUDED.body"
)
_REMOVE_SCHEMA = "DELETE FROM taskroom_room_schemas WHERE room = $1 AND name = $2"
_PUT_SCHEMA = (
    "INSERT INTO taskroom_room_schemas (room, name, owner, body) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (room, name) DO UPDATE SET owner = EXCLUDED.owner, body = EXCLUDED.body"
)
_INSERT_EVENT = (
    "INSERT INTO taskroom_task_events (room, task_id, seq, at, data) VALUES ($1, $2, $3, $4, $5)"
)
_LAST_SEQS = (
    "SELECT e.room, e.task_id, max(e.seq) FROM taskroom_task_events e"
    " JOIN unnest($1::text[], $2::text[]) AS k(room, task_id)"
    " ON e.room = k.room AND e.task_id = k.task_id GROUP BY e.room, e.task_id"
)
_TRIM_EVENTS = "DELETE FROM taskroom_task_events WHERE room = $1 AND task_id = $2 AND seq <= $3"
_SWEEP = """
WITH doomed AS (
    DELETE FROM taskroom_tasks WHERE finished_at IS NOT NULL AND finished_at < $1
    RETURNING room, id
), events AS (
    DELETE FROM taskroom_task_events e USING doomed d WHERE e.room = d.room AND e.task_id = d.id
), checkpoints AS (
    DELETE FROM taskroom_task_checkpoints c USING doomed d
    WHERE c.room = d.room AND c.task_id = d.id
)
SELECT room, id FROM doomed
"""

_CONNECTION_ERRORS = (OSError, TimeoutError, asyncpg.InterfaceError)
_ERRORS = (*_CONNECTION_ERRORS, asyncpg.PostgresError)

TaskKey = tuple[str, str]
Params = tuple[Any, ...]


def describe_dsn(dsn: str) -> str:
    """``PostgreSQL at host:port/database``, without the user's password."""
    parts = urlsplit(dsn)
    where = parts.hostname or "localhost"
    if parts.port:
        where += f":{parts.port}"
    return f"PostgreSQL at {where}{parts.path or '/'}"


Run = Callable[["asyncpg.Connection", list[Params]], Awaitable[list[Any]]]
"""A kind of write: runs the items of consecutive writes of that kind, one result each."""


@dataclass(slots=True)
class _Write:
    run: Run
    items: list[Params]
    future: asyncio.Future[list[Any]]


class PostgresTaskStore(TaskStore):
    """Task records, progress events, checkpoints and room schemas in PostgreSQL.

    Built without I/O; ``open()`` connects, creates the tables if needed, and raises a
    ``TaskStoreError`` naming the server when it cannot be reached.
    """

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_cached_sequences: int = DEFAULT_CACHED_SEQUENCES,
    ) -> None:
        self.dsn = dsn
        self.where = describe_dsn(dsn)
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self.max_cached_sequences = max_cached_sequences
        self.commits = 0
        self.sequences: OrderedDict[TaskKey, int] = OrderedDict()
        self._touched: set[TaskKey] = set()
        self._pool: asyncpg.Pool | None = None
        self._queue: asyncio.Queue[_Write | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._last_write: asyncio.Future[Any] | None = None
        self._closed = False
        self._statements: dict[str, Run] = {}

    def stats(self) -> StoreStats:
        return StoreStats(self.commits, len(self.sequences))

    async def open(self) -> None:
        if self._closed:
            raise TaskStoreError(f"the task store in {self.where} is closed")
        if self._pool is not None:
            return
        try:
            pool = await asyncpg.create_pool(
                self.dsn,
                min_size=1,
                max_size=self.pool_size,
                timeout=self.connect_timeout,
                reset=_keep_session,
            )
        except (*_ERRORS, ValueError) as exc:
            raise TaskStoreError(f"cannot connect to {self.where}: {_reason(exc)}") from None
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
                await conn.execute(SCHEMA)
        except _ERRORS as exc:
            await pool.close()
            raise TaskStoreError(
                f"cannot create the task tables in {self.where}: {_reason(exc)}"
            ) from None
        self._pool = pool
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._queue.put_nowait(None)
            await self._writer
        if self._pool is not None:
            await self._pool.close()

    # -- writes -------------------------------------------------------------------

    async def save(self, task: TaskRecord) -> None:
        await self._write(self._save_rows, [self._row(task)])

    async def save_many(self, tasks: Sequence[TaskRecord]) -> None:
        if tasks:
            await self._write(self._save_rows, [self._row(task) for task in tasks])

    async def add_event(self, room: str, task_id: str, data: dict[str, Any]) -> TaskEvent:
        text = self._json(data, f"event of task {room}/{task_id}")
        at = time.time()
        [seq] = await self._write(self._insert_events, [(room, task_id, at, text)])
        return TaskEvent(seq=seq, at=at, data=data)

    async def save_checkpoint(self, room: str, task_id: str, checkpoint: dict[str, Any]) -> None:
        body = self._json(checkpoint, f"checkpoint of task {room}/{task_id}")
        await self._write(self._statement(_SAVE_CHECKPOINT), [(room, task_id, body)])

    async def put_schema(self, room: str, schema: StoredSchema) -> None:
        body = self._json(schema.schema, f"schema {schema.name!r} of room {room!r}")
        params = (room, schema.name, schema.owner, body)
        await self._write(self._statement(_PUT_SCHEMA), [params])

    async def remove_schema(self, room: str, name: str) -> None:
        await self._write(self._statement(_REMOVE_SCHEMA), [(room, name)])

    async def sweep(self, older_than: float) -> int:
        [doomed] = await self._write(self._sweep, [(older_than,)])
        if doomed:
            logger.info("retention removed %d finished tasks", doomed)
        return int(doomed)

    async def _write(self, run: Run, items: builtins.list[Params]) -> builtins.list[Any]:
        """Queue ``items`` for ``run``; they commit in one transaction, and the answer is
        one result per item."""
        if self._closed or self._pool is None:
            state = "closed" if self._closed else "not open"
            raise TaskStoreError(f"the task store in {self.where} is {state}")
        future = self._last_write = asyncio.get_running_loop().create_future()
        future.add_done_callback(self._written)
        self._queue.put_nowait(_Write(run, items, future))
        # Shielded: a caller that gives up does not take the write back.
        return await asyncio.shield(future)

    def _written(self, future: asyncio.Future[Any]) -> None:
        """Forget a settled last write: a failed one holds its error and, through its
        traceback, the data being written."""
        if self._last_write is future:
            self._last_write = None

    def _row(self, task: TaskRecord) -> Params:
        """Serialise now: the caller may change the record while the write is queued."""
        try:
            body = task.model_dump_json()
        except ValueError as exc:
            raise self._write_error(f"task {task.room}/{task.id}: {exc}") from None
        return (
            task.room,
            task.id,
            task.agent,
            str(task.status),
            task.batch_id,
            task.principal,
            task.created_at,
            task.finished_at,
            body,
        )

    def _json(self, value: dict[str, Any], what: str) -> str:
        try:
            return json.dumps(value, default=str)
        except (TypeError, ValueError) as exc:
            raise self._write_error(f"{what}: {exc}") from None

    def _write_error(self, reason: str) -> TaskStoreError:
        return TaskStoreError(f"cannot write the task store in {self.where}: {reason}")

    # -- the writer ---------------------------------------------------------------

    async def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            batch: builtins.list[_Write] = []
            item = await self._queue.get()
            while item is not None:
                batch.append(item)
                if len(batch) >= MAX_BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
            stopping = item is None
            if batch:
                await self._commit(batch)

    async def _commit(self, batch: Sequence[_Write], *, retry_clash: bool = True) -> None:
        assert self._pool is not None
        try:
            async with self._pool.acquire(timeout=self.connect_timeout) as conn:
                if self._one_statement(batch):
                    # One executemany is atomic by itself: no BEGIN and COMMIT round trips.
                    results = await self._apply(conn, batch)
                else:
                    async with conn.transaction():
                        results = await self._apply(conn, batch)
        except Exception as exc:
            self._forget_touched()
            clash = isinstance(exc, asyncpg.UniqueViolationError)
            if len(batch) == 1 and clash and retry_clash and batch[0].run == self._insert_events:
                # Another node numbered events of this task: the counter was dropped
                # above, so the retry reads the number from the table.
                await self._commit(batch, retry_clash=False)
                return
            if len(batch) == 1 or isinstance(exc, _CONNECTION_ERRORS):
                error = self._write_error(_reason(exc))
                for write in batch:
                    _settle(write, [], error)
                return
            logger.info("a batch of %d writes failed (%s); retrying one by one", len(batch), exc)
            for write in batch:
                await self._commit([write])
            return
        self.commits += 1
        self._touched.clear()
        for write, result in zip(batch, results, strict=True):
            _settle(write, result, None)

    async def _apply(
        self, conn: asyncpg.Connection, batch: Sequence[_Write]
    ) -> builtins.list[builtins.list[Any]]:
        """Run the writes in order; consecutive writes of one kind are one statement."""
        answers: builtins.list[builtins.list[Any]] = []
        i = 0
        while i < len(batch):
            run = batch[i].run
            j = i + 1
            while j < len(batch) and batch[j].run == run:
                j += 1
            results = await run(conn, [item for w in batch[i:j] for item in w.items])
            for write in batch[i:j]:
                answers.append(results[: len(write.items)])
                results = results[len(write.items) :]
            i = j
        return answers

    async def _save_rows(
        self, conn: asyncpg.Connection, rows: builtins.list[Params]
    ) -> builtins.list[None]:
        await conn.executemany(_SAVE_TASK, rows)
        for row in rows:
            if row[3] in FINISHED:
                self.sequences.pop((row[0], row[1]), None)
        return [None] * len(rows)

    async def _insert_events(
        self, conn: asyncpg.Connection, events: builtins.list[Params]
    ) -> builtins.list[int]:
        missing = list({(room, task_id) for room, task_id, *_ in events} - self.sequences.keys())
        if missing:
            rows = await conn.fetch(_LAST_SEQS, [k[0] for k in missing], [k[1] for k in missing])
            last = {(row[0], row[1]): row[2] for row in rows}
            for key in missing:
                self.sequences[key] = last.get(key, 0)
        records = []
        for room, task_id, at, data in events:
            key = (room, task_id)
            seq = self.sequences.pop(key) + 1
            self.sequences[key] = seq
            self._touched.add(key)
            records.append((room, task_id, seq, at, data))
        await conn.executemany(_INSERT_EVENT, records)
        trims = [
            (room, task_id, self.sequences[(room, task_id)] - MAX_EVENTS_PER_TASK)
            for room, task_id in {(r[0], r[1]) for r in records}
            if self.sequences[(room, task_id)] > MAX_EVENTS_PER_TASK
        ]
        if trims:
            await conn.executemany(_TRIM_EVENTS, trims)
        while len(self.sequences) > self.max_cached_sequences:
            self.sequences.popitem(last=False)
        return [record[2] for record in records]

    async def _sweep(
        self, conn: asyncpg.Connection, items: builtins.list[Params]
    ) -> builtins.list[int]:
        counts = []
        for (older_than,) in items:
            doomed = await conn.fetch(_SWEEP, older_than)
            for room, task_id in doomed:
                self.sequences.pop((room, task_id), None)
            counts.append(len(doomed))
        return counts

    def _statement(self, sql: str) -> Run:
        """A write kind that runs ``sql`` once per item; the same object for the same
        statement, so consecutive writes of it are grouped."""
        run = self._statements.get(sql)
        if run is None:

            async def run(
                conn: asyncpg.Connection, items: builtins.list[Params]
            ) -> builtins.list[None]:
                await conn.executemany(sql, items)
                return [None] * len(items)

            self._statements[sql] = run
        return run

    def _one_statement(self, batch: Sequence[_Write]) -> bool:
        """Whether the batch is one statement: writes of one kind that need no other
        (events need one only when a counter must be read or old events trimmed)."""
        run = batch[0].run
        if any(w.run != run for w in batch):
            return False
        if run == self._insert_events:
            added = Counter((item[0], item[1]) for w in batch for item in w.items)
            return all(
                key in self.sequences and self.sequences[key] + n <= MAX_EVENTS_PER_TASK
                for key, n in added.items()
            )
        return run == self._save_rows or run in self._statements.values()

    def _forget_touched(self) -> None:
        """A rolled-back batch: the numbers it took are not in the table."""
        for key in self._touched:
            self.sequences.pop(key, None)
        self._touched.clear()

    # -- reads --------------------------------------------------------------------

    async def get(self, room: str, task_id: str) -> TaskRecord | None:
        records = await self._records(
            "SELECT room, id, body FROM taskroom_tasks WHERE room = $1 AND id = $2", room, task_id
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
    ) -> builtins.list[TaskRecord]:
        sql = "SELECT room, id, body FROM taskroom_tasks WHERE room = $1"
        params: builtins.list[Any] = [room]
        for column, value in (
            ("status", status),
            ("agent", agent),
            ("batch_id", batch_id),
            ("caller_name", caller),
        ):
            if value is not None:
                params.append(value)
                sql += f" AND {column} = ${len(params)}"
        if before is not None:
            params.append(before)
            sql += f" AND created_at < ${len(params)}"
        params.append(limit)
        sql += f" ORDER BY created_at DESC LIMIT ${len(params)}"
        return await self._records(sql, *params)

    async def unfinished(self, room: str | None = None) -> builtins.list[TaskRecord]:
        sql = "SELECT room, id, body FROM taskroom_tasks WHERE status IN ('pending', 'running')"
        if room is None:
            return await self._records(sql + " ORDER BY created_at")
        return await self._records(sql + " AND room = $1 ORDER BY created_at", room)

    async def events(self, room: str, task_id: str, *, limit: int = 50) -> builtins.list[TaskEvent]:
        rows = await self._fetch(
            "SELECT seq, at, data FROM taskroom_task_events WHERE room = $1 AND task_id = $2"
            " ORDER BY seq DESC LIMIT $3",
            room,
            task_id,
            limit,
        )
        events = []
        for seq, at, data in reversed(rows):
            try:
                events.append(TaskEvent(seq=seq, at=at, data=json.loads(data)))
            except (ValueError, TypeError) as exc:
                raise self._damaged(f"event {seq} of task {room}/{task_id}", exc) from None
        return events

    async def checkpoint(self, room: str, task_id: str) -> dict[str, Any] | None:
        rows = await self._fetch(
            "SELECT body FROM taskroom_task_checkpoints WHERE room = $1 AND task_id = $2",
            room,
            task_id,
        )
        if not rows:
            return None
        try:
            value = json.loads(rows[0][0])
        except ValueError as exc:
            raise self._damaged(f"checkpoint of task {room}/{task_id}", exc) from None
        return value if isinstance(value, dict) else None

    async def schemas(self, room: str) -> builtins.list[StoredSchema]:
        rows = await self._fetch(
            "SELECT name, owner, body FROM taskroom_room_schemas WHERE room = $1 ORDER BY name",
            room,
        )
        found = []
        for name, owner, body in rows:
            try:
                found.append(StoredSchema(name, json.loads(body), owner))
            except ValueError as exc:
                raise self._damaged(f"schema {name!r} of room {room!r}", exc) from None
        return found

    async def _records(self, sql: str, *params: Any) -> builtins.list[TaskRecord]:
        records = []
        for room, task_id, body in await self._fetch(sql, *params):
            try:
                records.append(TaskRecord.model_validate_json(body))
            except ValueError as exc:
                raise self._damaged(f"task {room}/{task_id}", exc) from None
        return records

    async def _fetch(self, sql: str, *params: Any) -> builtins.list[Any]:
        """Run a query once every write issued before it has settled (read-your-writes)."""
        if self._closed or self._pool is None:
            state = "closed" if self._closed else "not open"
            raise TaskStoreError(f"the task store in {self.where} is {state}")
        pending = self._last_write
        if pending is not None and not pending.done():
            await asyncio.wait([pending])
        try:
            return await self._pool.fetch(sql, *params, timeout=self.connect_timeout)
        except (*_ERRORS, ValueError) as exc:
            raise TaskStoreError(
                f"cannot read the task store in {self.where}: {_reason(exc)}"
            ) from None

    def _damaged(self, what: str, exc: Exception) -> TaskStoreError:
        return TaskStoreError(
            f"the task store in {self.where} has a damaged {what}: {describe_row_error(exc)}"
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Skip the pool's reset query on release (a round trip per use): the store never
    changes session state, and its advisory lock ends with its transaction."""


def _reason(exc: BaseException) -> str:
    """The first line of the driver's message (a timeout has none: say so)."""
    text = str(exc).strip()
    if isinstance(exc, TimeoutError) and not text:
        return "no answer within the timeout"
    return text.splitlines()[0] if text else type(exc).__name__


def _settle(write: _Write, result: list[Any], error: BaseException | None) -> None:
    if write.future.done():
        return
    if error is None:
        write.future.set_result(result)
    else:
        write.future.set_exception(error)
