"""Durable resume inside a task: a re-queued LLM task picks up at its last completed turn.

The runner keeps its chat in the room after every model turn and tool call; a runner
killed with SIGKILL mid-task is replaced, the room re-queues the task (the runner says
that is safe), and the new attempt resumes: the scripted LLM is not asked a finished turn
again and the tool that already ran is not run twice. Only the participant serving a task
can write or read its checkpoint.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from taskroom.agents import LLMTaskRunner, OpenAIResponsesAdapter
from taskroom.agents.testing import ScriptedLLMServer, hang, json_output, tool_calls
from taskroom.host.auth.tokens import create_token
from taskroom.host.client.room_client import RoomClient
from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.server import RoomServer
from taskroom.host.server.build import build_room_server
from taskroom.toolkits import Toolkit, tool

from .conftest import SECRET
from .processes import Process
from .servers import fresh_database, postgres_server  # noqa: F401

ROOM = "resume"

RUNNER = textwrap.dedent(
    """
    import asyncio, sys
    from taskroom.agents import LLMTaskRunner, OpenAIResponsesAdapter
    from taskroom.host.client.room_client import RoomClient

    class Resumable(LLMTaskRunner):
        def metadata(self):
            return {**super().metadata(), "requeue_safe": True}

    async def main(url, room, token, llm):
        adapter = OpenAIResponsesAdapter(base_url=llm, api_key="test", max_retries=0)
        runner = Resumable(llm_adapter=adapter, supports_tools=True, checkpoints=True)
        async with RoomClient(url, room, token) as client:
            await runner.start(client)
            await asyncio.Event().wait()

    asyncio.run(main(*sys.argv[1:5]))
    """
)


def token(identity: str, role: str = "user") -> str:
    return create_token(SECRET, room=ROOM, identity=identity, role=role)


def tool_outputs(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool results a Responses request sends back to the model."""
    return [
        i for i in body["input"] if isinstance(i, dict) and i.get("type") == "function_call_output"
    ]


async def until(check, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def counter_toolkit(calls: list[dict[str, Any]]) -> Toolkit:
    @tool
    async def record(note: str) -> str:
        """Record a note; a repeated call shows up as a second entry."""
        calls.append({"note": note})
        return f"recorded {note!r} as #{len(calls)}"

    return Toolkit(name="counter", tools=[record])


@pytest.fixture(params=["sqlite", "postgresql"])
async def room_server(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[RoomServer]:
    """The shipped room server on either task store."""
    store = None
    if request.param == "postgresql":
        store = await fresh_database(request.getfixturevalue("postgres_server"))
    server = build_room_server(data_dir=tmp_path / "room", secret=SECRET, store=store)
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.stop()


async def test_a_runner_killed_after_turn_1_is_resumed_by_the_next_one(room_server):
    url = room_server.base_url
    calls: list[dict[str, Any]] = []
    async with ScriptedLLMServer() as llm:
        llm.script(
            tool_calls([("record", {"note": "turn 1"})]),
            hang(),  # turn 2 never answers: the runner is killed while it waits
            json_output({"result": "done"}),
        )
        args = [sys.executable, "-c", RUNNER, url, ROOM, token("llm-task-runner", "agent")]
        first = Process([*args, llm.base_url])
        second: Process | None = None
        try:
            async with (
                RoomClient(url, ROOM, token("counter", "tool"), reconnect=False) as host,
                RoomClient(url, ROOM, token("alice"), reconnect=False) as alice,
            ):
                await host.host_toolkit(counter_toolkit(calls))

                async def runner_joined() -> bool:
                    return bool(await alice.list_toolkits(name="llm-task-runner"))

                await until(runner_joined, "the first runner")
                started = await alice.tasks.start(
                    "llm-task-runner", {"prompt": "count once", "tools": ["counter"]}
                )
                task_id = started["task_ids"][0]

                async def turn_2_asked() -> bool:
                    return len(llm.requests) == 2

                await until(turn_2_asked, "the second model turn")
                assert len(calls) == 1
                first.kill()

                async def requeued() -> bool:
                    return (await alice.tasks.get(task_id))["status"] == "pending"

                await until(requeued, "the task to be re-queued")
                second = Process([*args, llm.base_url])
                waited = await alice.tasks.wait(task_id, timeout=30)
                [snapshot] = waited["tasks"]
                assert snapshot["status"] == "completed", snapshot
                assert snapshot["result"] == {"result": "done"}
                assert snapshot["attempts"] == 2
                # turn 1 answered on attempt 1, turn 2 on attempt 2 (the hung one is not)
                assert snapshot["usage"]["requests"] == 2
        finally:
            first.kill()
            if second is not None:
                second.stop()
    assert calls == [{"note": "turn 1"}], "the finished tool call ran again"
    bodies = [r.body for r in llm.requests]
    assert len(bodies) == 3
    first_turns = [b for b in bodies if not tool_outputs(b)]
    assert len(first_turns) == 1, "the model was asked its first turn again"
    assert bodies[2]["input"] == bodies[1]["input"], "the resumed attempt did not continue"
    assert "recorded 'turn 1' as #1" in tool_outputs(bodies[2])[0]["output"]


async def test_a_runner_killed_mid_turn_runs_only_the_unfinished_tool_again(full_room):
    """Turn 1 calls two tools: one finishes, the other is still running when the runner
    dies. The next attempt takes the finished one's output from the checkpoint, runs the
    other again, and asks the model for turn 2: turn 1 is asked once."""
    url = full_room.base_url
    calls: list[dict[str, Any]] = []
    blocked: list[str] = []

    @tool
    async def block() -> str:
        """Blocks on its first call (the runner dies meanwhile), answers on the next."""
        blocked.append("call")
        if len(blocked) == 1:
            await asyncio.Event().wait()
        return "unblocked"

    async with ScriptedLLMServer() as llm:
        llm.script(
            tool_calls([("record", {"note": "a"}), ("block", {})]),
            json_output({"result": "done"}),
        )
        args = [sys.executable, "-c", RUNNER, url, ROOM, token("llm-task-runner", "agent")]
        first = Process([*args, llm.base_url])
        second: Process | None = None
        try:
            async with (
                RoomClient(url, ROOM, token("counter", "tool"), reconnect=False) as host,
                RoomClient(url, ROOM, token("alice"), reconnect=False) as alice,
            ):
                await host.host_toolkit(counter_toolkit(calls))
                await host.host_toolkit(Toolkit(name="blocker", tools=[block]))

                async def runner_joined() -> bool:
                    return bool(await alice.list_toolkits(name="llm-task-runner"))

                await until(runner_joined, "the first runner")
                started = await alice.tasks.start(
                    "llm-task-runner",
                    {"prompt": "two tools", "tools": ["counter", "blocker"]},
                )
                task_id = started["task_ids"][0]
                store = full_room.rooms[ROOM].tasks.store

                async def record_kept() -> bool:
                    saved = await store.checkpoint(ROOM, task_id)
                    return bool(blocked and saved and saved["tool_results"])

                await until(record_kept, "the finished tool's output in the checkpoint")
                first.kill()

                async def requeued() -> bool:
                    return (await alice.tasks.get(task_id))["status"] == "pending"

                await until(requeued, "the task to be re-queued")
                second = Process([*args, llm.base_url])
                waited = await alice.tasks.wait(task_id, timeout=30)
                [snapshot] = waited["tasks"]
                assert snapshot["status"] == "completed", snapshot
        finally:
            first.kill()
            if second is not None:
                second.stop()
    assert calls == [{"note": "a"}], "the finished tool call ran again"
    assert blocked == ["call", "call"], "the interrupted tool call was not run again"
    bodies = [r.body for r in llm.requests]
    assert len(bodies) == 2, "the model was asked turn 1 again"
    outputs = [o["output"] for o in tool_outputs(bodies[1])]
    assert outputs == ["recorded 'a' as #1", "unblocked"]


# -- who may write and read a checkpoint ----------------------------------------------------


@pytest.fixture
async def running(full_room):
    """A task paused in its second model turn on an in-process checkpointing runner."""
    url = full_room.base_url
    calls: list[dict[str, Any]] = []
    async with ScriptedLLMServer() as llm:
        llm.script(tool_calls([("record", {"note": "secret plan"})]), hang())
        clients = [
            RoomClient(url, ROOM, token(name, role), reconnect=False)
            for name, role in (
                ("llm-task-runner", "agent"),
                ("counter", "tool"),
                ("alice", "user"),
                ("mallory", "agent"),
                ("olive", "observer"),
            )
        ]
        for client in clients:
            await client.connect()
        agent, host, alice, mallory, olive = clients
        adapter = OpenAIResponsesAdapter(base_url=llm.base_url, api_key="test", max_retries=0)
        runner = LLMTaskRunner(llm_adapter=adapter, supports_tools=True, checkpoints=True)
        await host.host_toolkit(counter_toolkit(calls))
        await runner.start(agent)
        started = await alice.tasks.start(
            "llm-task-runner", {"prompt": "plan", "tools": ["counter"]}
        )

        async def turn_2_asked() -> bool:
            return len(llm.requests) == 2

        await until(turn_2_asked, "the second model turn")
        try:
            yield started["task_ids"][0], agent, alice, mallory, olive
        finally:
            await alice.tasks.cancel(started["task_ids"][0])
            await runner.stop()
            for client in clients:
                await client.close()


async def test_only_the_serving_runner_reads_its_checkpoint(running):
    task_id, agent, alice, mallory, olive = running
    saved = (await agent.request("tasks.resume", {"task_id": task_id}))["checkpoint"]
    assert saved["turn"] == 1
    assert any("final answer must be JSON" in r for r in saved["instructions"])
    assert any("secret plan" in str(m) for m in saved["messages"])
    [output] = saved["tool_results"].values()
    assert "secret plan" in output

    for who in (alice, mallory):
        with pytest.raises(RoomError) as refused:
            await who.request("tasks.resume", {"task_id": task_id})
        assert refused.value.code == ErrorCode.NOT_FOUND
        assert "not running a task" in refused.value.message
    # a real id and a made-up one get the same answer: nothing is learnt by probing
    with pytest.raises(RoomError) as unknown:
        await mallory.request("tasks.resume", {"task_id": "t_made_up"})
    assert unknown.value.message == refused.value.message.replace(task_id, "t_made_up")
    with pytest.raises(RoomError) as denied:
        await olive.request("tasks.resume", {"task_id": task_id})
    assert denied.value.code == ErrorCode.PERMISSION_DENIED
    snapshot = await alice.tasks.get(task_id)
    # the caller sees progress events, never the runner's conversation
    assert "checkpoint" not in snapshot
    assert "final answer must be JSON" not in str(snapshot)


async def test_nobody_else_can_overwrite_a_checkpoint(running):
    task_id, agent, alice, mallory, _ = running
    forged = {"task_id": task_id, "turn": 9, "messages": [], "tool_results": {"x": "forged"}}
    for who in (alice, mallory):
        with pytest.raises(RoomError) as refused:
            await who.request("tasks.checkpoint", forged)
        assert refused.value.code == ErrorCode.NOT_FOUND
    saved = (await agent.request("tasks.resume", {"task_id": task_id}))["checkpoint"]
    assert saved["turn"] == 1 and "forged" not in str(saved)
    assert await agent.request("tasks.checkpoint", {**forged, "turn": 2}) == {
        "task_id": task_id,
        "turn": 2,
    }
    with pytest.raises(RoomError) as bad:
        await agent.request("tasks.checkpoint", {**forged, "turn": -1})
    assert bad.value.code == ErrorCode.INVALID_REQUEST
