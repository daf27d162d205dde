"""An agent answer the store cannot keep (a lone surrogate) ends the task, with a reason.

Attack (issue item 9): an agent answers, or reports progress, with text holding a lone
UTF-16 surrogate, which JSON carries (``"\\ud800"``) but SQLite refuses. The task must end
failed with a clear error; wait returns it, cancel finds nothing left to cancel, and
neither the agent's connection nor the caller's breaks.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from taskroom.host.auth.tokens import create_token
from taskroom.host.client.connection import websocket_url
from taskroom.host.protocol import ErrorCode, RoomError

from .conftest import SECRET

ROOM = "stranded"
LONE = "half a pair: \ud800"


@pytest.fixture
def room_name() -> str:
    return ROOM


class RawAgent:
    """An agent speaking the wire protocol by hand, so it can send any JSON text."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, base_url: str, name: str) -> RawAgent:
        token = create_token(SECRET, room=ROOM, identity=name, role="agent")
        ws = await ws_connect(
            websocket_url(base_url, ROOM), additional_headers={"Authorization": f"Bearer {token}"}
        )
        assert json.loads(await ws.recv())["type"] == "room.ready"
        agent = cls(ws)
        spec = {"name": name, "tools": [{"name": f"run_{name}_task"}], "metadata": {"agent": True}}
        await agent.send({"id": 1, "type": "toolkits.register", "data": spec})
        assert (await agent.next(lambda f: f.get("id") == 1))["type"] == "response"
        return agent

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))  # ensure_ascii: "\ud800" goes as an escape

    async def next(self, match: Any) -> dict[str, Any]:
        while True:
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
            if match(frame):
                return frame

    async def next_call(self) -> dict[str, Any]:
        return await self.next(lambda f: f["type"] == "tool.call")

    async def ping(self) -> bool:
        await self.send({"id": "p", "type": "ping"})
        return (await self.next(lambda f: f.get("id") == "p"))["data"]["pong"]


async def test_a_lone_surrogate_answer_fails_the_task_and_nothing_hangs(join, full_room):
    agent = await RawAgent.open(full_room.base_url, "liar")
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
        await agent.ws.close()


async def test_a_lone_surrogate_answer_to_a_direct_call_is_an_error(join, full_room):
    agent = await RawAgent.open(full_room.base_url, "liar")
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
        await agent.ws.close()


ODD_ERRORS = [
    {"code": "failed", "message": "list details", "details": ["a", "b"]},
    {"code": {"not": "a code"}, "message": 5, "details": "text"},
    {"code": "no_such_code"},
]


@pytest.mark.parametrize("error", ODD_ERRORS)
async def test_an_odd_agent_error_ends_the_task_and_answers_the_caller(join, full_room, error):
    """Error data of the wrong shape (issue item 11: a list as details hung the caller)."""
    agent = await RawAgent.open(full_room.base_url, "odd")
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
        await agent.ws.close()
