"""One contract, two stores: every behaviour the room relies on, on SQLite and on PostgreSQL.

The PostgreSQL store runs against a real server started for the session (tests/servers.py),
each test on its own fresh database.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from taskroom.agents.testing import ScriptedLLMServer
from taskroom.host.auth.tokens import create_token
from taskroom.host.client.room_client import RoomClient
from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.protocol.tasks import MAX_EVENTS_PER_TASK, TaskRecord, TaskStatus
from taskroom.host.server import RoomServer
from taskroom.host.server.build import build_room_server
from taskroom.host.server.tasks import (
    SQLiteTaskStore,
    StoredSchema,
    TaskStore,
    TaskStoreError,
    install_tasks,
    store_from_url,
)
from taskroom.host.server.tasks.postgres_store import PostgresTaskStore

from .conftest import SECRET
from .processes import BIN, Process, free_port, start_agent, wait_http
from .servers import PostgresServer, fresh_database, postgres_server  # noqa: F401


def record(n: int = 0, room: str = "r", status: str = "pending", **kw: Any) -> TaskRecord:
    kw.setdefault("agent", "agent")
    return TaskRecord(id=f"t{n}", room=room, tool="run", status=status, **kw)


def caller(name: str) -> dict[str, Any]:
    return {"id": f"p_{name}", "name": name, "role": "user"}


class Backend:
    """Opens stores on one location (a file, a database), as many times as a test needs."""

    def __init__(self, kind: str, location: str) -> None:
        self.kind = kind
        self.location = location
        self.opened: list[TaskStore] = []

    async def open(self, **options: Any) -> TaskStore:
        store: TaskStore
        if self.kind == "sqlite":
            store = SQLiteTaskStore(self.location, **options)
        else:
            store = PostgresTaskStore(self.location, **options)
        await store.open()
        self.opened.append(store)
        return store

    async def close_all(self) -> None:
        for store in self.opened:
            await store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        location = str(tmp_path / "tasks.sqlite3")
    else:
        location = await fresh_database(request.getfixturevalue("postgres_server"))
    b = Backend(request.param, location)
    yield b
    await b.close_all()


@pytest.fixture
async def store(backend: Backend) -> TaskStore:
    return await backend.open()


# -- records: save, get, list, filters ---------------------------------------------


async def test_save_get_and_replace(store):
    task = record(1, status="running", arguments={"prompt": "é ✓"}, caller=caller("alice"))
    await store.save(task)
    got = await store.get("r", "t1")
    assert got == task
    task.status = TaskStatus.COMPLETED
    task.result = {"answer": 42, "nul": "a\x00b"}
    task.finished_at = time.time()
    await store.save(task)
    assert (await store.get("r", "t1")).result == {"answer": 42, "nul": "a\x00b"}
    assert await store.get("r", "t2") is None
    assert await store.get("other-room", "t1") is None


async def test_list_filters_newest_first_and_pages(store):
    now = time.time()
    tasks = [
        record(
            n,
            status=("completed", "running", "pending")[n % 3],
            agent=("a", "b")[n % 2],
            batch_id="b1" if n < 4 else None,
            caller=caller(("alice", "bob")[n % 2]),
            created_at=now + n,
        )
        for n in range(10)
    ]
    await store.save_many(tasks)
    await store.save(record(99, room="elsewhere", created_at=now + 99))
    ids = lambda found: [t.id for t in found]  # noqa: E731
    assert ids(await store.list("r", limit=100)) == [f"t{n}" for n in range(9, -1, -1)]
    assert ids(await store.list("r", status="running")) == ["t7", "t4", "t1"]
    assert ids(await store.list("r", agent="a", status="completed")) == ["t6", "t0"]
    assert ids(await store.list("r", batch_id="b1")) == ["t3", "t2", "t1", "t0"]
    assert ids(await store.list("r", caller="bob")) == ["t9", "t7", "t5", "t3", "t1"]
    assert ids(await store.list("r", before=now + 5, limit=2)) == ["t4", "t3"]
    assert ids(await store.list("elsewhere")) == ["t99"]


async def test_caller_filter_uses_the_principal_a_task_runs_for(store):
    task = record(1, caller={**caller("gateway"), "on_behalf_of": caller("carol")})
    await store.save(task)
    assert [t.id for t in await store.list("r", caller="carol")] == ["t1"]
    assert await store.list("r", caller="gateway") == []


async def test_unfinished_oldest_first_per_room_or_all(store):
    now = time.time()
    await store.save_many(
        [
            record(1, status="running", created_at=now + 2),
            record(2, status="pending", created_at=now + 1),
            record(3, status="completed", created_at=now, finished_at=now),
            record(4, room="s", status="pending", created_at=now + 3),
        ]
    )
    assert [t.id for t in await store.unfinished("r")] == ["t2", "t1"]
    assert [t.id for t in await store.unfinished()] == ["t2", "t1", "t4"]


# -- read-your-writes and ordering --------------------------------------------------


async def test_reads_wait_for_writes_issued_before_them(store):
    saving = asyncio.ensure_future(store.save(record(1)))
    event = asyncio.ensure_future(store.add_event("r", "t1", {"step": 1}))
    await asyncio.sleep(0)
    assert not saving.done()
    assert (await store.get("r", "t1")) is not None
    assert [e.data for e in await store.events("r", "t1")] == [{"step": 1}]
    await asyncio.gather(saving, event)


async def test_a_later_save_is_never_overtaken_by_an_earlier_one(store):
    task = record(1)
    writes = []
    for status in ("running", "pending", "running", "completed"):
        task.status = TaskStatus(status)
        writes.append(asyncio.ensure_future(store.save(task)))
    await asyncio.gather(*writes)
    assert (await store.get("r", "t1")).status == "completed"


async def test_a_cancelled_caller_does_not_take_its_write_back(store):
    saving = asyncio.ensure_future(store.save(record(1)))
    await asyncio.sleep(0)
    saving.cancel()
    assert (await store.get("r", "t1")) is not None


async def test_the_record_is_stored_as_it_was_when_saved(store):
    task = record(1)
    saving = asyncio.ensure_future(store.save(task))
    await asyncio.sleep(0)
    task.status = TaskStatus.FAILED
    await saving
    assert (await store.get("r", "t1")).status == "pending"


async def test_concurrent_writes_share_few_commits(store):
    before = store.stats().commits
    await asyncio.gather(*(store.save(record(i)) for i in range(500)))
    await asyncio.gather(*(store.add_event("r", f"t{i % 10}", {"i": i}) for i in range(500)))
    commits = store.stats().commits - before
    assert commits <= 20, f"1000 concurrent writes took {commits} commits"
    assert len(await store.list("r", limit=1000)) == 500
    assert len(await store.events("r", "t3", limit=100)) == 50


# -- events ----------------------------------------------------------------------------


async def test_events_are_numbered_per_task_without_gaps(store):
    seqs = await asyncio.gather(*(store.add_event("r", f"t{i % 3}", {"i": i}) for i in range(300)))
    by_task: dict[int, list[int]] = {}
    for i, event in enumerate(seqs):
        by_task.setdefault(i % 3, []).append(event.seq)
    for numbers in by_task.values():
        assert numbers == list(range(1, 101))
    last = await store.events("r", "t1", limit=3)
    assert [e.seq for e in last] == [98, 99, 100]
    assert [e.data["i"] for e in last] == [292, 295, 298]
    assert await store.events("s", "t1") == []


async def test_only_the_last_events_of_a_task_are_kept(store):
    await asyncio.gather(
        *(store.add_event("r", "t1", {"i": i}) for i in range(MAX_EVENTS_PER_TASK + 20))
    )
    kept = await store.events("r", "t1", limit=10_000)
    assert len(kept) == MAX_EVENTS_PER_TASK
    assert kept[0].seq == 21 and kept[-1].seq == MAX_EVENTS_PER_TASK + 20


async def test_the_sequence_cache_is_bounded_and_numbers_stay_right(backend):
    store = await backend.open(max_cached_sequences=50)
    for n in range(200):
        await store.add_event("r", f"t{n}", {"n": n})
    assert store.stats().cached_sequences == 50
    assert (await store.add_event("r", "t0", {"again": True})).seq == 2
    await store.save(record(199, status="completed", finished_at=time.time()))
    assert store.stats().cached_sequences == 49
    assert (await store.add_event("r", "t199", {"late": True})).seq == 2


async def test_two_stores_on_one_database_never_number_an_event_twice(backend):
    """Two nodes writing events of one task (a room that moved and came back): each
    store's cached counter goes stale, the clash is caught and the number re-read."""
    first, second = await backend.open(), await backend.open()
    assert (await first.add_event("r", "t1", {"by": 1})).seq == 1
    assert (await second.add_event("r", "t1", {"by": 2})).seq == 2
    assert (await first.add_event("r", "t1", {"by": 1})).seq == 3
    assert (await second.add_event("r", "t1", {"by": 2})).seq == 4
    assert [e.data["by"] for e in await first.events("r", "t1")] == [1, 2, 1, 2]


async def test_a_failing_write_does_not_sink_its_batch(store):
    good = [record(n) for n in range(10)]
    outcomes = await asyncio.gather(
        *(store.save(t) for t in good[:5]),
        store.add_event("r\udc80", "t1", {"bad": "room name"}),
        *(store.save(t) for t in good[5:]),
        store.add_event("r", "t1", {"with": "the batch"}),
        return_exceptions=True,
    )
    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], TaskStoreError)
    assert sorted(t.id for t in await store.list("r")) == sorted(t.id for t in good)
    assert [e.seq for e in await store.events("r", "t1")] == [1]
    assert (await store.add_event("r", "t1", {"next": True})).seq == 2


async def test_save_many_stores_all_or_none(store):
    with pytest.raises(TaskStoreError):
        await store.save_many([record(1), record(2, result="half a pair: \ud800")])
    assert await store.list("r") == []
    await store.save_many([record(1), record(2)])
    assert len(await store.list("r")) == 2


# -- retention, recovery, durability ----------------------------------------------------


async def test_sweep_removes_old_finished_tasks_with_their_events_and_checkpoints(store):
    now = time.time()
    old = record(1, status="running")
    await store.save_many([old, record(2, status="running"), record(3, status="completed")])
    await store.add_event("r", "t1", {"x": 1})
    await store.save_checkpoint("r", "t2", {"turn": 1})
    old.status, old.finished_at = TaskStatus.COMPLETED, now - 100
    await store.save(old)
    assert await store.sweep(now - 10) == 1  # t3 has no finished_at: never swept
    assert await store.get("r", "t1") is None and await store.events("r", "t1") == []
    assert await store.get("r", "t2") is not None
    assert await store.checkpoint("r", "t2") == {"turn": 1}
    assert await store.sweep(now - 10) == 0


async def test_records_events_checkpoints_and_schemas_survive_close_and_reopen(backend):
    store = await backend.open()
    await store.save(record(1, status="running"))
    for i in range(3):
        assert (await store.add_event("r", "t1", {"i": i})).seq == i + 1
    await store.save_checkpoint("r", "t1", {"turn": 2, "messages": ["a", "b"]})
    await store.put_schema("r", StoredSchema("point", {"type": "object"}, "alice"))
    pending = [asyncio.ensure_future(store.save(record(n))) for n in range(2, 12)]
    await asyncio.sleep(0)
    await store.close()  # commits what was queued before it
    await asyncio.gather(*pending)
    store = await backend.open()
    assert len(await store.list("r")) == 11
    assert (await store.add_event("r", "t1", {"i": 3})).seq == 4
    assert [e.seq for e in await store.events("r", "t1")] == [1, 2, 3, 4]
    assert await store.checkpoint("r", "t1") == {"turn": 2, "messages": ["a", "b"]}
    assert await store.schemas("r") == [StoredSchema("point", {"type": "object"}, "alice")]


async def test_a_closed_store_refuses_reads_and_writes(backend):
    store = await backend.open()
    await store.close()
    await store.close()
    with pytest.raises(TaskStoreError, match="closed"):
        await store.save(record(1))
    with pytest.raises(TaskStoreError, match="closed"):
        await store.get("r", "t1")


# -- checkpoints ---------------------------------------------------------------------------


async def test_a_checkpoint_is_replaced_and_dropped_when_its_task_finishes(store):
    task = record(1, status="running")
    await store.save(task)
    assert await store.checkpoint("r", "t1") is None
    await store.save_checkpoint("r", "t1", {"turn": 1, "tool_results": {}})
    await store.save_checkpoint("r", "t1", {"turn": 2, "tool_results": {"c1": "42"}})
    assert await store.checkpoint("r", "t1") == {"turn": 2, "tool_results": {"c1": "42"}}
    assert await store.checkpoint("other", "t1") is None
    task.status, task.finished_at = TaskStatus.COMPLETED, time.time()
    await store.save(task)
    assert await store.checkpoint("r", "t1") is None


# -- schemas -------------------------------------------------------------------------------


async def test_schemas_are_kept_per_room(store):
    await store.put_schema("r", StoredSchema("b", {"type": "string"}, "alice"))
    await store.put_schema("r", StoredSchema("a", {"type": "object"}, "bob"))
    await store.put_schema("s", StoredSchema("a", {"type": "integer"}, "carol"))
    await store.put_schema("r", StoredSchema("b", {"type": "number"}, "alice"))
    assert await store.schemas("r") == [
        StoredSchema("a", {"type": "object"}, "bob"),
        StoredSchema("b", {"type": "number"}, "alice"),
    ]
    await store.remove_schema("r", "a")
    await store.remove_schema("r", "missing")
    assert [s.name for s in await store.schemas("r")] == ["b"]
    assert await store.schemas("s") == [StoredSchema("a", {"type": "integer"}, "carol")]


# -- PostgreSQL only: connecting, and nodes starting together ---------------------------


async def test_postgres_down_at_start_is_a_clear_error():
    port = free_port()
    store = PostgresTaskStore(f"postgresql://taskroom:secret@127.0.0.1:{port}/tasks")
    with pytest.raises(TaskStoreError) as err:
        await store.open()
    message = str(err.value)
    assert f"cannot connect to PostgreSQL at 127.0.0.1:{port}/tasks" in message
    assert "secret" not in message
    with pytest.raises(TaskStoreError, match="not open"):
        await store.save(record(1))
    await store.close()


async def test_an_unknown_database_is_named(postgres_server):  # noqa: F811
    store = PostgresTaskStore(postgres_server.dsn_for("no_such_db"))
    with pytest.raises(TaskStoreError, match='PostgreSQL at .*/no_such_db: .*"no_such_db"'):
        await store.open()


async def test_nodes_starting_together_create_the_tables_once(postgres_server):  # noqa: F811
    dsn = await fresh_database(postgres_server)
    stores = [PostgresTaskStore(dsn) for _ in range(4)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        await stores[0].save(record(1))
        assert [t.id for t in await stores[3].list("r")] == ["t1"]
    finally:
        for s in stores:
            await s.close()


def test_store_urls_pick_the_store(tmp_path):
    assert isinstance(store_from_url("postgresql://u@h:1/db", tmp_path), PostgresTaskStore)
    assert isinstance(store_from_url("postgres://u@h:1/db", tmp_path), PostgresTaskStore)
    with pytest.raises(TaskStoreError, match="unknown task store 'mysql'"):
        store_from_url("mysql://u@h/db", tmp_path)


async def test_store_urls_open_sqlite_by_default_or_at_a_path(tmp_path):
    default = store_from_url(None, tmp_path)
    elsewhere = store_from_url(f"sqlite:///{tmp_path}/other/tasks.db", tmp_path)
    try:
        assert isinstance(default, SQLiteTaskStore)
        assert default.path == tmp_path / "tasks.sqlite3"
        assert isinstance(elsewhere, SQLiteTaskStore)
        assert elsewhere.path == tmp_path / "other" / "tasks.db"
    finally:
        await default.close()
        await elsewhere.close()


# -- end to end: a room server on PostgreSQL, restarted --------------------------------


def serve(port: int, data_dir: Path, store: str, log: Path) -> Process:
    """``taskroom room serve --store ...`` in its own process, ready to accept clients."""
    proc = Process(
        [
            str(BIN / "taskroom"),
            "room",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--store",
            store,
        ],
        env={"TASKROOM_SECRET": SECRET},
        log=log,
    )
    wait_http(f"http://127.0.0.1:{port}/healthz")
    return proc


def token(identity: str, role: str = "user") -> str:
    return create_token(SECRET, room=ROOM, identity=identity, role=role)


ROOM = "kept"


async def test_tasks_and_schemas_outlive_the_room_server_on_postgres(tmp_path, postgres_server):  # noqa: F811
    """Three tasks finish and a schema is put; the room server is killed and another one,
    with an empty data folder (another node), serves the room from the same database."""
    dsn = await fresh_database(postgres_server)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with ScriptedLLMServer() as llm:
        room = serve(port, tmp_path / "node-a", dsn, tmp_path / "room.log")
        agent = start_agent(url, ROOM, token("llm-task-runner", "agent"), llm.base_url)
        try:
            async with RoomClient(url, ROOM, token("alice"), reconnect=False) as alice:
                await alice.put_schema("point", {"type": "object", "required": ["x"]})
                deadline = time.monotonic() + 20
                while not await alice.list_toolkits(name="llm-task-runner"):
                    assert time.monotonic() < deadline, "the agent never joined"
                    await asyncio.sleep(0.1)
                done = []
                for i in range(3):
                    started = await alice.tasks.start("llm-task-runner", {"prompt": f"job {i}"})
                    done.append(started["task_ids"][0])
                for task_id in done:
                    await alice.tasks.wait(task_id, timeout=20)
            agent.stop()
            room.kill()
            room = serve(port, tmp_path / "node-b", dsn, tmp_path / "room.log")
            async with RoomClient(url, ROOM, token("alice"), reconnect=False) as alice:
                for i, task_id in enumerate(done):
                    result = await alice.tasks.result(task_id)
                    assert result["status"] == "completed"
                    assert f"job {i}" in result["result"]["result"]
                    events = (await alice.tasks.get(task_id))["events"]
                    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
                assert await alice.get_schema("point") == {"type": "object", "required": ["x"]}
                listed = await alice.tasks.list()
                assert sorted(t["id"] for t in listed["tasks"]) == sorted(done)
        finally:
            agent.stop()
            room.stop()
    assert not (tmp_path / "node-b" / "tasks.sqlite3").exists()


async def test_a_room_server_without_its_postgres_says_so_in_one_line(tmp_path):
    port = free_port()
    done = await asyncio.to_thread(
        subprocess.run,
        [
            str(BIN / "taskroom"),
            "room",
            "serve",
            "--port",
            str(free_port()),
            "--data-dir",
            str(tmp_path),
            "--store",
            f"postgresql://taskroom:pw@127.0.0.1:{port}/tasks",
        ],
        env={**os.environ, "TASKROOM_SECRET": SECRET, "COLUMNS": "60"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: cannot connect to PostgreSQL at 127.0.0.1:{port}/tasks: "
        + errors[0].split(": ", 2)[2]
    ]
    assert "Traceback" not in done.stderr and "pw" not in done.stderr


async def test_schemas_outlive_a_restart_of_the_default_sqlite_room(tmp_path):
    data = tmp_path / "room"
    for step in ("put", "check", "removed"):
        server = build_room_server(data_dir=data, secret=SECRET)
        await server.start("127.0.0.1", 0)
        try:
            async with RoomClient(server.base_url, ROOM, token("alice"), reconnect=False) as alice:
                if step == "put":
                    await alice.put_schema("point", {"type": "object"})
                    await alice.put_schema("line", {"type": "array"})
                elif step == "check":
                    assert sorted(await alice.list_schemas()) == ["line", "point"]
                    async with RoomClient(
                        server.base_url, ROOM, token("bob"), reconnect=False
                    ) as bob:
                        with pytest.raises(RoomError, match="belongs to 'alice'"):
                            await bob.put_schema("point", {"type": "string"})
                    await alice.request("schemas.remove", {"name": "line"})
                else:
                    assert await alice.list_schemas() == {"point": {"type": "object"}}
        finally:
            await server.stop()


async def test_postgres_lost_mid_run_fails_writes_clearly_and_recovers_when_back():
    """A server of its own: this test kills it."""
    server = PostgresServer()
    store = PostgresTaskStore(server.dsn, connect_timeout=2.0)
    try:
        await store.open()
        await store.save(record(1))
        await store.add_event("r", "t1", {"i": 1})
        server.kill()
        with pytest.raises(TaskStoreError, match=f"PostgreSQL at 127.0.0.1:{server.port}/postgres"):
            await store.save(record(2))
        with pytest.raises(TaskStoreError, match="cannot read the task store in PostgreSQL"):
            await store.get("r", "t1")
        server.start()
        await store.save(record(2))
        assert sorted(t.id for t in await store.list("r")) == ["t1", "t2"]
        assert (await store.add_event("r", "t1", {"i": 2})).seq == 2
    finally:
        await store.close()
        server.remove()


async def test_a_schema_change_the_store_refuses_is_undone(tmp_path):
    server = RoomServer(data_dir=tmp_path / "room", secret=SECRET)
    store = install_tasks(server)
    await server.start("127.0.0.1", 0)
    try:
        async with RoomClient(server.base_url, ROOM, token("alice"), reconnect=False) as alice:
            await alice.put_schema("point", {"type": "object"})
            await store.close()  # every later write fails
            with pytest.raises(RoomError) as refused:
                await alice.put_schema("point", {"type": "string"})
            assert refused.value.code == ErrorCode.FAILED
            assert "the schema could not be stored" in refused.value.message
            with pytest.raises(RoomError, match="could not be stored"):
                await alice.put_schema("line", {"type": "array"})
            with pytest.raises(RoomError, match="removal was not stored"):
                await alice.request("schemas.remove", {"name": "point"})
            assert await alice.list_schemas() == {"point": {"type": "object"}}
    finally:
        await server.stop()


async def test_taskroom_store_in_the_environment_picks_the_store(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKROOM_STORE", "mysql://u@h/db")
    with pytest.raises(TaskStoreError, match="unknown task store 'mysql'"):
        build_room_server(data_dir=tmp_path, secret=SECRET)
    server = build_room_server(data_dir=tmp_path, secret=SECRET, store="sqlite")
    await server.stop()  # the store given in code wins over the environment's


async def test_postgres_save_many_is_all_or_none_when_the_server_refuses_a_row(postgres_server):  # noqa: F811
    store = PostgresTaskStore(await fresh_database(postgres_server))
    await store.open()
    try:
        with pytest.raises(TaskStoreError, match="PostgreSQL at"):
            await store.save_many([record(1), record(2, room="r\x00")])  # TEXT refuses NUL
        assert await store.list("r") == []
        await store.save_many([record(1), record(2)])
        assert len(await store.list("r")) == 2
    finally:
        await store.close()
