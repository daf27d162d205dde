"""The SQLite task store on real files: off-loop I/O, group commits, durability, damage."""

from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path

import pytest

from taskroom.host.protocol.tasks import MAX_EVENTS_PER_TASK, TaskRecord, TaskStatus
from taskroom.host.server.app import RoomServer
from taskroom.host.server.tasks import SQLiteTaskStore, TaskStoreError, install_tasks, sqlite_open

from .processes import ROOT


def record(n: int = 0, room: str = "r", status: str = "pending", **kw) -> TaskRecord:
    return TaskRecord(id=f"t{n}", room=room, agent="agent", tool="run", status=status, **kw)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "tasks.sqlite3"


@pytest.fixture
async def store(path: Path):
    s = SQLiteTaskStore(path)
    yield s
    await s.close()


def damaged_copies(path: Path) -> list[Path]:
    """Files moved aside, without their WAL sidecars."""
    found = path.parent.glob(f"{path.name}.damaged-*")
    return sorted(p for p in found if not p.name.endswith(("-wal", "-shm")))


def execute(path: Path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        return db.execute(sql).fetchall()


# -- read-your-writes and ordering --------------------------------------------------


async def test_reads_see_the_write_just_awaited(store):
    task = record(1, status="running")
    await store.save(task)
    task.status = TaskStatus.COMPLETED
    task.result = {"answer": 42}
    await store.save(task)
    assert (await store.get("r", "t1")).result == {"answer": 42}
    assert [t.status for t in await store.list("r")] == ["completed"]
    assert await store.unfinished() == []


async def test_reads_wait_for_writes_issued_before_them(store):
    """A read sees a write that was issued but not yet awaited."""
    saving = asyncio.ensure_future(store.save(record(1)))
    event = asyncio.ensure_future(store.add_event("r", "t1", {"step": 1}))
    await asyncio.sleep(0)  # both are queued, neither has committed yet
    assert not saving.done()
    assert (await store.get("r", "t1")) is not None
    assert [e.data for e in await store.events("r", "t1")] == [{"step": 1}]
    await asyncio.gather(saving, event)


async def test_a_cancelled_caller_does_not_take_its_write_back(store):
    saving = asyncio.ensure_future(store.save(record(1)))
    await asyncio.sleep(0)
    saving.cancel()
    assert (await store.get("r", "t1")) is not None


async def test_the_record_is_stored_as_it_was_when_saved(store):
    task = record(1)
    saving = asyncio.ensure_future(store.save(task))
    await asyncio.sleep(0)
    task.status = TaskStatus.FAILED  # changed while the write is queued
    await saving
    assert (await store.get("r", "t1")).status == "pending"


# -- group commits and the event loop ----------------------------------------------


async def test_concurrent_writes_share_few_commits(store):
    before = store.stats().commits
    await asyncio.gather(*(store.save(record(i)) for i in range(500)))
    await asyncio.gather(*(store.add_event("r", f"t{i % 10}", {"i": i}) for i in range(500)))
    commits = store.stats().commits - before
    assert commits <= 20, f"1000 concurrent writes took {commits} commits"
    assert len(await store.list("r", limit=1000)) == 500
    assert len(await store.events("r", "t3", limit=100)) == 50


async def test_one_write_at_a_time_commits_each(store):
    before = store.stats().commits
    for i in range(5):
        await store.save(record(i))
    assert store.stats().commits - before == 5


async def test_a_big_write_does_not_block_the_event_loop(store):
    """While 80 MB are written, a 10 ms ticker keeps ticking (a store on the loop would
    stall it for the whole write)."""
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - before - 0.01)

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    lags.clear()
    blob = "x" * 20_000
    started = time.perf_counter()
    for i in range(40):
        await store.save_many([record(i * 100 + j, result=blob) for j in range(100)])
    elapsed = time.perf_counter() - started
    stop.set()
    await ticking
    assert len(await store.list("r", limit=5000)) == 4000
    assert len(lags) > elapsed / 0.01 / 4, (len(lags), elapsed)
    assert max(lags) < elapsed / 4, (max(lags), elapsed)


# -- durability --------------------------------------------------------------------


async def test_records_and_events_survive_close_and_reopen(path):
    store = SQLiteTaskStore(path)
    await store.save(record(1, status="running"))
    for i in range(3):
        assert (await store.add_event("r", "t1", {"i": i})).seq == i + 1
    pending = [asyncio.ensure_future(store.save(record(n))) for n in range(2, 12)]
    await asyncio.sleep(0)
    await store.close()  # commits what was queued before it
    await asyncio.gather(*pending)
    store = SQLiteTaskStore(path)
    try:
        assert len(await store.list("r")) == 11
        assert (await store.add_event("r", "t1", {"i": 3})).seq == 4
        assert [e.seq for e in await store.events("r", "t1")] == [1, 2, 3, 4]
    finally:
        await store.close()


async def test_a_write_after_close_is_refused(path):
    store = SQLiteTaskStore(path)
    await store.close()
    await store.close()
    with pytest.raises(TaskStoreError, match="closed"):
        await store.save(record(1))
    with pytest.raises(TaskStoreError, match="closed"):
        await store.get("r", "t1")


KILLED = textwrap.dedent(
    """
    import asyncio, sys, time
    from taskroom.host.protocol.tasks import TaskRecord
    from taskroom.host.server.tasks import SQLiteTaskStore

    async def main():
        store = SQLiteTaskStore(sys.argv[1])
        for i in range(50):
            await store.add_event("r", "t1", {"step": i})
        done = TaskRecord(id="t1", room="r", agent="a", tool="run", status="completed",
                          result="kept", finished_at=time.time())
        await store.save(done)
        print("saved", flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


async def test_a_finished_save_survives_kill_9_right_after_its_await(path):
    proc = subprocess.Popen(  # noqa: ASYNC220 (started once; its output is read off the loop)
        [sys.executable, "-c", KILLED, str(path)], cwd=ROOT, stdout=subprocess.PIPE
    )
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        assert line.strip() == b"saved"
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
    finally:
        proc.kill()
        proc.stdout.close()
    store = SQLiteTaskStore(path)
    try:
        task = await store.get("r", "t1")
        assert task.status == "completed" and task.result == "kept"
        assert (await store.add_event("r", "t1", {"late": True})).seq == 51
    finally:
        await store.close()


# -- event sequence numbers ---------------------------------------------------------


async def test_the_sequence_cache_is_bounded_and_numbers_stay_right(path):
    store = SQLiteTaskStore(path, max_cached_sequences=50)
    try:
        for n in range(200):
            await store.add_event("r", f"t{n}", {"n": n})
        assert store.stats().cached_sequences == 50
        assert (await store.add_event("r", "t0", {"again": True})).seq == 2  # evicted, reread
        await store.save(record(199, status="completed", finished_at=time.time()))
        assert store.stats().cached_sequences == 49  # a finished task drops its counter
        assert (await store.add_event("r", "t199", {"late": True})).seq == 2
    finally:
        await store.close()


async def test_only_the_last_events_of_a_task_are_kept(store):
    await asyncio.gather(
        *(store.add_event("r", "t1", {"i": i}) for i in range(MAX_EVENTS_PER_TASK + 20))
    )
    kept = await store.events("r", "t1", limit=10_000)
    assert len(kept) == MAX_EVENTS_PER_TASK
    assert kept[0].seq == 21 and kept[-1].seq == MAX_EVENTS_PER_TASK + 20


async def test_sweep_removes_old_finished_tasks_and_their_events(store):
    old = record(1, status="completed", finished_at=time.time() - 100)
    await store.save_many([old, record(2, status="running")])
    await store.add_event("r", "t1", {"x": 1})
    assert await store.sweep(time.time() - 10) == 1
    assert await store.get("r", "t1") is None and await store.events("r", "t1") == []
    assert await store.get("r", "t2") is not None


# -- bad writes ---------------------------------------------------------------------


async def test_a_lone_surrogate_is_refused_and_the_store_keeps_working(store, path):
    with pytest.raises(TaskStoreError) as err:
        await store.save(record(1, result="half a pair: \ud800"))
    assert str(path) in str(err.value) and "surrogates not allowed" in str(err.value)
    await store.save(record(2))
    assert [t.id for t in await store.list("r")] == ["t2"]


async def test_a_failing_write_does_not_sink_its_batch(store, path):
    """The bad value reaches SQLite (a room name), so the whole batch fails and is retried."""
    good = [record(n) for n in range(10)]
    before = store.stats().commits
    outcomes = await asyncio.gather(
        *(store.save(t) for t in good[:5]),
        store.add_event("r\udc80", "t1", {"bad": "room name"}),
        *(store.save(t) for t in good[5:]),
        store.add_event("r", "t1", {"with": "the batch"}),
        return_exceptions=True,
    )
    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], TaskStoreError)
    assert str(path) in str(errors[0])
    assert store.stats().commits - before >= 11  # retried one by one after the rollback
    assert sorted(t.id for t in await store.list("r")) == sorted(t.id for t in good)
    assert [e.seq for e in await store.events("r", "t1")] == [1]
    assert (await store.add_event("r", "t1", {"next": True})).seq == 2


# -- damaged files and rows ---------------------------------------------------------


async def test_a_new_file_is_fine(tmp_path):
    store = SQLiteTaskStore(tmp_path / "new" / "tasks.sqlite3")
    await store.close()


@pytest.mark.parametrize(
    "content, reason",
    [(b"", "empty"), (b"this is not a database" * 100, "not a database")],
    ids=["0-byte", "garbage"],
)
async def test_a_damaged_file_is_refused_unless_told_otherwise(path, content, reason):
    path.write_bytes(content)
    for mode in ("refuse", "skip"):
        with pytest.raises(TaskStoreError) as err:
            SQLiteTaskStore(path, on_damage=mode)
        assert str(path) in str(err.value) and reason in str(err.value)
        assert 'on_damage="fresh"' in str(err.value)
    assert path.read_bytes() == content and damaged_copies(path) == []

    store = SQLiteTaskStore(path, on_damage="fresh")
    try:
        await store.save(record(1))
        assert (await store.get("r", "t1")) is not None
    finally:
        await store.close()
    [moved] = damaged_copies(path)
    assert moved.read_bytes() == content


async def make_store_with_a_damaged_row(path: Path, body: str) -> None:
    store = SQLiteTaskStore(path)
    await store.save_many([record(1), record(2, created_at=time.time() + 1)])
    await store.add_event("r", "t1", {"ok": True})
    await store.close()
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("UPDATE tasks SET body = ? WHERE id = 't2'", (body,))


@pytest.mark.parametrize("body", ['{"id": "t2", "room": "r", "stat', '{"id": "t2"}'])
async def test_a_damaged_row_is_refused_with_its_name(path, body):
    await make_store_with_a_damaged_row(path, body)
    with pytest.raises(TaskStoreError) as err:
        SQLiteTaskStore(path)
    message = str(err.value)
    assert str(path) in message and "1 damaged row" in message and "r/t2" in message
    assert 'on_damage="skip"' in message


async def test_skip_reads_around_a_damaged_row(path, caplog):
    await make_store_with_a_damaged_row(path, "not json at all")
    caplog.set_level(logging.WARNING)
    store = SQLiteTaskStore(path, on_damage="skip")
    try:
        assert [t.id for t in await store.list("r")] == ["t1"]
        assert [t.id for t in await store.unfinished()] == ["t1"]
        assert await store.get("r", "t2") is None
        assert [e.data for e in await store.events("r", "t1")] == [{"ok": True}]
        await store.save(record(3))
        assert len(await store.list("r")) == 2
    finally:
        await store.close()
    assert any("r/t2" in m for m in caplog.messages)
    assert damaged_copies(path) == []


async def test_skip_reads_around_a_damaged_event(path):
    store = SQLiteTaskStore(path)
    for i in range(3):
        await store.add_event("r", "t1", {"i": i})
    await store.close()
    execute(path, "UPDATE task_events SET data = '[1, 2' WHERE seq = 2")
    with pytest.raises(TaskStoreError, match="event 2 of task r/t1"):
        SQLiteTaskStore(path)
    store = SQLiteTaskStore(path, on_damage="skip")
    try:
        assert [e.seq for e in await store.events("r", "t1")] == [1, 3]
        assert (await store.add_event("r", "t1", {"i": 3})).seq == 4
    finally:
        await store.close()


async def test_fresh_moves_a_store_with_a_damaged_row_aside(path):
    await make_store_with_a_damaged_row(path, "{")
    store = SQLiteTaskStore(path, on_damage="fresh")
    try:
        assert await store.list("r") == []
    finally:
        await store.close()
    [moved] = damaged_copies(path)
    assert execute(moved, "SELECT count(*) FROM tasks") == [(2,)]


async def test_a_locked_file_is_not_damage(path, monkeypatch):
    monkeypatch.setattr(sqlite_open, "BUSY_TIMEOUT", 0.2)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(TaskStoreError, match="locked"):
            SQLiteTaskStore(path, on_damage="fresh")
    finally:
        holder.close()
    assert damaged_copies(path) == []


async def test_install_tasks_passes_the_damage_choice_on(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "tasks.sqlite3").write_bytes(b"")
    with pytest.raises(TaskStoreError, match="empty"):
        install_tasks(RoomServer(data_dir=data, secret="s" * 32))
    store = install_tasks(RoomServer(data_dir=data, secret="s" * 32), on_damage="fresh")
    await store.close()
    assert len(damaged_copies(data / "tasks.sqlite3")) == 1
