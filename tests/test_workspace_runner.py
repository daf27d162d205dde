"""The workspace agent in a real room with the scripted LLM: it reads, greps, writes and
patches in ordinary tasks; read_only tasks get no changing tools and the room refuses them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from taskroom.agents.providers import ProviderTable, RoutedAdapter
from taskroom.agents.task_runner import TaskContext
from taskroom.agents.testing import ScriptedLLMServer, json_output, tool_calls
from taskroom.agents.workspace_runner import WORKSPACE_AGENT, WorkspaceTaskRunner
from taskroom.host.client.room_client import RoomClient
from taskroom.host.protocol import RoomError

from .conftest import ClientPool

PATCH = "\n".join(
    [
        "*** Begin Patch",
        "*** Update File: README.md",
        " # Demo",
        "-Say hello.",
        "+Say hello, patched.",
        "*** End Patch",
    ]
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "ws"
    folder.mkdir()
    (folder / "README.md").write_text("# Demo\nSay hello.\n")
    (folder / "code.py").write_text("VALUE = 42\n")
    return folder


@pytest.fixture
async def llm() -> AsyncIterator[ScriptedLLMServer]:
    async with ScriptedLLMServer(auto=False) as server:
        yield server


def adapter(llm: ScriptedLLMServer) -> RoutedAdapter:
    table = ProviderTable.load(environ={"OPENAI_BASE_URL": llm.base_url})
    return RoutedAdapter(table, model="scripted-model", max_retries=0, timeout=10.0)


def offered(llm: ScriptedLLMServer, index: int) -> set[str]:
    return {t["name"] for t in llm.requests[index].body["tools"]}


def tool_outputs(llm: ScriptedLLMServer, index: int) -> list[Any]:
    items = llm.requests[index].body["input"]
    return [i["output"] for i in items if i.get("type") == "function_call_output"]


async def test_reads_greps_writes_and_patches(join: ClientPool, folder: Path, llm) -> None:
    runner = WorkspaceTaskRunner(folder, llm_adapter=adapter(llm))
    await runner.start(await join("runner", "agent"))
    user = await join("alice")
    llm.script(
        tool_calls([("read", {"path": "README.md"}), ("grep", {"pattern": r"VALUE = \d+"})]),
        tool_calls(
            [
                ("write", {"path": "out/answer.txt", "content": "42\n"}),
                ("apply_patch", {"patch": PATCH}),
                ("todo_add", {"text": "report"}),
            ]
        ),
        json_output({"result": "done"}),
    )
    task = await user.tasks.run(WORKSPACE_AGENT, {"prompt": "Do the work."}, timeout=20)
    assert task["status"] == "completed", task
    assert (folder / "out" / "answer.txt").read_text() == "42\n"
    assert (folder / "README.md").read_text() == "# Demo\nSay hello, patched.\n"
    assert {"write", "apply_patch", "shell", "read", "grep", "todo_add"} <= offered(llm, 0)
    read, grep = (json.loads(o) for o in tool_outputs(llm, 1))
    assert read["content"] == "# Demo\nSay hello.\n"
    assert grep["matches"] == ["code.py:1:VALUE = 42"]
    system = llm.requests[0].body["instructions"]
    assert str(folder) in system and "README.md" in system and "change them" in system
    await runner.stop()


class ForcedWriter(WorkspaceTaskRunner):
    """Calls the workspace's write tool through the room whatever the task's mode."""

    async def ask(self, context: TaskContext, arguments: dict[str, Any]) -> Any:
        assert context.room is not None and context.room.participant is not None
        try:
            await context.room.invoke_tool(
                self.tools.name,
                "write",
                {"path": "forced.txt", "content": "x"},
                participant_id=context.room.participant.id,
                parent_call_id=context.tool_context.call_id,
            )
        except RoomError as exc:
            return {"result": f"{exc.code.value}: {exc.message}"}
        return {"result": "written"}


async def test_read_only_tasks_get_no_changing_tools_and_the_room_refuses_them(
    join: ClientPool, folder: Path, llm
) -> None:
    runner = WorkspaceTaskRunner(folder, llm_adapter=adapter(llm))
    await runner.start(await join("runner", "agent"))
    user = await join("alice")
    llm.script(json_output({"result": "looked"}))
    task = await user.tasks.run(
        WORKSPACE_AGENT, {"prompt": "Review README.md."}, read_only=True, timeout=20
    )
    assert task["status"] == "completed", task
    tools = offered(llm, 0)
    assert {"read", "grep", "glob", "list", "todo_add"} <= tools
    assert not tools & {"write", "edit", "apply_patch", "shell"}
    assert "READ ONLY mode" in llm.requests[0].body["instructions"]

    forced = ForcedWriter(folder, llm_adapter=adapter(llm), name="forced")
    await forced.start(await join("forced", "agent"))
    refused = await user.tasks.run("forced", {"prompt": "x"}, read_only=True, timeout=20)
    assert refused["result"]["result"] == (
        "permission_denied: forced.workspace.write is not read_only and this task is read_only"
    )
    assert not (folder / "forced.txt").exists()
    allowed = await user.tasks.run("forced", {"prompt": "x"}, timeout=20)
    assert allowed["result"] == {"result": "written"}
    await runner.stop()
    await forced.stop()


async def test_a_model_whose_provider_has_no_key_fails_the_task_clearly(
    join: ClientPool, folder: Path, llm
) -> None:
    runner = WorkspaceTaskRunner(folder, llm_adapter=adapter(llm))
    await runner.start(await join("runner", "agent"))
    user: RoomClient = await join("alice")
    task = await user.tasks.run(
        WORKSPACE_AGENT, {"prompt": "x", "model": "claude-opus-4-1"}, timeout=20
    )
    assert task["status"] == "failed"
    assert "set ANTHROPIC_API_KEY" in task["error"]["message"]
    await runner.stop()
