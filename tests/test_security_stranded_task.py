"""An agent answer the store cannot keep (a lone surrogate) ends the task, with a reason.

Attack (issue item 9): an agent answers, or reports progress, with text holding a lone
UTF-16 surrogate, which JSON carries (``"\\ud800"``) but SQLite refuses. The task must end
failed with a clear error; wait returns it, cancel finds nothing left to cancel, and
neither the agent's connection nor the caller's breaks.
"""

from __future__ import annotations

import asyncio

import pytest

from taskroom.host.protocol import ErrorCode, RoomError

from .raw_participant import RawParticipant

ROOM = "stranded"
LONE = "half a pair: \ud800"


@pytest.fixture
def room_name() -> str:
    return ROOM


async def raw_agent(base_url: str, name: str) -> RawParticipant:
    agent = await RawParticipant.open(base_url, ROOM, name, "agent")
    await agent.host_agent(name)
    return agent


async def test_a_lone_surrogate_answer_fails_the_task_and_nothing_hangs(join, full_room):
    agent = await raw_agent(full_room.base_url, "liar")
    alice = await join("alice")
    try:
        (task_id,) = (await alice.tasks.start("liar", {}))["task_ids"]
        call = await agent.next_call()
        await agent.send({"type": "tool.progress", "data": {"call_id": call["id"], "data": {}}})
        progress = {"call_id": call["id"], "data": {"kind": "note", "text": LONE}}
        await agent.send({"type": "tool.progress", "data": progress})
        await agent.send({"id": call["id"], "type": "response", "data": {"result": LONE}})

        waited = await asyncio.wait_for(alice.tasks.wait(task_id, timeout=30), 15)
        assert waited["done"] and not waited["timed_out"]
        (task,) = waited["tasks"]
        assert task["status"] == "failed"
        assert "answer could not be stored" in task["error"]["message"]
        assert "surrogates not allowed" in task["error"]["message"]
        with pytest.raises(RoomError) as nothing_left:
            await alice.tasks.cancel(task_id)
        assert nothing_left.value.code is ErrorCode.CONFLICT
        listed = await alice.tasks.list()
        assert [t["status"] for t in listed["tasks"] if t["id"] == task_id] == ["failed"]
        assert await agent.ping()  # the agent's connection survived its own bad answer

        # The agent serves the next task as usual.
        (next_id,) = (await alice.tasks.start("liar", {}))["task_ids"]
        call = await agent.next_call()
        await agent.send({"id": call["id"], "type": "response", "data": {"result": "fine"}})
        waited = await alice.tasks.wait(next_id, timeout=30)
        assert waited["tasks"][0]["status"] == "completed"
        assert waited["tasks"][0]["result"] == "fine"
    finally:
        await agent.close()


async def test_a_lone_surrogate_answer_to_a_direct_call_is_an_error(join, full_room):
    agent = await raw_agent(full_room.base_url, "liar")
    alice = await join("alice")
    try:
        call = asyncio.create_task(alice.invoke_tool("liar", "run_liar_task", {}))
        frame = await agent.next_call()
        await agent.send({"id": frame["id"], "type": "response", "data": {"result": LONE}})
        with pytest.raises(RoomError) as failed:
            await asyncio.wait_for(call, 15)
        assert failed.value.code is ErrorCode.FAILED
        assert "could not be stored" in failed.value.message
        task_id = failed.value.details["task_id"]
        assert (await alice.tasks.get(task_id))["status"] == "failed"
        assert await agent.ping()
    finally:
        await agent.close()


ODD_ERRORS = [
    {"code": "failed", "message": "list details", "details": ["a", "b"]},
    {"code": {"not": "a code"}, "message": 5, "details": "text"},
    {"code": "no_such_code"},
]


@pytest.mark.parametrize("error", ODD_ERRORS)
async def test_an_odd_agent_error_ends_the_task_and_answers_the_caller(join, full_room, error):
    """Error data of the wrong shape (issue item 11: a list as details hung the caller)."""
    agent = await raw_agent(full_room.base_url, "odd")
    alice = await join("alice")
    try:
        (task_id,) = (await alice.tasks.start("odd", {}))["task_ids"]
        call = await agent.next_call()
        await agent.send({"id": call["id"], "type": "error", "data": error})
        waited = await asyncio.wait_for(alice.tasks.wait(task_id, timeout=30), 15)
        assert waited["tasks"][0]["status"] == "failed"
        assert isinstance(waited["tasks"][0]["error"].get("details", {}), dict)

        direct = asyncio.create_task(alice.invoke_tool("odd", "run_odd_task", {}))
        call = await agent.next_call()
        await agent.send({"id": call["id"], "type": "error", "data": error})
        with pytest.raises(RoomError) as failed:
            await asyncio.wait_for(direct, 15)
        assert failed.value.details["task_id"].startswith("t_")
        assert await agent.ping()
    finally:
        await agent.close()
