"""A task given an instance at once is stored once, already running, before its call
leaves; the slot it takes is held while that write is in flight."""

from __future__ import annotations

import asyncio

import pytest

from taskroom.host.protocol import Frame

from .harness import Harness, peer


@pytest.fixture
async def h(tmp_path):
    harness = await Harness.create(tmp_path / "tasks.sqlite3")
    yield harness
    await harness.close()


async def test_the_record_is_running_in_the_store_before_the_call_leaves(h):
    runner = await h.host_agent("runner", "worker")
    alice = await h.join("alice")
    rid = await h.send(alice, "tasks.start", {"agent": "worker"})
    call = await h.next_call(runner)
    stored = await h.store.get("unit", call["data"]["task_id"])
    assert stored is not None
    assert (stored.status, stored.attempts, stored.instance) == ("running", 1, runner.id)
    started = await h.answer_of(alice, rid)
    assert started["tasks"][0]["status"] == "running"


async def test_starts_in_flight_together_do_not_overfill_an_instance(h):
    runner = await h.host_agent("runner", "worker", metadata={"max_concurrency": 1})
    alice = await h.join("alice")
    first, second = 101, 102
    await asyncio.gather(
        *(
            h.room.dispatch(alice, Frame(id=rid, type="tasks.start", data={"agent": "worker"}))
            for rid in (first, second)
        )
    )
    statuses = sorted(
        [
            (await h.answer_of(alice, first))["tasks"][0]["status"],
            (await h.answer_of(alice, second))["tasks"][0]["status"],
        ]
    )
    assert statuses == ["pending", "running"]
    call = await h.next_call(runner)
    assert [f for f in peer(runner).frames if f["type"] == "tool.call"] == []
    await h.reply(runner, call, {"ok": True})
    await h.reply(runner, await h.next_call(runner), {"ok": True})


async def test_an_instance_leaving_during_the_write_leaves_the_task_queued(h):
    runner = await h.host_agent("runner", "worker")
    alice = await h.join("alice")
    starting = asyncio.create_task(h.send(alice, "tasks.start", {"agent": "worker"}))
    while not h.room.router.load.get((runner.id, "worker")):
        await asyncio.sleep(0)  # until the slot is held: the start now waits for its write
    await h.room.leave(runner)
    started = await h.answer_of(alice, await starting)
    (task_id,) = started["task_ids"]
    snapshot = await h.request(alice, "tasks.get", {"task_id": task_id})
    assert (snapshot["status"], snapshot["attempts"], snapshot["instance"]) == ("pending", 0, None)
    stored = await h.store.get("unit", task_id)
    assert stored is not None and (stored.status, stored.attempts) == ("pending", 0)
    assert not [f for f in peer(runner).frames if f["type"] == "tool.call"]
    again = await h.host_agent("runner", "worker")
    call = await h.next_call(again)
    assert call["data"]["task_id"] == task_id
    await h.reply(again, call, {"ok": True})
    waited = await h.request(alice, "tasks.wait", {"task_id": task_id, "timeout": 2})
    assert waited["tasks"][0]["status"] == "completed"
    assert waited["tasks"][0]["attempts"] == 1


async def test_an_answer_being_recorded_is_not_reported_cancelled(h):
    runner = await h.host_agent("runner", "worker", metadata={"max_concurrency": 1})
    alice = await h.join("alice")
    starts = [await h.request(alice, "tasks.start", {"agent": "worker"}) for _ in range(3)]
    await h.reply(runner, await h.next_call(runner), {"ok": 1})
    # The second task started with the third queued behind it, so its answer is
    # recorded in a task of its own: the cancel that follows at once finds it
    # answered, and must not claim to have cancelled it.
    call = await h.next_call(runner)
    (task_id,) = starts[1]["task_ids"]
    assert call["data"]["task_id"] == task_id
    await h.reply(runner, call, {"ok": 2})
    cancelled = await h.request(alice, "tasks.cancel", {"task_id": task_id})
    assert cancelled["cancelled"] == []
    waited = await h.request(alice, "tasks.wait", {"task_id": task_id, "timeout": 2})
    assert waited["tasks"][0]["status"] == "completed"
    await h.reply(runner, await h.next_call(runner), {"ok": 3})


async def test_a_queued_task_is_stored_running_before_its_call_leaves(h):
    """A task that waited in the queue is, like one started at once, durable as running
    before its host hears of it: a room that dies in between must not run it again."""
    runner = await h.host_agent("runner", "worker", metadata={"max_concurrency": 1})
    alice = await h.join("alice")
    await h.send(alice, "tasks.start", {"agent": "worker"})
    queued_rid = await h.send(alice, "tasks.start", {"agent": "worker"})
    (queued_id,) = (await h.answer_of(alice, queued_rid))["task_ids"]
    first = await h.next_call(runner)
    assert (await h.store.get("unit", queued_id)).status == "pending"
    await h.reply(runner, first, {"ok": True})
    second = await h.next_call(runner)
    assert second["data"]["task_id"] == queued_id
    stored = await h.store.get("unit", queued_id)
    assert stored is not None
    assert (stored.status, stored.attempts, stored.instance) == ("running", 1, runner.id)
    await h.reply(runner, second, {"ok": True})


async def test_a_queued_task_cancelled_while_its_start_is_stored_never_reaches_its_host(h):
    runner = await h.host_agent("runner", "worker", metadata={"max_concurrency": 1})
    alice = await h.join("alice")
    await h.send(alice, "tasks.start", {"agent": "worker"})
    queued_rid = await h.send(alice, "tasks.start", {"agent": "worker"})
    (queued_id,) = (await h.answer_of(alice, queued_rid))["task_ids"]
    first = await h.next_call(runner)
    answering = asyncio.create_task(h.reply(runner, first, {"ok": True}))
    for _ in range(200):  # until the queued task is taken: its start is being stored
        if h.room.tasks.live[queued_id].record.status == "running":
            break
        await asyncio.sleep(0)
    assert h.room.tasks.live[queued_id].call is None
    await h.request(alice, "tasks.cancel", {"task_id": queued_id})
    await answering
    waited = await h.request(alice, "tasks.wait", {"task_id": queued_id, "timeout": 2})
    assert waited["tasks"][0]["status"] == "cancelled"
    await asyncio.sleep(0.05)
    assert not [f for f in peer(runner).frames if f["type"] == "tool.call"]
