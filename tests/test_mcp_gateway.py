"""The MCP gateway end to end: the official MCP client, `taskroom mcp` (stdio and streamable
HTTP), a room server process, an agent process and the scripted LLM server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
import pytest_asyncio
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from taskroom.agents.llm_task_runner import DEFAULT_OUTPUT_SCHEMA
from taskroom.agents.testing import ScriptedLLMServer, delay, hang, json_output
from taskroom.host.auth.tokens import create_token
from taskroom.host.client.room_client import RoomClient
from taskroom.host.mcp import FileAccess, FileRefused
from taskroom.host.mcp.prompt import build_prompt, task_summary

from .conftest import SECRET
from .processes import BIN, Process, free_port, start_agent, start_room, wait_http

in_module_loop = pytest.mark.asyncio(loop_scope="module")
"""The end-to-end tests share one room, agent and LLM server, so they share a loop."""

ROOM = "mcp"
AGENT_TOOL = "agent_llm-task-runner"
MCP_TASK_PROPERTIES = {
    "run_task": {"model", "task", "context", "output", "files", "read_only"},
    "check_task_status": {"task_id"},
    "get_task_result": {"task_id"},
    "cancel_task": {"task_id", "batch_id"},
    "wait_for_task": {"task_id", "batch_id", "timeout_seconds", "return_all"},
    "list_tasks": {"status_filter", "batch_id", "recent_only"},
}
"""mcp-task 0.1.22's tools and their input property names (shared/reference/mcp-task.md)."""


class Stack:
    """A room server process with an LLM task runner process, and what a gateway needs."""

    def __init__(self, tmp: Path, llm: ScriptedLLMServer) -> None:
        self.tmp = tmp
        self.llm = llm
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = tmp / "work"
        self.workdir.mkdir()
        (self.workdir / "notes.txt").write_text("The launch code word is PELICAN.\n")
        (tmp / "outside.txt").write_text("secret\n")
        self.models_config = tmp / "models.toml"
        self.models_config.write_text('[classes]\nmini = "gpt-5-mini"\nreasoning = "o3"\n')
        self.processes: list[Process] = []
        self.errlog = open(tmp / "gateway-stdio.log", "a")  # closed by the fixture

    def token(self, identity: str = "mcp-gateway", role: str = "user") -> str:
        return create_token(SECRET, room=ROOM, identity=identity, role=role)

    def gateway_args(self, url: str | None = None, *, models_config: bool = True) -> list[str]:
        args = ["mcp", "--room", ROOM, "--url", url or self.url, "--token", self.token()]
        return args + (["--models-config", str(self.models_config)] if models_config else [])

    @property
    def env(self) -> dict[str, str]:
        """Only the default model, and the scripted LLM standing in for OpenAI's endpoint."""
        return {"TASKROOM_MODEL": DEFAULT_MODEL, "OPENAI_BASE_URL": self.llm.base_url}


DEFAULT_MODEL = "scripted-default"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    tmp = tmp_path_factory.mktemp("mcp")
    async with ScriptedLLMServer(auto=True) as llm:
        s = Stack(tmp, llm)
        try:
            s.processes.append(start_room(s.port, tmp / "room", SECRET, log=tmp / "room.log"))
            s.processes.append(
                start_agent(
                    s.url,
                    ROOM,
                    s.token("llm-task-runner", "agent"),
                    llm.base_url,
                    log=tmp / "agent.log",
                )
            )
            async with RoomClient(s.url, ROOM, s.token("probe"), reconnect=False) as probe:
                deadline = time.monotonic() + 20
                while not await probe.list_toolkits(name="llm-task-runner"):
                    assert time.monotonic() < deadline, "the agent did not join the room"
                    await asyncio.sleep(0.1)
            yield s
        finally:
            for process in reversed(s.processes):
                process.stop()
            s.errlog.close()


@asynccontextmanager
async def stdio_gateway(
    stack: Stack,
    url: str | None = None,
    *,
    models_config: bool = True,
    message_handler: Any = None,
    extra: Sequence[str] = (),
    cwd: Path | None = None,
) -> AsyncIterator[ClientSession]:
    """`taskroom mcp` (with ``extra`` arguments) as a stdio subprocess, started in ``cwd``
    (default: the workspace); the SDK's client stops it on exit."""
    params = StdioServerParameters(
        command=str(BIN / "taskroom"),
        args=[*stack.gateway_args(url, models_config=models_config), *extra],
        env=stack.env,
        cwd=str(cwd or stack.workdir),
    )
    async with stdio_client(params, errlog=stack.errlog) as (read, write):
        async with ClientSession(read, write, message_handler=message_handler) as session:
            await session.initialize()
            yield session


@asynccontextmanager
async def http_gateway(
    stack: Stack, log: str = "gateway-identity", *, models_config: bool = True
) -> AsyncIterator[str]:
    """`taskroom mcp --http` over the test workspace; yields its MCP URL."""
    port = free_port()
    gateway = Process(
        [str(BIN / "taskroom"), *stack.gateway_args(models_config=models_config), "--http"]
        + ["--port", str(port), "--workspace", str(stack.workdir)],
        env=stack.env,
        log=stack.tmp / f"{log}.log",
    )
    try:
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        gateway.stop()


@asynccontextmanager
async def http_client(
    url: str, token: str | None = None, message_handler: Any = None
) -> AsyncIterator[ClientSession]:
    """An MCP client over streamable HTTP; with ``token``, under that identity in the room."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with create_mcp_http_client(headers=headers) as client:
        async with streamable_http_client(url, http_client=client) as (read, write):
            async with ClientSession(read, write, message_handler=message_handler) as session:
                await session.initialize()
                yield session


@asynccontextmanager
async def gateway(
    stack: Stack, transport: str, *, models_config: bool = True, message_handler: Any = None
) -> AsyncIterator[ClientSession]:
    """The gateway as a stdio child or an HTTP server, and an official client of it."""
    if transport == "stdio":
        async with stdio_gateway(
            stack, models_config=models_config, message_handler=message_handler
        ) as session:
            yield session
        return
    async with http_gateway(stack, log=f"gateway-{transport}", models_config=models_config) as url:
        async with http_client(url, message_handler=message_handler) as session:
            yield session


TRANSPORTS = pytest.mark.parametrize("transport", ["stdio", "http"])


def data(result: types.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    assert result.structured_content == json.loads(result.content[0].text)
    return result.structured_content


def error_text(result: types.CallToolResult) -> str:
    assert result.is_error, f"expected a tool error, got {result.structured_content}"
    return result.content[0].text


class Progress:
    """Collects the progress notifications of one call."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, str | None]] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.seen.append((progress, message))


@in_module_loop
async def test_tools_keep_mcp_task_names_and_offer_each_agent(stack: Stack) -> None:
    async with stdio_gateway(stack) as mcp:
        tools = {t.name: t for t in (await mcp.list_tools()).tools}
    for name, properties in MCP_TASK_PROPERTIES.items():
        offered = set(tools[name].input_schema["properties"])
        assert properties <= offered, f"{name} lacks {properties - offered}"
        assert offered - properties <= {"agent"}, f"{name} adds {offered - properties}"
    assert tools["run_task"].input_schema["required"] == ["task"]
    agent = tools[AGENT_TOOL]
    assert agent.input_schema["required"] == ["prompt"]
    assert agent.output_schema == DEFAULT_OUTPUT_SCHEMA


@in_module_loop
async def test_run_check_wait_with_progress_then_result(stack: Stack) -> None:
    stack.llm.clear()
    stack.llm.script(delay(2.5, json_output({"result": "PELICAN it is"})))
    first = len(stack.llm.requests)
    async with stdio_gateway(stack) as mcp:
        started = data(
            await mcp.call_tool(
                "run_task",
                {
                    "task": "Say the code word.",
                    "context": "You are helping with a launch.",
                    "files": ["notes.txt"],
                    "output": "One sentence.",
                    "model": "mini",
                },
            )
        )
        task_id = started["task_id"]
        assert task_id.startswith("t_") and len(task_id) >= 24
        assert started["model"] == "gpt-5-mini"
        status = data(await mcp.call_tool("check_task_status", {"task_id": task_id}))
        assert status["status"] in ("pending", "running")
        assert status["task"] == "Say the code word."
        assert "result" not in status
        progress = Progress()
        waited = data(
            await mcp.call_tool(
                "wait_for_task",
                {"task_id": task_id, "timeout_seconds": 30},
                progress_callback=progress,
            )
        )
        assert waited["status"] == "completed" and "timeout" not in waited
        assert waited["output"] == "PELICAN it is"
        assert waited["result"] == {"result": "PELICAN it is"}
        assert len(progress.seen) >= 2, progress.seen
        values = [p for p, _ in progress.seen]
        assert values == sorted(values) and len(set(values)) == len(values)
        assert all(m and m.startswith(("running", "completed")) for _, m in progress.seen)
        assert progress.seen[0][1].startswith("running"), progress.seen
        answer = await mcp.call_tool("get_task_result", {"task_id": task_id})
        assert answer.content[0].text == "PELICAN it is"  # mcp-task's plain text
        assert answer.structured_content["status"] == "completed"
        assert answer.structured_content["result"] == {"result": "PELICAN it is"}
    sent = json.dumps(stack.llm.requests[first].body)
    for part in ("## Context", "PELICAN", "## Task", "Say the code word.", "## Desired output"):
        assert part in sent
    assert stack.llm.requests[first].body["model"] == "gpt-5-mini"


@in_module_loop
async def test_batch_over_three_models_then_list_by_batch(stack: Stack) -> None:
    stack.llm.clear()
    # Slow enough that the first wait sees the batch still running.
    stack.llm.script(*(delay(0.5, json_output({"result": "ok"})) for _ in range(3)))
    async with stdio_gateway(stack) as mcp:
        started = data(
            await mcp.call_tool(
                "run_task",
                {
                    "task": "Review this plan.",
                    "model": ["mini", "reasoning", "code"],
                    "read_only": True,
                },
            )
        )
        batch_id, task_ids = started["batch_id"], started["task_ids"]
        assert batch_id.startswith("b_") and len(task_ids) == 3
        assert sorted(started["models"]) == ["gpt-5-mini", "o3", DEFAULT_MODEL]
        first = data(await mcp.call_tool("wait_for_task", {"batch_id": batch_id}))
        assert first["newly_completed"] and first["task_id"] in task_ids
        waited = data(
            await mcp.call_tool("wait_for_task", {"batch_id": batch_id, "return_all": True})
        )
        assert waited["all_complete"] and waited["completed_tasks"] == 3
        assert {t["status"] for t in waited["tasks"]} == {"completed"}
        data(await mcp.call_tool("run_task", {"task": "Not in the batch."}))
        listed = data(await mcp.call_tool("list_tasks", {"batch_id": batch_id}))
        assert {t["id"] for t in listed["tasks"]} == set(task_ids)
        assert listed["stats"]["total"] == 3 and listed["stats"]["completed"] == 3
        assert all(t["readOnly"] and t["task"] == "Review this plan." for t in listed["tasks"])
        recent = data(await mcp.call_tool("list_tasks", {"recent_only": True}))
        assert recent["stats"]["total"] >= 4


@in_module_loop
async def test_cancel_ends_a_hanging_task_at_once(stack: Stack) -> None:
    stack.llm.clear()
    stack.llm.script(hang())
    first = len(stack.llm.requests)
    async with stdio_gateway(stack) as mcp:
        task_id = data(await mcp.call_tool("run_task", {"task": "Take forever."}))["task_id"]
        deadline = time.monotonic() + 10
        while len(stack.llm.requests) <= first:
            assert time.monotonic() < deadline, "the agent never called the LLM"
            await asyncio.sleep(0.05)
        early = error_text(await mcp.call_tool("get_task_result", {"task_id": task_id}))
        assert "is not complete. Status: running" in early and "wait_for_task" in early
        cancelled = data(await mcp.call_tool("cancel_task", {"task_id": task_id}))
        assert cancelled["cancelled"] and cancelled["status"] == "cancelled"
        status = data(await mcp.call_tool("check_task_status", {"task_id": task_id}))
        assert status["status"] == "cancelled"
        again = data(await mcp.call_tool("cancel_task", {"task_id": task_id}))
        assert again["cancelled"] is False and again["status"] == "cancelled"
        stack.llm.script(hang())
        with pytest.raises(MCPError, match="timed out"):  # the client gives up on an agent call
            await mcp.call_tool(AGENT_TOOL, {"prompt": "Hang."}, read_timeout_seconds=1.0)
        deadline = time.monotonic() + 5
        while True:
            newest = data(await mcp.call_tool("list_tasks", {}))["tasks"][0]
            if newest["status"] == "cancelled":
                break
            assert time.monotonic() < deadline, f"the abandoned agent call's task is {newest}"
            await asyncio.sleep(0.1)
    deadline = time.monotonic() + 5
    while any(r.finished_at is None for r in stack.llm.requests[first:]):
        assert time.monotonic() < deadline, "a hanging LLM request was not aborted"
        await asyncio.sleep(0.05)


@in_module_loop
async def test_bad_input_answers_clear_tool_errors(stack: Stack) -> None:
    async with stdio_gateway(stack) as mcp:

        async def fails(tool: str, arguments: dict[str, Any]) -> str:
            return error_text(await mcp.call_tool(tool, arguments))

        async def task_ids() -> set[str]:
            listed = data(await mcp.call_tool("list_tasks", {}))
            return {t["id"] for t in listed["tasks"]}

        # earlier tests of this module share the room: only new tasks count
        before = await task_ids()
        missing = await fails("check_task_status", {"task_id": "t_missing"})
        assert "no task 't_missing'" in missing
        assert "no task" in await fails("get_task_result", {"task_id": "t_missing"})
        unknown = await fails("run_task", {"task": "x", "model": "turbo"})
        assert "unknown model class 'turbo'" in unknown
        assert "mini=gpt-5-mini" in unknown and f"code={DEFAULT_MODEL}" in unknown
        write_batch = await fails("run_task", {"task": "x", "model": ["mini", "reasoning"]})
        assert "read_only" in write_batch
        stringified = await fails("run_task", {"task": "x", "model": '["mini", "o3"]'})
        assert "read_only" in stringified
        for path in ("../outside.txt", "/etc/hostname"):
            outside = await fails("run_task", {"task": "x", "files": [path]})
            assert "outside the folders" in outside and "--allow-root" in outside
        assert "does not exist" in await fails("run_task", {"task": "x", "files": ["nope.txt"]})
        assert "no task" in await fails("wait_for_task", {"task_id": "t_missing"})
        assert "No tasks found with batch_id" in await fails(
            "wait_for_task", {"batch_id": "b_missing"}
        )
        assert "exactly one" in await fails("cancel_task", {})
        nobody = await fails("run_task", {"task": "x", "agent": "nobody"})
        assert "'nobody' is not in room" in nobody and "llm-task-runner" in nobody
        assert "'task' is a required property" in await fails("run_task", {"model": "mini"})
        assert "no tool 'agent_nobody'" in await fails("agent_nobody", {})
        assert await task_ids() == before  # no refused input started a task


@in_module_loop
async def test_streamable_http_runs_agent_tools_and_waits_with_progress(stack: Stack) -> None:
    stack.llm.clear()
    port = free_port()
    gateway = Process(
        [str(BIN / "taskroom"), *stack.gateway_args(), "--http", "--port", str(port)],
        env=stack.env,
        log=stack.tmp / "gateway-http.log",
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        async with streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write):
            async with ClientSession(read, write) as mcp:
                await mcp.discover()  # the 2026-07-28 era here; stdio tests use the handshake
                assert AGENT_TOOL in {t.name for t in (await mcp.list_tools()).tools}
                stack.llm.script(delay(1.5, json_output({"result": "direct answer"})))
                progress = Progress()
                direct = await mcp.call_tool(
                    AGENT_TOOL,
                    {"prompt": "Answer directly.", "model": "reasoning"},
                    progress_callback=progress,
                )
                assert data(direct) == {"result": "direct answer"}
                assert direct.meta and direct.meta["taskroom/task_id"].startswith("t_")
                assert progress.seen and stack.llm.requests[-1].body["model"] == "o3"
                stack.llm.script(delay(2.2, json_output({"result": "over http"})))
                task_id = data(await mcp.call_tool("run_task", {"task": "Go."}))["task_id"]
                progress = Progress()
                waited = data(
                    await mcp.call_tool(
                        "wait_for_task", {"task_id": task_id}, progress_callback=progress
                    )
                )
                assert waited["result"] == {"result": "over http"}
                assert len(progress.seen) >= 2
    finally:
        gateway.stop()


@in_module_loop
async def test_room_unreachable_at_start_exits_non_zero(stack: Stack) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "taskroom"),
        *stack.gateway_args(dead),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode != 0
    assert out == b""
    assert b"cannot join room 'mcp'" in err and b"cannot reach room" in err


@in_module_loop
async def test_room_lost_mid_session_answers_an_error_then_recovers(stack: Stack) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data_dir = stack.tmp / "lost-room"
    room = start_room(port, data_dir, SECRET, log=stack.tmp / "lost-room.log")
    try:
        async with stdio_gateway(stack, url) as mcp:
            assert data(await mcp.call_tool("list_tasks", {}))["stats"]["total"] == 0
            room.kill()
            lost = error_text(await mcp.call_tool("list_tasks", {}))  # an answer, not a hang
            assert "room 'mcp'" in lost and "try again" in lost
            room = start_room(port, data_dir, SECRET, log=stack.tmp / "lost-room.log")
            deadline = time.monotonic() + 20
            while (result := await mcp.call_tool("list_tasks", {})).is_error:
                assert time.monotonic() < deadline, result.content[0].text
                await asyncio.sleep(0.5)
    finally:
        room.stop()


def test_files_stay_under_roots_and_fences_hold(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "code.md").write_text("```python\nx = 1\n```\n")
    (root / "link.txt").symlink_to(tmp_path / "elsewhere.txt")
    (tmp_path / "elsewhere.txt").write_text("private")
    (root / "big.txt").write_text("x" * 101)
    files = FileAccess([], base=root, max_file_bytes=100)
    with pytest.raises(FileRefused, match="outside the folders"):
        files.read(["link.txt"])
    with pytest.raises(FileRefused, match="over the cap of 100 bytes"):
        files.read(["big.txt"])
    prompt = build_prompt("Explain it.", files=files.read(["code.md"]), output="Short.")
    assert "### code.md\n\n````\n```python" in prompt and prompt.endswith("Short.")
    assert task_summary(prompt) == "Explain it."
    assert build_prompt("  Just this. ") == "Just this."


MCP_TASK_ANSWERS = json.loads(
    (Path(__file__).parent / "fixtures" / "mcp_task_answers.json").read_text()
)
_JSON_TYPES = {
    "string": str,
    "number": (int, float),
    "boolean": bool,
    "array": list,
    "object": dict,
    "null": type(None),
}


def assert_shape(answer: dict[str, Any], tool: str, case: str) -> None:
    """Every field of mcp-task's answer is in ours, with its name and JSON type."""
    for name, kinds in MCP_TASK_ANSWERS[tool][case].items():
        assert name in answer, f"{tool} ({case}) lacks mcp-task's field {name!r}: {answer}"
        value = answer[name]
        if kinds == "true":
            assert value is True, f"{tool} ({case}): {name} is {value!r}, not true"
            continue
        types_ = tuple(_JSON_TYPES[k] for k in kinds.split("|"))
        ok = isinstance(value, types_) and not (isinstance(value, bool) and bool not in types_)
        assert ok, f"{tool} ({case}): {name}={value!r} is not {kinds}"


def text_answer(result: types.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    return {"text": result.content[0].text}


@TRANSPORTS
@in_module_loop
async def test_every_answer_carries_mcp_task_fields(stack: Stack, transport: str) -> None:
    stack.llm.clear()
    stack.llm.script(delay(1.5, json_output({"result": "shaped"})))
    async with gateway(stack, transport) as mcp:

        async def call(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
            return data(await mcp.call_tool(tool, arguments))

        started = await call("run_task", {"task": "Shape the answer."})
        assert_shape(started, "run_task", "single")
        task_id = started["task_id"]
        deadline = time.monotonic() + 10
        while (running := await call("check_task_status", {"task_id": task_id}))[
            "status"
        ] != "running":
            assert time.monotonic() < deadline, running
            await asyncio.sleep(0.05)
        assert_shape(running, "check_task_status", "running")
        assert running["check_after"].startswith("Please wait 5 seconds")
        waited = await call("wait_for_task", {"task_id": task_id, "timeout_seconds": 3600})
        assert_shape(waited, "wait_for_task", "task")  # 3600 s is clamped, not refused
        assert waited["output"] == "shaped"
        done = await call("check_task_status", {"task_id": task_id})
        assert_shape(done, "check_task_status", "completed")
        assert "check_after" not in done and done["output"] == "shaped"
        result = await mcp.call_tool("get_task_result", {"task_id": task_id})
        assert_shape(text_answer(result), "get_task_result", "completed")
        assert result.content[0].text == "shaped"

        stack.llm.script(hang())
        hanging = (await call("run_task", {"task": "Hang on."}))["task_id"]
        timed_out = await call("wait_for_task", {"task_id": hanging, "timeout_seconds": 0.3})
        assert_shape(timed_out, "wait_for_task", "task_timeout")
        cancelled = await call("cancel_task", {"task_id": hanging})
        assert cancelled["message"] == f"Task {hanging} cancelled successfully"
        assert_shape({"text": cancelled["message"]}, "cancel_task", "task")

        stack.llm.clear()
        stack.llm.script(delay(1.0, json_output({"result": "fast"})), hang(), hang())
        batch = await call(
            "run_task", {"task": "Race.", "model": ["standard", "mini", "code"], "read_only": True}
        )
        assert_shape(batch, "run_task", "batch")
        batch_id = batch["batch_id"]
        first = await call("wait_for_task", {"batch_id": batch_id, "timeout_seconds": 10})
        assert_shape(first, "wait_for_task", "batch_next")
        assert first["previously_completed"] == 0 and first["remaining_tasks"] == 2
        late = await call("wait_for_task", {"batch_id": batch_id, "timeout_seconds": 0.3})
        assert_shape(late, "wait_for_task", "batch_timeout")
        assert late["completed_tasks"] == 1 and late["total_tasks"] == 3
        stopped = await call("cancel_task", {"batch_id": batch_id})
        assert_shape(stopped, "cancel_task", "batch")
        assert stopped["cancelled"] == 2 and stopped["already_complete"] == 1
        every = await call("wait_for_task", {"batch_id": batch_id, "return_all": True})
        assert_shape(every, "wait_for_task", "batch_all")
        for task in every["tasks"]:
            assert_shape(task, "wait_for_task", "batch_all_task")

        listed = await call("list_tasks", {"batch_id": batch_id})
        assert_shape(listed, "list_tasks", "answer")
        assert_shape(listed["stats"], "list_tasks", "stats")
        assert_shape(listed["filters_applied"], "list_tasks", "filters_applied")
        for task in listed["tasks"]:
            assert_shape(task, "list_tasks", "task")
