"""The gateway's fixed tools: mcp-task's six names and input property names.

Keeping the names lets a user move from mcp-task by changing one line of client config;
the behaviour behind them is the room's (durable tasks, prompt cancel, pushed progress).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import mcp_types as types

from taskroom.host.mcp.defaults import DEFAULT_AGENT
from taskroom.host.mcp.models import BUILTIN_CLASSES
from taskroom.host.protocol.messages import ToolkitInstance
from taskroom.host.protocol.tasks import TaskStatus, task_tool_name

logger = logging.getLogger(__name__)

DEFAULT_WAIT_SECONDS = 300.0
MAX_WAIT_SECONDS = 600.0
"""mcp-task's cap: a longer wait is clamped to it, not refused."""
STATUSES = [s.value for s in TaskStatus]
AGENT_TOOL_PREFIX = "agent_"
_MAX_TOOL_NAME = 64  # the strictest common client limit (e.g. ^[a-zA-Z0-9_-]{1,64}$)

_ID = {"type": "string", "minLength": 1, "maxLength": 128}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    return schema


_MODEL_NAME = {"type": "string", "minLength": 1, "maxLength": 200}

RUN_TASK = types.Tool(
    name="run_task",
    title="Run a task",
    description=(
        "Start a task on an agent in the room and return its id at once; the task runs in "
        "the background and survives this connection. Give 'model' as a model class ("
        + ", ".join(BUILTIN_CLASSES)
        + ") or a concrete model name; an array of models starts one task per model as a "
        "batch, which must be read_only. 'files' are read by the gateway and included in "
        "the prompt. Follow up with wait_for_task, check_task_status and get_task_result."
    ),
    input_schema=_object(
        {
            "task": {"type": "string", "minLength": 1, "description": "What the agent should do."},
            "model": {
                "oneOf": [
                    _MODEL_NAME,
                    {"type": "array", "items": _MODEL_NAME, "minItems": 1, "maxItems": 16},
                ],
                "description": "Model class or model name, or an array of them for a batch. "
                "Default: standard.",
            },
            "context": {"type": "string", "description": "Background the agent needs."},
            "output": {"type": "string", "description": "The desired output or success state."},
            "files": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "maxItems": 64,
                "description": "Paths of text files to include in the prompt (relative to the "
                "gateway's working folder, inside its allowed folders).",
            },
            "read_only": {
                "type": "boolean",
                "default": False,
                "description": "Allow only read-only tools; required for a batch.",
            },
            "agent": {
                "type": "string",
                "minLength": 1,
                "maxLength": 128,
                "description": f"Agent (task runner) in the room. Default: {DEFAULT_AGENT}.",
            },
        },
        ["task"],
    ),
    annotations=types.ToolAnnotations(
        read_only_hint=False, destructive_hint=False, open_world_hint=True
    ),
)

CHECK_TASK_STATUS = types.Tool(
    name="check_task_status",
    title="Check a task's status",
    description="Status of a task with its latest progress; does not return the result.",
    input_schema=_object({"task_id": _ID}, ["task_id"]),
    annotations=types.ToolAnnotations(read_only_hint=True, idempotent_hint=True),
)

GET_TASK_RESULT = types.Tool(
    name="get_task_result",
    title="Get a task's result",
    description="Result (or error) of a finished task; an error while it is still running.",
    input_schema=_object({"task_id": _ID}, ["task_id"]),
    annotations=types.ToolAnnotations(read_only_hint=True, idempotent_hint=True),
)

CANCEL_TASK = types.Tool(
    name="cancel_task",
    title="Cancel a task or batch",
    description="Cancel a task (task_id) or every unfinished task of a batch (batch_id); "
    "a running model call is aborted at once.",
    input_schema=_object({"task_id": _ID, "batch_id": _ID}),
    annotations=types.ToolAnnotations(read_only_hint=False, destructive_hint=True),
)

WAIT_FOR_TASK = types.Tool(
    name="wait_for_task",
    title="Wait for a task or batch",
    description=(
        "Wait until a task (task_id) finishes, or for a batch (batch_id): by default until "
        "the next of its tasks finishes, with return_all until all have. Returns results. "
        "Sends progress notifications every second while waiting."
    ),
    input_schema=_object(
        {
            "task_id": _ID,
            "batch_id": _ID,
            "timeout_seconds": {
                "type": "number",
                "exclusiveMinimum": 0,
                "default": DEFAULT_WAIT_SECONDS,
                "description": f"Give up after this long (default {DEFAULT_WAIT_SECONDS:g}, "
                f"at most {MAX_WAIT_SECONDS:g}: longer waits are clamped); the task goes on.",
            },
            "return_all": {
                "type": "boolean",
                "default": False,
                "description": "For a batch: wait for all of its tasks.",
            },
        }
    ),
    annotations=types.ToolAnnotations(read_only_hint=True, idempotent_hint=True),
)

LIST_TASKS = types.Tool(
    name="list_tasks",
    title="List tasks",
    description="This gateway's tasks, newest first, with counts per status.",
    input_schema=_object(
        {
            "status_filter": {"type": "string", "enum": list(STATUSES)},
            "batch_id": _ID,
            "recent_only": {
                "type": "boolean",
                "default": False,
                "description": "Only tasks created in the last 2 hours.",
            },
        }
    ),
    annotations=types.ToolAnnotations(read_only_hint=True, idempotent_hint=True),
)

TASK_TOOLS: dict[str, types.Tool] = {
    t.name: t
    for t in (RUN_TASK, CHECK_TASK_STATUS, GET_TASK_RESULT, CANCEL_TASK, WAIT_FOR_TASK, LIST_TASKS)
}


def agent_tool_name(agent: str) -> str:
    """``agent_<name>`` with what strict clients refuse replaced by '_'."""
    return (AGENT_TOOL_PREFIX + re.sub(r"[^A-Za-z0-9_-]", "_", agent))[:_MAX_TOOL_NAME]


@dataclass(frozen=True)
class AgentTool:
    """A task runner in the room, offered as an MCP tool."""

    agent: str
    tool: types.Tool
    run_input: dict[str, Any]
    """The agent's own input schema: whether it takes a ``model_selection`` record."""


def agent_tools(instances: Iterable[ToolkitInstance]) -> dict[str, AgentTool]:
    """Every task runner among ``instances`` as an ``agent_<name>`` tool, named stably."""
    found: dict[str, AgentTool] = {}
    seen: set[str] = set()
    for instance in sorted(instances, key=lambda i: i.toolkit.name):
        spec = instance.toolkit
        if not spec.metadata.get("agent") or spec.name in seen:
            continue
        run_tool = spec.metadata.get("tool") or task_tool_name(spec.name)
        tool_spec = next((t for t in spec.tools if t.name == run_tool), None)
        if tool_spec is None or tool_spec.input_schema.get("type") != "object":
            logger.debug("agent %s has no object-input tool %s; not offered", spec.name, run_tool)
            continue
        seen.add(spec.name)
        name = base = agent_tool_name(spec.name)
        suffix = 2
        while name in found:
            name, suffix = f"{base[:60]}_{suffix}", suffix + 1
        output = tool_spec.output_schema
        found[name] = AgentTool(
            spec.name,
            run_input=tool_spec.input_schema,
            tool=types.Tool(
                name=name,
                title=spec.title or tool_spec.title or spec.name,
                description=(
                    f"{spec.description or tool_spec.description or spec.name} "
                    f"(agent {spec.name!r}; runs as a durable task in the room and returns "
                    "its result; progress notifications while it runs)"
                ),
                input_schema=tool_spec.input_schema,
                output_schema=output if (output or {}).get("type") == "object" else None,
                annotations=types.ToolAnnotations(open_world_hint=True),
            ),
        )
    return found
