"""``tasks.start`` with ``wait``: one request that answers when the task has finished, can
be cancelled before its ids are known, and counts against the same limits as the
requests it replaces."""

from __future__ import annotations

import asyncio

import pytest

from taskroom.host.protocol import ErrorCode, Frame, RoomError
from taskroom.host.server.tasks import board as board_module
from taskroom.host.server.tasks import waits as waits_module

from .harness import Harness, peer, refused


@pytest.fixture
async def h(tmp_path):
    harness = await Harness.create(tmp_path / "tasks.sqlite3")
    yield harness
    await harness.close()


def answers_to(p, rid):
    return [f for f in peer(p).frames if f.get("id") == rid]


async def test_the_one_answer_comes_when_the_task_has_finished(h):
    runner = await h.host_agent("runner", "worker")
    alice = await h.join("alice")
    rid = await h.send(alice, "tasks.start", {"agent": "worker", "wait": 5})
    call = await h.next_call(runner)
    await asyncio.sleep(0.05)
    assert answers_to(alice, rid) == []  # nothing yet: the task runs
    await h.reply(runner, call, {"answer": 42})
    done = await h.answer_of(alice, rid)
    assert (done["done"], done["timed_out"]) == (True, False)
    (task,) = done["tasks"]
    assert task["id"] == done["task_ids"][0] == call["data"]["task_id"]
    assert (task["status"], task["result"]) == ("completed", {"answer": 42})
    assert answers_to(alice, rid) == []  # that was the only answer


async def test_it_answers_with_the_running_task_when_the_wait_runs_out(h):
    runner = await h.host_agent("runner", "worker")
    alice = await h.join("alice")
    answer = await h.request(alice, "tasks.start", {"agent": "worker", "wait": 0.05})
    assert (answer["done"], answer["timed_out"]) == (False, True)
    assert answer["tasks"][0]["status"] == "running"
    await h.reply(runner, await h.next_call(runner), {"ok": True})
    waited = await h.request(alice, "tasks.wait", {"task_id": answer["task_ids"][0]})
    assert waited["tasks"][0]["status"] == "completed"


async def test_a_waiting_start_is_cancelled_by_its_request_id(h):
    runner = await h.host_agent("runner", "worker")
    alice = await h.join("alice")
    rid = await h.send(alice, "tasks.start", {"agent": "worker", "wait": 5})
    call = await h.next_call(runner)
    cancelled = await h.request(alice, "tasks.cancel", {"start_request": rid})
    assert cancelled["cancelled"] == [call["data"]["task_id"]]
    await peer(runner).next(lambda f: f["type"] == "tool.cancel")
    answer = await h.answer_of(alice, rid)
    assert answer["tasks"][0]["status"] == "cancelled"


async def test_a_cancel_that_comes_while_the_start_is_stored_still_cancels_it(h):
    runner = await h.host_agent("runner", "worker", metadata={"max_concurrency": 1})
    alice = await h.join("alice")
    rid = await h.send(alice, "tasks.start", {"agent": "worker", "wait": 5})
    # The start has been dispatched as its own task and has not even begun: the cancel,
    # read right after it, is handled first.
    assert answers_to(alice, rid) == []
    cancelled = await h.request(alice, "tasks.cancel", {"start_request": rid})
    assert cancelled["cancelled"] == []
    answer = await h.answer_of(alice, rid)
    assert answer["tasks"][0]["status"] == "cancelled"
    stored = await h.store.get("unit", answer["task_ids"][0])
    assert stored is not None and stored.status == "cancelled"
    # Its call, if it had left, was cancelled at once, and its slot is free again.
    first = answer["task_ids"][0]
    calls = [f for f in peer(runner).frames if f["type"] == "tool.call"]
    if calls:
        assert [c["data"]["task_id"] for c in calls] == [first]
        cancel = await peer(runner).next(lambda f: f["type"] == "tool.cancel")
        assert cancel["data"]["call_id"] == calls[0]["id"]
        peer(runner).frames.remove(calls[0])
    rid2 = await h.send(alice, "tasks.start", {"agent": "worker"})
    call = await h.next_call(runner)
    assert call["data"]["task_id"] == (await h.answer_of(alice, rid2))["task_ids"][0]


async def test_nobody_else_can_cancel_a_waiting_start(h):
    runner = await h.host_agent("runner", "worker")
    alice = await h.join("alice")
    mallory = await h.join("mallory")
    rid = await h.send(alice, "tasks.start", {"agent": "worker", "wait": 5})
    call = await h.next_call(runner)
    await refused(h.request(mallory, "tasks.cancel", {"start_request": rid}), ErrorCode.NOT_FOUND)
    await h.reply(runner, call, {"ok": True})
    assert (await h.answer_of(alice, rid))["tasks"][0]["status"] == "completed"


async def test_waiting_starts_count_against_the_waits_of_their_connection(h, monkeypatch):
    monkeypatch.setattr(waits_module, "MAX_WAITS_PER_CONNECTION", 3)
    await h.host_agent("runner", "worker", metadata={"max_concurrency": 8})
    alice = await h.join("alice")
    for _ in range(2):
        await h.send(alice, "tasks.start", {"agent": "worker", "wait": 60})
    await asyncio.sleep(0.05)  # both are waiting now, and each counts once
    third = await h.send(alice, "tasks.start", {"agent": "worker", "wait": 60})
    fourth = await h.send(alice, "tasks.start", {"agent": "worker", "wait": 60})
    await refused(h.answer_of(alice, fourth), ErrorCode.UNAVAILABLE)
    await asyncio.sleep(0.05)
    assert answers_to(alice, third) == []  # accepted: it waits
    listed = await h.request(alice, "tasks.list", {})
    assert len(listed["tasks"]) == 3  # the refused start left nothing behind
    await refused(
        h.request(alice, "tasks.wait", {"task_id": listed["tasks"][0]["id"], "timeout": 1}),
        ErrorCode.UNAVAILABLE,
    )
    await h.room.leave(alice)
    await asyncio.sleep(0.05)
    manager = h.room.tasks
    assert manager is not None
    assert manager.waits.starts == {} and alice not in manager.waits.by_connection


async def test_starts_in_flight_together_cannot_overrun_the_quota(h, monkeypatch):
    monkeypatch.setattr(board_module, "MAX_UNFINISHED_PER_PRINCIPAL", 2)
    await h.host_agent("runner", "worker", metadata={"max_concurrency": 8})
    alice = await h.join("alice")
    rids = list(range(501, 506))
    for rid in rids:  # all five are in flight before any is stored
        await h.room.dispatch(alice, Frame(id=rid, type="tasks.start", data={"agent": "worker"}))
    outcomes = []
    for rid in rids:
        try:
            await h.answer_of(alice, rid)
            outcomes.append("started")
        except RoomError as exc:
            outcomes.append(exc.code)
    assert sorted(outcomes) == sorted(["started"] * 2 + [ErrorCode.UNAVAILABLE] * 3)
    listed = await h.request(alice, "tasks.list", {})
    assert len(listed["tasks"]) == 2


async def test_a_start_request_id_must_name_a_waiting_start(h):
    alice = await h.join("alice")
    await refused(h.request(alice, "tasks.cancel", {"start_request": 77}), ErrorCode.NOT_FOUND)
    await refused(
        h.request(alice, "tasks.cancel", {"start_request": 77, "task_id": "t_x"}),
        ErrorCode.INVALID_REQUEST,
    )


async def test_a_waiting_start_dies_with_its_connection_and_its_task_runs_on(h):
    runner = await h.host_agent("runner", "worker")
    alice = await h.join("alice")
    await h.send(alice, "tasks.start", {"agent": "worker", "wait": 60})
    call = await h.next_call(runner)
    await h.room.leave(alice)
    await asyncio.sleep(0.05)
    manager = h.room.tasks
    assert manager is not None
    assert manager.waits.starts == {} and alice not in manager.waits.by_connection
    assert [f for f in peer(runner).frames if f["type"] == "tool.cancel"] == []
    await h.reply(runner, call, {"ok": True})
    for _ in range(100):
        stored = await h.store.get("unit", call["data"]["task_id"])
        if stored is not None and stored.finished:
            break
        await asyncio.sleep(0.01)
    assert stored is not None and stored.status == "completed"
