"""The MCP gateway pointed at a node that does not own its room reaches the owner."""

from __future__ import annotations

import json

from mcp import ClientSession, StdioServerParameters, stdio_client

from taskroom.agents import LLMTaskRunner, OpenAIResponsesAdapter
from taskroom.agents.testing import ScriptedLLMServer, json_output
from taskroom.host.auth.tokens import create_token
from taskroom.host.client.room_client import RoomClient
from tests.processes import BIN

from .nodes import SECRET
from .test_cluster_faults import start_node

ROOM = "mcp-cluster"


async def test_the_gateway_on_another_node_runs_a_task_at_the_owner(
    tmp_path, redis_server, postgres_dsn
) -> None:
    owner = await start_node(tmp_path, redis_server.url, postgres_dsn)
    other = await start_node(tmp_path, redis_server.url, postgres_dsn)
    async with ScriptedLLMServer() as llm:
        llm.script(json_output({"result": "from the owner"}))
        agent = RoomClient(
            owner.base_url or "",
            ROOM,
            create_token(SECRET, room=ROOM, identity="llm-task-runner", role="agent"),
        )
        try:
            await agent.connect()
            adapter = OpenAIResponsesAdapter(base_url=llm.base_url, api_key="test", max_retries=0)
            await LLMTaskRunner(llm_adapter=adapter).start(agent)
            token = create_token(SECRET, room=ROOM, identity="mcp-gateway", role="user")
            params = StdioServerParameters(
                command=str(BIN / "taskroom"),
                args=["mcp", "--room", ROOM, "--url", other.base_url or "", "--token", token],
                env={"TASKROOM_MODEL": "scripted", "OPENAI_BASE_URL": llm.base_url},
                cwd=str(tmp_path),
            )
            with (tmp_path / "gateway.log").open("a") as errlog:
                async with (
                    stdio_client(params, errlog=errlog) as (read, write),
                    ClientSession(read, write) as mcp,
                ):
                    await mcp.initialize()
                    started = await mcp.call_tool("run_task", {"task": "Say hello."})
                    assert not started.is_error, started.content[0].text
                    task_id = json.loads(started.content[0].text)["task_id"]
                    waited = await mcp.call_tool(
                        "wait_for_task", {"task_id": task_id, "timeout_seconds": 30}
                    )
                    assert not waited.is_error, waited.content[0].text
                    answer = json.loads(waited.content[0].text)
            assert answer["status"] == "completed"
            assert answer["output"] == "from the owner"
            assert ROOM in owner.rooms and ROOM not in other.rooms
        finally:
            await agent.close()
            await owner.stop()
            await other.stop()
