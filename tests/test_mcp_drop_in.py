"""The gateway as a drop-in for mcp-task users: no models config, only TASKROOM_MODEL set
(and the scripted LLM standing in for the provider), the official MCP client over stdio and
HTTP, a real room, and the workspace agent the gateway hosts."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from typing import Any

import mcp_types as types

from taskroom.agents import DynamicLLMTaskRunner, LLMTaskRunner, OpenAIResponsesAdapter
from taskroom.agents.testing import json_output, tool_calls
from taskroom.host.client.room_client import RoomClient
from taskroom.host.mcp.gateway import structured_result

from .test_mcp_gateway import (
    DEFAULT_MODEL,
    ROOM,
    TRANSPORTS,
    Stack,
    data,
    error_text,
    gateway,
    http_client,
    http_gateway,
    in_module_loop,
    stack,
    stdio_gateway,
)

__all__ = ["stack"]  # the module's shared room, agent and LLM server

PATCH = "\n".join(
    [
        "*** Begin Patch",
        "*** Update File: plan.md",
        " # Plan",
        "-- draft",
        "+- final",
        "*** End Patch",
    ]
)


async def _record(stack: Stack, task_id: str) -> dict[str, Any]:
    """The task as the room keeps it, read by the gateway's own identity."""
    async with RoomClient(stack.url, ROOM, stack.token(), reconnect=False) as client:
        return await client.tasks.get(task_id)


def offered(stack: Stack, index: int) -> set[str]:
    return {t["name"] for t in stack.llm.requests[index].body["tools"]}


def tool_outputs(stack: Stack, index: int) -> list[str]:
    items = stack.llm.requests[index].body["input"]
    return [i["output"] for i in items if i.get("type") == "function_call_output"]


@TRANSPORTS
@in_module_loop
async def test_model_classes_work_with_only_taskroom_model_set(
    stack: Stack, transport: str
) -> None:
    stack.llm.clear()
    stack.llm.script(*(json_output({"result": f"answer {n}"}) for n in range(4)))
    first = len(stack.llm.requests)
    async with gateway(stack, transport, models_config=False) as mcp:
        single = data(await mcp.call_tool("run_task", {"task": "Quick one.", "model": "mini"}))
        assert single["model"] == DEFAULT_MODEL and single["model_requested"] == "mini"
        assert "default model (TASKROOM_MODEL)" in single["model_reason"]
        done = data(await mcp.call_tool("wait_for_task", {"task_id": single["task_id"]}))
        assert done["status"] == "completed" and done["output"].startswith("answer")
        classes = ["standard", "mini", "reasoning"]
        batch = data(
            await mcp.call_tool(
                "run_task", {"task": "Compare.", "model": classes, "read_only": True}
            )
        )
        assert len(batch["task_ids"]) == 3  # one task per entry, though all are one model
        assert batch["models"] == [DEFAULT_MODEL] * 3
        assert [c["requested"] for c in batch["model_choices"]] == classes
        every = data(
            await mcp.call_tool(
                "wait_for_task", {"batch_id": batch["batch_id"], "return_all": True}
            )
        )
        assert {t["status"] for t in every["tasks"]} == {"completed"}
        for task_id, requested in zip(batch["task_ids"], classes, strict=True):
            status = data(await mcp.call_tool("check_task_status", {"task_id": task_id}))
            assert status["model"] == DEFAULT_MODEL and status["readOnly"]
            assert status["model_requested"] == requested  # its own entry, not the batch's
            assert status["model_reason"] == (
                f"class {requested!r}: no model set for it, so the default model (TASKROOM_MODEL)"
            )
            result = await mcp.call_tool("get_task_result", {"task_id": task_id})
            assert result.structured_content is not None
            assert result.structured_content["model_requested"] == requested
        listed = data(await mcp.call_tool("list_tasks", {"batch_id": batch["batch_id"]}))
        reasons = {t["id"]: t["model_reason"] for t in listed["tasks"]}
        assert [reasons[i].split("'")[1] for i in batch["task_ids"]] == classes
        record = await _record(stack, batch["task_ids"][1])
        assert record["model"] == DEFAULT_MODEL
        assert record["arguments"]["model_selection"][1] == {
            "requested": "mini",
            "model": DEFAULT_MODEL,
            "reason": status["model_reason"].replace("'reasoning'", "'mini'"),
        }
    assert [r.body["model"] for r in stack.llm.requests[first:]] == [DEFAULT_MODEL] * 4


@TRANSPORTS
@in_module_loop
async def test_the_workspace_agent_reads_greps_writes_and_patches(
    stack: Stack, transport: str
) -> None:
    await asyncio.to_thread((stack.workdir / "plan.md").write_text, "# Plan\n- draft\n")
    await asyncio.to_thread(shutil.rmtree, stack.workdir / "out", ignore_errors=True)
    stack.llm.clear()
    stack.llm.script(
        tool_calls([("read", {"path": "notes.txt"}), ("grep", {"pattern": "PEL[A-Z]+"})]),
        json_output({"result": "PELICAN"}),
    )
    first = len(stack.llm.requests)
    async with gateway(stack, transport, models_config=False) as mcp:
        looked = data(
            await mcp.call_tool("run_task", {"task": "Find the code word.", "read_only": True})
        )
        waited = data(await mcp.call_tool("wait_for_task", {"task_id": looked["task_id"]}))
        assert waited["output"] == "PELICAN"
        tools = offered(stack, first)
        assert {"read", "grep", "glob", "list", "todo_add"} <= tools
        assert not tools & {"write", "edit", "apply_patch", "shell"}
        read, grep = (json.loads(o) for o in tool_outputs(stack, first + 1))
        assert "PELICAN" in read["content"]
        assert grep["matches"] == ["notes.txt:1:The launch code word is PELICAN."]
        system = stack.llm.requests[first].body["instructions"]
        assert str(stack.workdir) in system and "READ ONLY mode" in system

        stack.llm.script(
            tool_calls(
                [
                    ("write", {"path": "out/answer.txt", "content": "PELICAN\n"}),
                    ("apply_patch", {"patch": PATCH}),
                ]
            ),
            json_output({"result": "changed"}),
        )
        first = len(stack.llm.requests)
        changed = data(await mcp.call_tool("run_task", {"task": "Write and patch."}))
        waited = data(await mcp.call_tool("wait_for_task", {"task_id": changed["task_id"]}))
        assert waited["output"] == "changed"
        assert {"write", "apply_patch", "shell"} <= offered(stack, first)
        outputs = [json.loads(o) for o in tool_outputs(stack, first + 1)]
        assert outputs[1]["files"] == [{"path": "plan.md", "action": "updated", "moved_from": None}]
    answer = await asyncio.to_thread((stack.workdir / "out" / "answer.txt").read_text)
    plan = await asyncio.to_thread((stack.workdir / "plan.md").read_text)
    assert answer == "PELICAN\n" and plan == "# Plan\n- final\n"


@in_module_loop
async def test_a_model_without_a_key_and_unknown_classes_are_clear_errors(stack: Stack) -> None:
    async with stdio_gateway(stack, models_config=False) as mcp:
        keyless = error_text(
            await mcp.call_tool("run_task", {"task": "x", "model": "claude-opus-4-1"})
        )
        assert "set ANTHROPIC_API_KEY" in keyless and "anthropic" in keyless
        unclaimed = error_text(await mcp.call_tool("run_task", {"task": "x", "model": "nope/m-1"}))
        assert "provider 'openrouter'" in unclaimed and "set OPENROUTER_API_KEY" in unclaimed
        assert "known: anthropic, gemini, llamacpp, lmstudio, ollama" in unclaimed
        unknown = error_text(await mcp.call_tool("run_task", {"task": "x", "model": "turbo"}))
        assert "unknown model class 'turbo'" in unknown
        assert f"reasoning={DEFAULT_MODEL}" in unknown and "vision_mini" in unknown
        listed = data(await mcp.call_tool("list_tasks", {"recent_only": True}))
        assert not any(t["task"] == "x" for t in listed["tasks"])  # nothing was started


@in_module_loop
async def test_workspace_and_no_shell_flags(stack: Stack) -> None:
    stack.llm.clear()
    stack.llm.script(json_output({"result": "seen"}))
    first = len(stack.llm.requests)
    elsewhere = stack.tmp / "elsewhere"
    await asyncio.to_thread(elsewhere.mkdir, exist_ok=True)
    flags = ["--workspace", str(stack.workdir), "--no-shell"]
    async with stdio_gateway(stack, models_config=False, extra=flags, cwd=elsewhere) as mcp:
        started = data(
            await mcp.call_tool("run_task", {"task": "Use the notes.", "files": ["notes.txt"]})
        )
        waited = data(await mcp.call_tool("wait_for_task", {"task_id": started["task_id"]}))
        assert waited["output"] == "seen"
    body = stack.llm.requests[first].body
    assert "PELICAN" in json.dumps(body["input"])  # 'files' are read from the workspace
    assert str(stack.workdir) in body["instructions"]
    tools = offered(stack, first)
    assert {"write", "apply_patch"} <= tools and "shell" not in tools


@in_module_loop
async def test_no_runner_hosts_none_and_run_task_says_what_is_there(stack: Stack) -> None:
    own = ["--no-runner", "--token", stack.token("gateway-without-runner")]
    async with stdio_gateway(stack, models_config=False, extra=own) as mcp:
        names = {t.name for t in (await mcp.list_tools()).tools}
        assert "agent_llm-task-runner" in names
        assert "agent_workspace-task-runner" not in names
        missing = error_text(await mcp.call_tool("run_task", {"task": "x"}))
        assert "'workspace-task-runner' is not in room" in missing
        assert "llm-task-runner" in missing


@in_module_loop
async def test_agent_tools_answer_objects_as_the_cli_prints_them(stack: Stack) -> None:
    adapter = OpenAIResponsesAdapter(base_url=stack.llm.base_url, api_key="k", max_retries=0)
    runner = DynamicLLMTaskRunner(llm_adapter=adapter)
    stack.llm.clear()
    stack.llm.script(json_output({"answer": 42, "unit": "m"}))
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer"}, "unit": {"type": "string"}},
        "required": ["answer", "unit"],
        "additionalProperties": False,
    }
    async with RoomClient(stack.url, ROOM, stack.token("dynamic", "agent")) as client:
        await runner.start(client)
        try:
            async with stdio_gateway(stack, models_config=False) as mcp:
                tool = "agent_dynamic-llm-task-runner"
                assert tool in {t.name for t in (await mcp.list_tools()).tools}
                answer = await mcp.call_tool(tool, {"prompt": "How far?", "output_schema": schema})
                assert data(answer) == {"answer": 42, "unit": "m"}  # not wrapped
                assert answer.meta is not None
                task_id = answer.meta["taskroom/task_id"]
                record = await mcp.call_tool("get_task_result", {"task_id": task_id})
                assert record.structured_content is not None
                assert record.structured_content["result"] == data(answer)  # as `invoke` prints
        finally:
            await runner.stop()
    assert structured_result("text") == {"result": "text"}
    assert structured_result([1, 2]) == {"result": [1, 2]}
    assert structured_result(None) == {"result": None}


@in_module_loop
async def test_http_clients_with_their_own_tokens_see_only_their_tasks(stack: Stack) -> None:
    stack.llm.clear()
    stack.llm.script(json_output({"result": "carol's"}), json_output({"result": "dave's"}))
    async with http_gateway(stack, models_config=False) as url:
        async with (
            http_client(url, stack.token("carol")) as carol,
            http_client(url, stack.token("dave")) as dave,
        ):
            mine = data(await carol.call_tool("run_task", {"task": "Carol's task."}))
            theirs = data(await dave.call_tool("run_task", {"task": "Dave's task."}))
            for session, started in ((carol, mine), (dave, theirs)):
                waited = data(
                    await session.call_tool("wait_for_task", {"task_id": started["task_id"]})
                )
                assert waited["status"] == "completed", waited
            listed = data(await carol.call_tool("list_tasks", {}))
            assert [t["id"] for t in listed["tasks"]] == [mine["task_id"]]
            hidden = error_text(
                await carol.call_tool("check_task_status", {"task_id": theirs["task_id"]})
            )
            assert f"no task {theirs['task_id']!r}" in hidden
            assert [t["id"] for t in data(await dave.call_tool("list_tasks", {}))["tasks"]] == [
                theirs["task_id"]
            ]
            async with RoomClient(stack.url, ROOM, stack.token("probe")) as probe:
                task = await probe.request(
                    "tasks.list", {"caller": "carol", "limit": 10}
                )  # a user sees only its own tasks, whatever it asks for
            assert task["tasks"] == []


class Notifications:
    def __init__(self) -> None:
        self.tools_changed = 0

    async def __call__(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.tools_changed += 1


async def _until(check: Any, what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


@TRANSPORTS
@in_module_loop
async def test_a_runner_joining_or_leaving_sends_tools_list_changed(
    stack: Stack, transport: str
) -> None:
    seen = Notifications()
    async with gateway(stack, transport, models_config=False, message_handler=seen) as mcp:
        names = {t.name for t in (await mcp.list_tools()).tools}
        assert "agent_workspace-task-runner" in names and "agent_late-joiner" not in names
        adapter = OpenAIResponsesAdapter(base_url=stack.llm.base_url, api_key="k")
        runner = LLMTaskRunner(llm_adapter=adapter, name="late-joiner")
        async with RoomClient(stack.url, ROOM, stack.token("late", "agent")) as client:
            await runner.start(client)
            await _until(lambda: seen.tools_changed >= 1, "no tools/list_changed on join")
            names = {t.name for t in (await mcp.list_tools()).tools}
            assert "agent_late-joiner" in names
            await runner.stop()
            await _until(lambda: seen.tools_changed >= 2, "no tools/list_changed on leave")
        assert "agent_late-joiner" not in {t.name for t in (await mcp.list_tools()).tools}
