"""The one message table: complete, enforced by the room, used by RoomClient, documented.

The doc check and the source scan keep the table, the server and docs/protocol.md from
drifting apart; the rest run against a real room server.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from taskroom.agents import TaskRunner
from taskroom.host.protocol import (
    MESSAGES,
    ErrorCode,
    Frame,
    RoomError,
    TaskroomError,
    decode_data,
    grant_for,
    model_for,
    request_types,
)
from taskroom.host.protocol.progress import (
    AgentMessage,
    LLMTurn,
    NestedProgress,
    ToolResult,
    ToolStarted,
    describe_event,
    parse_progress,
)
from taskroom.host.protocol.reference import render, splice
from taskroom.host.protocol.tasks import FINISHED, TaskStatus, task_tool_name
from taskroom.toolkits import Toolkit, tool

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "host" / "server"

PERSON = {"id": "p_1", "name": "alice", "role": "user", "attributes": {}, "online": True}
SPEC = {
    "name": "math",
    "title": None,
    "description": "",
    "public": True,
    "allowed_callers": [],
    "tools": [
        {
            "name": "add",
            "title": None,
            "description": "Add.",
            "input_schema": {"type": "object"},
            "output_schema": None,
            "annotations": {
                "title": None,
                "read_only": True,
                "destructive": False,
                "idempotent": False,
            },
        }
    ],
    "metadata": {},
}

EXAMPLES: dict[str, dict[str, Any]] = {
    "ping": {},
    "participants.list": {},
    "toolkits.register": SPEC,
    "toolkits.unregister": {"name": "math"},
    "toolkits.list": {"name": "math"},
    "tools.invoke": {"toolkit": "math", "tool": "add", "arguments": {"a": 1}, "timeout": 5.0},
    "tools.cancel": {"call_id": 7},
    "schemas.put": {"name": "person", "schema": {"type": "object"}},
    "schemas.get": {"name": "person"},
    "schemas.list": {},
    "schemas.remove": {"name": "person"},
    "room.call": {"service": "svc", "agent": "helper"},
    "room.dismiss": {"participant_id": "p_1"},
    "token.refresh": {},
    "services.list": {},
    "services.register": {"name": "svc", "url": "http://127.0.0.1:9000"},
    "services.remove": {"name": "svc"},
    "tasks.start": {"agent": "writer", "arguments": {"prompt": "hi"}, "read_only": True},
    "tasks.get": {"task_id": "t_1"},
    "tasks.result": {"task_id": "t_1"},
    "tasks.wait": {"batch_id": "b_1", "mode": "first", "timeout": 1.0},
    "tasks.cancel": {"task_id": "t_1"},
    "tasks.list": {"status": "completed", "limit": 10},
    "tasks.subscribe": {"all": True},
    "tasks.unsubscribe": {"task_id": "t_1"},
    "tasks.checkpoint": {
        "task_id": "t_1",
        "turn": 1,
        "instructions": ["Answer in JSON."],
        "messages": [{"type": "message", "role": "user", "content": "hi"}],
        "tool_results": {"call_1": "42"},
    },
    "tasks.resume": {"task_id": "t_1"},
    "room.ready": {
        "room": "r",
        "participant": PERSON,
        "participants": [PERSON],
        "toolkits": [{"participant_id": "p_1", "participant_name": "alice", "toolkit": SPEC}],
        "schemas": ["person"],
        "max_frame_bytes": 1024,
    },
    "participant.joined": PERSON,
    "participant.left": {**PERSON, "online": False},
    "toolkit.registered": {"participant_id": "p_1", "participant_name": "alice", "toolkit": SPEC},
    "toolkit.unregistered": {"name": "math", "participant_id": "p_1"},
    "schema.changed": {"name": "person", "action": "removed"},
    "task.updated": {
        "task_id": "t_1",
        "batch_id": None,
        "agent": "writer",
        "status": "completed",
        "error": None,
        "result": {"answer": 42},
    },
    "task.progress": {"task_id": "t_1", "batch_id": "b_1", "seq": 3, "data": {"kind": "x"}},
    "room.dismissed": {"reason": "dismissed by alice"},
    "tool.call": {
        "call_id": "c_1",
        "toolkit": "math",
        "tool": "add",
        "arguments": {"a": 1},
        "caller": PERSON,
        "on_behalf_of": PERSON,
        "task_id": "t_1",
        "read_only": True,
        "chain": ["c_0"],
        "timeout": 120.0,
    },
    "tool.cancel": {"call_id": "c_1", "reason": "deadline passed"},
    "tool.progress": {"call_id": 7, "data": {"kind": "llm.turn", "turn": 1}},
    "response": {"result": 3, "usage": {"total_tokens": 5}},
    "error": {"code": "not_found", "message": "no such toolkit", "details": {"toolkit": "x"}},
}


# --- the table itself -------------------------------------------------------------------


def test_every_type_has_an_example_that_round_trips():
    assert set(EXAMPLES) == set(MESSAGES), "add an example for each new frame type"
    for type_, data in EXAMPLES.items():
        model = decode_data(Frame(type=type_, data=data))
        assert isinstance(model, MESSAGES[type_].model)
        dumped = model.model_dump(mode="json", by_alias=True)
        assert json.loads(json.dumps(dumped)) == dumped, type_
        assert model_for(type_).model_validate(dumped) == model, type_
        for key, value in data.items():  # nothing sent is lost or changed
            assert dumped[key] == value, (type_, key)


def test_lookups():
    assert grant_for("tools.invoke") == "tools.call"
    assert grant_for("tasks.start") == "tasks.start"
    assert grant_for("room.dismiss") == "room.call"
    assert grant_for("tasks.get") is None and grant_for("nope") is None
    assert model_for("nope") is None
    assert "tasks.wait" in request_types() and "room.ready" not in request_types()
    assert all(MESSAGES[t].kind == "request" for t in request_types())
    assert {s.kind for s in MESSAGES.values()} == {"request", "event", "host", "answer"}


def test_decode_data_says_what_is_wrong():
    with pytest.raises(RoomError) as unknown:
        decode_data(Frame(type="tools.invok", data={}))
    assert unknown.value.code == ErrorCode.INVALID_REQUEST
    assert unknown.value.message == "unknown message type 'tools.invok'"
    assert "tools.invoke" in unknown.value.details["known"]
    with pytest.raises(RoomError) as bad:
        decode_data(Frame(type="tools.invoke", data={"toolkit": "math", "caller": {}}))
    assert bad.value.code == ErrorCode.INVALID_REQUEST
    assert bad.value.message.startswith("invalid 'tools.invoke' data: ")
    assert "tool: Field required" in bad.value.message
    assert "caller: Extra inputs are not permitted" in bad.value.message


def test_one_exception_tree():
    from taskroom.agents.adapter import InvalidOutputError, LLMError
    from taskroom.agents.llm_task_runner import OutputValidationError
    from taskroom.host.auth.tokens import TokenError
    from taskroom.host.auth.webhooks import WebhookError
    from taskroom.host.mcp.gateway import ToolError
    from taskroom.host.mcp.models import ModelConfigError, ModelError
    from taskroom.host.mcp.prompt import FileRefused

    for cls in (
        RoomError,
        TokenError,
        WebhookError,
        LLMError,
        InvalidOutputError,
        OutputValidationError,
        ToolError,
        ModelError,
        ModelConfigError,
        FileRefused,
    ):
        assert issubclass(cls, TaskroomError), cls


def test_task_status_and_tool_name():
    assert FINISHED == {"completed", "failed", "cancelled"}
    assert TaskStatus("running") == "running" and TaskStatus.RUNNING not in FINISHED
    assert task_tool_name("llm-task-runner") == "run_llm-task-runner_task"


# --- progress events ----------------------------------------------------------------------


def test_progress_events_parse_into_their_models():
    turn = parse_progress({"kind": "llm.turn", "turn": 2, "model": "m"})
    assert isinstance(turn, LLMTurn) and turn.turn == 2
    started = parse_progress(
        ToolStarted(toolkit="kv", tool="get", arguments={"k": 1}).model_dump(mode="json")
    )
    assert isinstance(started, ToolStarted) and started.arguments == {"k": 1}
    nested = parse_progress(
        NestedProgress(
            toolkit="inner", tool="run", event={"kind": "llm.turn", "turn": 1}
        ).model_dump(mode="json")
    )
    assert isinstance(nested, NestedProgress)
    assert describe_event(nested) == "inner › model turn 1 (default model)"
    failed = ToolResult(toolkit="kv", tool="get", ok=False, error="boom")
    assert describe_event(failed.model_dump(mode="json")) == "kv.get failed: boom"


def test_an_agents_own_events_are_kept():
    custom = parse_progress({"kind": "note", "message": "shouting", "level": 3})
    assert isinstance(custom, AgentMessage)
    assert custom.model_dump()["level"] == 3
    assert describe_event({"kind": "note", "message": "shouting"}) == "shouting"
    assert describe_event({"status": "half way"}) == "half way"
    assert describe_event({"kind": "phase.two"}) == "phase.two"
    # A built-in kind with the wrong fields is not a crash: it has no typed form.
    assert parse_progress({"kind": "llm.turn", "turn": "first"}) is None
    assert describe_event({"kind": "llm.turn", "turn": "first"}) == "llm.turn"
    assert parse_progress(["not", "an", "object"]) is None


def test_no_progress_kind_is_named_like_a_frame_type():
    from taskroom.host.protocol.progress import BUILT_IN

    assert not set(BUILT_IN) & set(MESSAGES)


# --- the server and the docs agree with the table ------------------------------------------

SENDERS = {"encode": 0, "broadcast": 0, "push": 0, "handle": 0, "notify": 1}
"""Functions that send or register a frame type, and the position of the type argument."""


def _is_method(node: ast.expr) -> bool:
    """``self._name``: how the server's handler tables name their handlers."""
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
        and node.attr.startswith("_")
    )


def _server_frame_types() -> set[str]:
    """Frame types the server sources send or handle: the first argument of an encode,
    broadcast, push or handler registration, the dotted keys of handler tables, and the
    types a frame's ``type`` is compared with."""
    found: set[str] = set()
    for path in SERVER.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node.args:
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                position = SENDERS.get(name)
                if position is not None and len(node.args) > position:
                    first = node.args[position]
                    if isinstance(first, ast.Constant) and isinstance(first.value, str):
                        found.add(first.value)
                    elif isinstance(first, ast.Name) and first.id in constants:
                        found.add(constants[first.id])
            if isinstance(node, ast.Tuple) and node.elts:  # ("tasks.get", self._get, False)
                head = node.elts[0]
                if (
                    isinstance(head, ast.Constant)
                    and isinstance(head.value, str)
                    and any(_is_method(e) for e in node.elts[1:])
                ):
                    found.add(head.value)
            if isinstance(node, ast.Dict):  # {"ping": self._ping, ...}
                for key, value in zip(node.keys, node.values, strict=True):
                    elements = value.elts if isinstance(value, ast.Tuple) else [value]
                    if any(_is_method(e) for e in elements) and isinstance(key, ast.Constant):
                        found.add(key.value)
            if isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute):
                if node.left.attr == "type":  # frame.type == "tool.progress"
                    for right in node.comparators:
                        if isinstance(right, ast.Constant) and isinstance(right.value, str):
                            found.add(right.value)
    return found


def test_every_frame_type_the_server_uses_is_in_the_table():
    used = _server_frame_types()
    # the scan must see the frames we know the server uses, else it proves nothing
    assert {"room.ready", "tool.call", "tool.cancel", "tasks.start", "room.dismissed"} <= used
    assert used <= set(MESSAGES), sorted(used - set(MESSAGES))


def test_every_table_entry_is_used_by_the_server():
    unused = set(MESSAGES) - _server_frame_types() - {"response", "error"}
    assert not unused, f"in the table but neither sent nor handled by the server: {unused}"


def test_docs_reference_is_current():
    doc = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert splice(doc, render()) == doc, (
        "docs/protocol.md is out of date: run python -m taskroom.host.protocol.reference"
    )


# --- the room enforces the table's grants --------------------------------------------------


@pytest.fixture
def room_name() -> str:
    return "protocol"


async def test_the_room_refuses_each_request_whose_grant_the_token_lacks(join):
    observer = await join("watcher", "observer")  # an observer's token has no grants
    granted = [t for t in request_types() if grant_for(t)]
    assert granted
    for type_ in granted:
        with pytest.raises(RoomError) as refused:
            await observer.request(type_, EXAMPLES[type_])
        assert refused.value.code == ErrorCode.PERMISSION_DENIED, type_
        assert grant_for(type_) in refused.value.message, type_


# --- RoomClient checks what the room sends -----------------------------------------------


async def test_a_malformed_frame_from_the_room_is_dropped_and_the_client_keeps_reading(
    room_server, connect, caplog
):
    caplog.set_level(logging.WARNING, logger="taskroom.host.client.room_client")
    alice = await connect("alice")
    joined: list[dict[str, Any]] = []
    alice.on("participant.joined", joined.append)
    room = room_server.rooms["protocol"]
    peer = room.participants[alice.participant.id]
    bad = [
        {"type": "participant.joined", "data": {"name": "no id"}},
        {"type": "participant.joined", "data": ["not", "an", "object"]},
        {"type": "tool.call", "id": "c_x", "data": {"toolkit": "math"}},
        {"type": "tool.cancel", "data": {}},
        {"type": "no.such.event", "data": {}},
    ]
    for frame in bad:
        peer.send(json.dumps(frame))
    bob = await connect("bob")
    assert await alice.request("ping") == {"pong": True}
    await asyncio.sleep(0.05)
    assert [p["name"] for p in joined] == ["bob"]
    assert bob.participant.id in alice.participants
    assert "ignoring an invalid 'participant.joined' frame" in caplog.text
    assert "ignoring an invalid 'tool.call' frame" in caplog.text
    assert "ignoring a 'no.such.event' frame" in caplog.text


async def test_a_request_the_room_never_answers_times_out(connect):
    host = await connect("host")
    release = asyncio.Event()

    @tool
    async def stall() -> str:
        """Never answers until released."""
        await release.wait()
        return "late"

    await host.host_toolkit(Toolkit(name="staller", tools=[stall]))
    alice = await connect("alice", request_timeout=0.3)
    with pytest.raises(RoomError) as late:
        await alice.request("tools.invoke", {"toolkit": "staller", "tool": "stall"})
    assert late.value.code == ErrorCode.TIMEOUT
    assert "no answer to tools.invoke within 0.3 s" in late.value.message
    release.set()
    assert await alice.request("ping") == {"pong": True}


class Sleeper(TaskRunner):
    async def ask(self, context: Any, arguments: dict[str, Any]) -> Any:
        await asyncio.sleep(arguments.get("seconds", 0.6))
        return {"slept": True}


async def test_tasks_wait_extends_the_request_timeout_by_its_own_wait(join):
    agent = await join("sleeper", "agent")
    await Sleeper(name="sleeper").start(agent)
    alice = await join("alice", request_timeout=0.2)
    started = await alice.tasks.start("sleeper", {"seconds": 0.6})
    waited = await alice.tasks.wait(started["task_ids"][0], timeout=5)
    assert waited["done"] and waited["tasks"][0]["status"] == "completed"
