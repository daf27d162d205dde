"""The room's routing, visibility, read_only, dispatch, requeue and watchdog, with no socket."""

from __future__ import annotations

import asyncio

import pytest

from taskroom.host.protocol import ErrorCode
from taskroom.host.server.tasks import waits as waits_module

from .harness import Harness, peer, refused, tool


@pytest.fixture
async def h(tmp_path):
    harness = await Harness.create(tmp_path / "tasks.sqlite3")
    yield harness
    await harness.close()


# --- the hole: a private instance is unreachable by any path ---------------------------


async def test_pinned_invoke_never_reaches_a_private_instance(h):
    private = await h.host(
        "secret-host", "kv", [tool("get")], public=False, allowed_callers=["carol"]
    )
    public = await h.host("open-host", "kv", [tool("get")])
    mallory = await h.join("mallory")
    # pinned to the private instance: exactly as if it did not exist
    err = await refused(
        h.request(
            mallory,
            "tools.invoke",
            {"toolkit": "kv", "tool": "get", "participant_id": private.id},
        ),
        ErrorCode.NOT_FOUND,
    )
    missing = await refused(
        h.request(
            mallory, "tools.invoke", {"toolkit": "kv", "tool": "get", "participant_id": "p_none"}
        ),
        ErrorCode.NOT_FOUND,
    )
    assert err.message.replace(private.id, "X") == missing.message.replace("p_none", "X")
    # unpinned calls always land on the public one
    for _ in range(4):
        rid = await h.send(mallory, "tools.invoke", {"toolkit": "kv", "tool": "get"})
        call = await h.next_call(public)
        await h.reply(public, call, "public")
        assert (await h.answer_of(mallory, rid))["result"] == "public"
    assert not [f for f in peer(private).frames if f["type"] == "tool.call"]
    # the caller it names still reaches it when pinned
    carol = await h.join("carol")
    rid = await h.send(
        carol,
        "tools.invoke",
        {"toolkit": "kv", "tool": "get", "participant_id": private.id},
    )
    await h.reply(private, await h.next_call(private), "private")
    assert (await h.answer_of(carol, rid))["result"] == "private"


async def test_task_start_and_requeue_never_reach_a_private_instance(h):
    private = await h.host_agent("runner", "worker", public=False, metadata={"requeue_safe": True})
    alice = await h.join("alice")
    # only a private instance: the agent does not exist for alice
    await refused(
        h.request(alice, "tasks.start", {"agent": "worker", "arguments": {}}), ErrorCode.NOT_FOUND
    )
    await refused(
        h.request(alice, "tools.invoke", {"toolkit": "worker", "tool": "run_worker_task"}),
        ErrorCode.NOT_FOUND,
    )
    public_a = await h.host_agent("runner", "worker", metadata={"requeue_safe": True})
    started = await h.request(alice, "tasks.start", {"agent": "worker", "arguments": {}})
    (task_id,) = started["task_ids"]
    call = await h.next_call(public_a)
    assert call["data"]["task_id"] == task_id
    # the public instance leaves mid-task: the task is re-queued, and with only the
    # private instance left it waits rather than going there
    await h.room.leave(public_a)
    await asyncio.sleep(0.05)
    snapshot = await h.request(alice, "tasks.get", {"task_id": task_id})
    assert snapshot["status"] == "pending" and snapshot["attempts"] == 1
    assert not [f for f in peer(private).frames if f["type"] == "tool.call"]
    public_b = await h.host_agent("runner", "worker", metadata={"requeue_safe": True})
    call = await h.next_call(public_b)
    assert call["data"]["task_id"] == task_id
    await h.reply(public_b, call, {"ok": True})
    waited = await h.request(alice, "tasks.wait", {"task_id": task_id, "timeout": 2})
    assert waited["tasks"][0]["status"] == "completed"
    assert waited["tasks"][0]["attempts"] == 2
    assert not [f for f in peer(private).frames if f["type"] == "tool.call"]


async def test_nested_call_from_a_task_sees_only_what_the_host_may_see(h):
    await h.host("vault", "secrets", [tool("read", read_only=True)], public=False)
    runner = await h.host_agent("runner", "worker")
    alice = await h.join("alice")
    await h.request(alice, "tasks.start", {"agent": "worker"})
    call = await h.next_call(runner)
    await refused(
        h.request(
            runner,
            "tools.invoke",
            {"toolkit": "secrets", "tool": "read", "parent_call_id": call["id"]},
        ),
        ErrorCode.NOT_FOUND,
    )


# --- read_only is a property of the whole call tree ----------------------------------------


async def test_read_only_task_cannot_write_by_any_path(h):
    files = await h.host("fs", "files", [tool("read", read_only=True), tool("write")])
    runner = await h.host_agent("runner", "worker")
    other = await h.host_agent("other-runner", "writer")
    alice = await h.join("alice")
    await h.request(alice, "tasks.start", {"agent": "worker", "read_only": True})
    ro_call = await h.next_call(runner)
    assert ro_call["data"]["read_only"] is True
    parent = {"parent_call_id": ro_call["id"]}
    # a write with the task as parent, or with no parent at all
    for extra in (parent, {}):
        await refused(
            h.request(runner, "tools.invoke", {"toolkit": "files", "tool": "write", **extra}),
            ErrorCode.PERMISSION_DENIED,
        )
    # a nested task inherits read_only, so its writes are refused too
    nested = await h.request(runner, "tasks.start", {"agent": "writer"})
    assert nested["tasks"][0]["read_only"] is True
    nested_call = await h.next_call(other)
    assert nested_call["data"]["read_only"] is True
    await refused(
        h.request(
            other,
            "tools.invoke",
            {"toolkit": "files", "tool": "write", "parent_call_id": nested_call["id"]},
        ),
        ErrorCode.PERMISSION_DENIED,
    )
    # a read is fine
    rid = await h.send(runner, "tools.invoke", {"toolkit": "files", "tool": "read", **parent})
    await h.reply(files, await h.next_call(files), "text")
    assert (await h.answer_of(runner, rid))["result"] == "text"


async def test_citing_another_call_as_parent_does_not_escape_read_only(h):
    await h.host("fs", "files", [tool("write")])
    runner = await h.host_agent("runner", "worker")
    alice = await h.join("alice")
    bob = await h.join("bob")
    # a writing task first, then a read_only one for the same runner identity: the
    # read_only one waits, since one identity never serves both kinds at once
    await h.request(alice, "tasks.start", {"agent": "worker"})
    rw_call = await h.next_call(runner)
    ro = await h.request(bob, "tasks.start", {"agent": "worker", "read_only": True})
    assert ro["tasks"][0]["status"] == "pending"
    await h.reply(runner, rw_call, {"done": 1})
    ro_call = await h.next_call(runner)
    assert ro_call["data"]["read_only"] is True
    # with a parent id that is not the read_only call: still refused
    await refused(
        h.request(
            runner,
            "tools.invoke",
            {"toolkit": "files", "tool": "write", "parent_call_id": rw_call["id"]},
        ),
        ErrorCode.PERMISSION_DENIED,
    )
    # another connection of the same identity is read_only too
    twin = await h.join("runner", "agent")
    await refused(
        h.request(twin, "tools.invoke", {"toolkit": "files", "tool": "write"}),
        ErrorCode.PERMISSION_DENIED,
    )


# --- grants and ownership ------------------------------------------------------------------


async def test_running_an_agent_needs_tasks_start_whichever_request(h):
    await h.host_agent("runner", "worker")
    limited = await h.join("limited", "user", grants=["tools.call"])
    for type_, data in (
        ("tasks.start", {"agent": "worker"}),
        ("tools.invoke", {"toolkit": "worker", "tool": "run_worker_task"}),
    ):
        await refused(h.request(limited, type_, data), ErrorCode.PERMISSION_DENIED)
    listed = await h.store.list("unit")
    assert listed == []


async def test_an_agent_name_cannot_be_hijacked(h):
    runner = await h.host_agent("runner", "worker")
    for metadata in ({"agent": True}, {}):
        mallory = await h.join("mallory", "agent")
        await refused(
            h.request(
                mallory,
                "toolkits.register",
                {"name": "worker", "tools": [tool("run_worker_task")], "metadata": metadata},
            ),
            ErrorCode.PERMISSION_DENIED,
        )
    alice = await h.join("alice")
    for _ in range(5):
        await h.request(alice, "tasks.start", {"agent": "worker"})
        await h.reply(runner, await h.next_call(runner), {"ok": True})


async def test_deep_metadata_is_refused_before_anything_changes(h):
    deep: dict = {}
    node = deep
    for _ in range(500):
        node["x"] = {}
        node = node["x"]
    bob = await h.join("bob", "tool")
    await refused(
        h.request(bob, "toolkits.register", {"name": "deep", "metadata": deep}),
        ErrorCode.INVALID_REQUEST,
    )
    assert "deep" not in h.room.registry.toolkits
    late = await h.join("late")
    ready = peer(late).frames[0]
    assert ready["type"] == "room.ready" and ready["data"]["toolkits"] == []


# --- dispatch, watchdog, waits --------------------------------------------------------------


async def test_queue_dispatches_in_order_as_instances_free_up(h):
    runner = await h.host_agent("runner", "worker", metadata={"max_concurrency": 1})
    alice = await h.join("alice")
    ids = [
        (await h.request(alice, "tasks.start", {"agent": "worker", "arguments": {"n": n}}))[
            "task_ids"
        ][0]
        for n in range(5)
    ]
    order = []
    for _ in ids:
        call = await h.next_call(runner)
        assert not [f for f in peer(runner).frames if f["type"] == "tool.call"]
        order.append(call["data"]["task_id"])
        await h.reply(runner, call, {"n": call["data"]["arguments"]["n"]})
    assert order == ids


async def test_watchdog_ends_a_quiet_task(h, monkeypatch):
    runner = await h.host_agent("runner", "worker")
    alice = await h.join("alice")
    started = await h.request(alice, "tasks.start", {"agent": "worker", "inactivity_timeout": 0.2})
    task_id = started["task_ids"][0]
    call = await h.next_call(runner)
    cancel = await peer(runner).next(lambda f: f["type"] == "tool.cancel", timeout=2)
    assert cancel["data"]["call_id"] == call["id"]
    record = await h.store.get("unit", task_id)
    assert record is not None and record.status == "failed"
    assert "inactivity watchdog" in record.error["message"]


async def test_waits_die_with_their_connection(h, monkeypatch):
    monkeypatch.setattr(waits_module, "MAX_WAITS_PER_CONNECTION", 3)
    await h.host_agent("runner", "worker")
    alice = await h.join("alice")
    task_id = (await h.request(alice, "tasks.start", {"agent": "worker"}))["task_ids"][0]
    for _ in range(3):
        await h.send(alice, "tasks.wait", {"task_id": task_id, "timeout": 60})
    await asyncio.sleep(0.05)
    await refused(
        h.request(alice, "tasks.wait", {"task_id": task_id, "timeout": 60}),
        ErrorCode.UNAVAILABLE,
    )
    manager = h.room.tasks
    assert manager is not None and len(manager.waits.by_connection[alice]) == 3
    assert len(manager.live[task_id].waiters) == 3
    await h.room.leave(alice)
    await asyncio.sleep(0.05)
    assert alice not in manager.waits.by_connection and manager.live[task_id].waiters == []


async def test_a_refused_start_leaves_nothing_behind(h):
    await h.host(
        "runner",
        "strict",
        [
            {
                "name": "run_strict_task",
                "input_schema": {
                    "type": "object",
                    "properties": {"n": {"type": "integer"}},
                    "required": ["n"],
                },
            }
        ],
        metadata={"agent": True},
    )
    alice = await h.join("alice")
    await refused(
        h.request(alice, "tasks.start", {"agent": "strict", "arguments": {"n": "x" * 1000}}),
        ErrorCode.INVALID_REQUEST,
    )
    manager = h.room.tasks
    assert manager is not None and manager.live == {} and not manager.board.unfinished
    assert await h.store.list("unit") == []
