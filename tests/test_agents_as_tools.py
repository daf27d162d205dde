"""A task runner in the room is a tool for other agents, and nested tasks know their parent."""

from __future__ import annotations

import pytest

from taskroom.agents import DynamicLLMTaskRunner, LLMTaskRunner, OpenAIChatCompletionsAdapter
from taskroom.agents.testing import ScriptedLLMServer
from taskroom.host.auth.tokens import create_token
from taskroom.host.client.room_client import RoomClient
from taskroom.host.server.build import build_room_server

from .conftest import SECRET

ROOM = "nested"


@pytest.fixture
async def setup(tmp_path):
    async with ScriptedLLMServer(auto=True) as llm:
        server = build_room_server(data_dir=tmp_path / "data", secret=SECRET)
        await server.start("127.0.0.1", 0)
        clients = []
        for identity, role in (("outer", "agent"), ("inner", "agent"), ("alice", "user")):
            client = RoomClient(
                server.base_url, ROOM, create_token(SECRET, room=ROOM, identity=identity, role=role)
            )
            await client.connect()
            clients.append(client)
        adapter = OpenAIChatCompletionsAdapter(base_url=llm.base_url, api_key="test", max_retries=0)
        await LLMTaskRunner(llm_adapter=adapter, supports_tools=True).start(clients[0])
        await DynamicLLMTaskRunner(llm_adapter=adapter, supports_tools=False).start(clients[1])
        yield clients[2], llm
        for client in clients:
            await client.close()
        await server.stop()


async def test_an_agent_calls_another_agent_as_a_tool(setup):
    alice, llm = setup
    outer = await alice.tasks.run(
        "llm-task-runner",
        {"prompt": "Ask the other agent for a plan", "tools": ["dynamic-llm-task-runner"]},
        timeout=20,
    )
    assert outer["status"] == "completed", outer["error"]
    offered = [t.get("function", t).get("name") for t in llm.requests[0].body.get("tools", [])]
    assert "run_dynamic-llm-task-runner_task" in offered
    nested = (await alice.tasks.list(agent="dynamic-llm-task-runner"))["tasks"]
    assert len(nested) == 1
    assert nested[0]["parent_task_id"] == outer["id"]
    assert nested[0]["status"] == "completed"
    assert nested[0]["caller"]["name"] == "outer"
    assert nested[0]["caller"]["on_behalf_of"]["name"] == "alice"
    events = (await alice.tasks.get(outer["id"]))["events"]
    kinds = [e["data"]["kind"] for e in events]
    assert "tool.nested" in kinds, kinds
    assert any(
        e["data"].get("tool") == "run_dynamic-llm-task-runner_task"
        and e["data"]["kind"] == "tool.result"
        for e in events
    )


async def test_naming_tools_needs_supports_tools(setup):
    alice, _ = setup
    from taskroom.host.protocol import RoomError

    with pytest.raises(RoomError) as err:
        await alice.tasks.start(
            "dynamic-llm-task-runner",
            {"prompt": "x", "output_schema": {"type": "object"}, "tools": ["llm-task-runner"]},
        )
    assert err.value.code == "invalid_request" and "tools" in err.value.message
