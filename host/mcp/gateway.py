"""McpGateway: the room's durable tasks and task runners as MCP tools.

The gateway is one participant of a room. It offers mcp-task's six task tools (so a user
can switch by changing one line of client config) plus one tool per task runner in the
room, and turns every failure into an MCP tool error (``isError``) with a message a model
can act on, never a crash or a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server, ServerRequestContext
from starlette.requests import Request
from starlette.responses import JSONResponse

from taskroom.host.client.room_client import RoomClient
from taskroom.host.mcp.models import ModelCatalog, ModelError
from taskroom.host.mcp.prompt import FileAccess, FileRefused, build_prompt, task_summary
from taskroom.host.mcp.tools import (
    DEFAULT_AGENT,
    DEFAULT_WAIT_SECONDS,
    STATUSES,
    TASK_TOOLS,
    agent_tool_name,
)
from taskroom.host.mcp.waiting import TaskWatch, watch_tasks
from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.protocol.errors import TaskroomError
from taskroom.host.protocol.progress import describe_event
from taskroom.host.protocol.tasks import FINISHED, task_tool_name
from taskroom.toolkits.toolkit import schema_validator, validation_error

logger = logging.getLogger(__name__)

SERVER_NAME = "taskroom"
INSTRUCTIONS = (
    "Tasks run on agents in a taskroom room and outlive this connection. Start one with "
    "run_task (or an agent_* tool, which waits for the result), then wait_for_task, "
    "check_task_status, get_task_result, cancel_task and list_tasks."
)
TASK_ID_META = "taskroom/task_id"
RECENT_SECONDS = 2 * 3600.0
LIST_LIMIT = 100
RECENT_EVENTS = 5
CANCEL_SETTLE_SECONDS = 5.0
AGENT_CALL_WAIT_SECONDS = 86_400.0
"""An agent_* call waits until its task ends; the room's deadline bounds that."""

Snapshot = dict[str, Any]
Fetch = Callable[[], Awaitable[list[Snapshot]]]
Handler = Callable[[ServerRequestContext[Any], dict[str, Any]], Awaitable[dict[str, Any]]]


class ToolError(TaskroomError):
    """A tool call that cannot succeed; it is answered as ``isError`` with this message."""


@dataclass(frozen=True)
class AgentTool:
    """A task runner in the room, offered as an MCP tool."""

    agent: str
    tool: types.Tool


def _version() -> str:
    try:
        return version("taskroom")
    except PackageNotFoundError:
        return "0"


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None


def _ok(data: dict[str, Any], meta: dict[str, Any] | None = None) -> types.CallToolResult:
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    return types.CallToolResult(
        content=[types.TextContent(text=text)], structured_content=data, _meta=meta
    )


def _error(message: str, meta: dict[str, Any] | None = None) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(text=message)], is_error=True, _meta=meta
    )


def _model_list(value: Any) -> list[str] | None:
    """``model`` as a list; a string holding a JSON array is parsed (some clients send that)."""
    if value is None:
        return None
    if isinstance(value, list):
        return value
    text = value.strip()
    if not text.startswith("["):
        return [text]
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise ToolError(f"'model' looks like a JSON array but does not parse: {exc}") from None
    if not parsed or not all(isinstance(m, str) and m.strip() for m in parsed):
        raise ToolError("'model' as an array must hold one or more model names")
    return parsed


def _finished(task: Snapshot) -> bool:
    return task["status"] in FINISHED


def _summary(task: Snapshot) -> str | None:
    """What the task was about: its prompt's task part, for tasks started with a prompt."""
    prompt = (task.get("arguments") or {}).get("prompt")
    return task_summary(prompt) if isinstance(prompt, str) and prompt else None


def _outcome(task: Snapshot) -> dict[str, Any]:
    """The part of a snapshot a waiter needs: how it ended and with what."""
    data: dict[str, Any] = {
        "task_id": task["id"],
        "model": task.get("model"),
        "status": task["status"],
    }
    if task["status"] == "completed":
        data["result"] = task.get("result")
    elif task.get("error"):
        data["error"] = task["error"]
    if task.get("finished_at"):
        data["completed_at"] = _iso(task["finished_at"])
    return data


class McpGateway:
    """Serves MCP for one room connection; build with a joined RoomClient."""

    def __init__(
        self,
        room: RoomClient,
        *,
        models: ModelCatalog | None = None,
        files: FileAccess | None = None,
        default_agent: str = DEFAULT_AGENT,
        reconnect_grace: float = 2.0,
        progress_interval: float = 1.0,
    ) -> None:
        self.room = room
        self.models = models or ModelCatalog()
        self.files = files or FileAccess([])
        self.default_agent = default_agent
        self.reconnect_grace = reconnect_grace
        self.progress_interval = progress_interval
        self.agent_tools: dict[str, AgentTool] = {}
        self._validators = {
            name: schema_validator(t.input_schema) for name, t in TASK_TOOLS.items()
        }
        self._handlers: dict[str, Handler] = {
            "run_task": self._run_task,
            "check_task_status": self._check_task_status,
            "get_task_result": self._get_task_result,
            "cancel_task": self._cancel_task,
            "wait_for_task": self._wait_for_task,
            "list_tasks": self._list_tasks,
        }
        self.server: Server[Any] = Server(
            SERVER_NAME,
            version=_version(),
            title="taskroom MCP gateway",
            instructions=INSTRUCTIONS,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )

    # --- MCP handlers -------------------------------------------------------------------

    async def _list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        try:
            await self._ensure_connected()
            await self.refresh_agents()
        except (RoomError, ToolError) as exc:
            logger.warning("listing the room's agents failed, offering the last known: %s", exc)
        tools = [*TASK_TOOLS.values(), *(a.tool for a in self.agent_tools.values())]
        return types.ListToolsResult(tools=tools)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        name, arguments = params.name, params.arguments or {}
        try:
            await self._ensure_connected()
            if name in TASK_TOOLS:
                problem = validation_error(arguments, self._validators[name])
                if problem:
                    raise ToolError(f"invalid arguments for {name}: {problem}")
                return _ok(await self._handlers[name](ctx, arguments))
            if name not in self.agent_tools:
                await self.refresh_agents()
            agent = self.agent_tools.get(name)
            if agent is None:
                known = ", ".join([*TASK_TOOLS, *self.agent_tools])
                raise ToolError(f"no tool {name!r}; this gateway offers: {known}")
            return await self._run_agent(ctx, agent, arguments)
        except (ToolError, ModelError, FileRefused) as exc:
            return _error(str(exc))
        except RoomError as exc:
            return _error(self._room_message(exc))
        except Exception as exc:
            logger.exception("tool %s failed", name)
            return _error(f"internal error in the MCP gateway: {type(exc).__name__}: {exc}")

    async def healthz(self, request: Request) -> JSONResponse:
        """HTTP health: 200 while the room connection is up, 503 while it is being restored."""
        up = self.room.connected.is_set()
        body = {"room": self.room.room_name, "connected": up}
        return JSONResponse(body, status_code=200 if up else 503)

    # --- room access ----------------------------------------------------------------------

    async def _ensure_connected(self) -> None:
        """Fail fast while the room is away, instead of holding the call for the reconnect."""
        if self.room.closed:
            raise ToolError(
                f"the gateway is no longer in room {self.room.room_name!r}; restart it "
                "(its token may have been refused or it was dismissed)"
            )
        if self.room.connected.is_set():
            return
        try:
            await asyncio.wait_for(self.room.connected.wait(), self.reconnect_grace)
        except TimeoutError:
            raise ToolError(
                f"the gateway lost its connection to room {self.room.room_name!r} at "
                f"{self.room.base_url} and is reconnecting in the background; try again shortly"
            ) from None

    def _room_message(self, exc: RoomError) -> str:
        if exc.code == ErrorCode.UNAVAILABLE:
            return (
                f"room {self.room.room_name!r} at {self.room.base_url} is unavailable "
                f"({exc.message}); the gateway keeps reconnecting, so try again shortly"
            )
        message = exc.message
        agents = exc.details.get("agents")
        if isinstance(agents, list):
            message += "; agents in the room: " + (", ".join(agents) or "none")
        return message

    async def refresh_agents(self) -> dict[str, AgentTool]:
        """Every task runner in the room as an ``agent_<name>`` tool, named stably."""
        found: dict[str, AgentTool] = {}
        seen: set[str] = set()
        instances = await self.room.list_toolkits()
        for instance in sorted(instances, key=lambda i: i.toolkit.name):
            spec = instance.toolkit
            if not spec.metadata.get("agent") or spec.name in seen:
                continue
            run_tool = spec.metadata.get("tool") or task_tool_name(spec.name)
            tool_spec = next((t for t in spec.tools if t.name == run_tool), None)
            if tool_spec is None or tool_spec.input_schema.get("type") != "object":
                logger.debug(
                    "agent %s has no object-input tool %s; not offered", spec.name, run_tool
                )
                continue
            seen.add(spec.name)
            name = base = agent_tool_name(spec.name)
            suffix = 2
            while name in found:
                name, suffix = f"{base[:60]}_{suffix}", suffix + 1
            output = tool_spec.output_schema
            found[name] = AgentTool(
                spec.name,
                types.Tool(
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
        self.agent_tools = found
        return found

    # --- waiting --------------------------------------------------------------------------

    async def _wait(
        self,
        ctx: ServerRequestContext[Any],
        watch: TaskWatch,
        fetch: Fetch,
        done: Callable[[list[Snapshot]], bool],
        timeout: float,
    ) -> tuple[list[Snapshot], bool]:
        """Poll (woken early by pushes) until ``done``; progress to the client each second.

        Returns the last snapshots and whether the wait timed out.
        """
        began = time.monotonic()
        reported = 0.0
        while True:
            watch.changed.clear()
            tasks = await fetch()
            if done(tasks):
                return tasks, False
            remaining = began + timeout - time.monotonic()
            if remaining <= 0:
                return tasks, True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watch.changed.wait(), min(self.progress_interval, remaining))
            elapsed = time.monotonic() - began
            if elapsed - reported >= 0.9 * self.progress_interval:
                reported = round(elapsed, 1)
                await ctx.session.report_progress(
                    reported, None, watch.progress_line(tasks, elapsed)
                )

    def _fetch_task(self, task_id: str) -> Fetch:
        async def fetch() -> list[Snapshot]:
            await self._ensure_connected()  # a lost room fails the wait, not stalls it
            return [await self.room.tasks.get(task_id)]

        return fetch

    def _fetch_batch(self, batch_id: str) -> Fetch:
        async def fetch() -> list[Snapshot]:
            await self._ensure_connected()
            tasks = (await self.room.tasks.list(batch_id=batch_id, limit=500))["tasks"]
            if not tasks:
                raise ToolError(f"no batch {batch_id!r} in room {self.room.room_name!r}")
            return sorted(tasks, key=lambda t: t["created_at"])

        return fetch

    # --- the six task tools -----------------------------------------------------------------

    async def _run_task(
        self, ctx: ServerRequestContext[Any], args: dict[str, Any]
    ) -> dict[str, Any]:
        names = _model_list(args.get("model"))
        read_only = bool(args.get("read_only", False))
        if names is not None and len(names) > 1 and not read_only:
            raise ToolError(
                "a batch over several models must set read_only: true (several agents writing "
                "the same files at once would conflict); the room refuses it too"
            )
        models = [self.models.resolve(n) for n in names] if names else [None]
        if len(models) > 1 and None in models:
            raise ToolError(
                "the 'standard' class has no model configured, and each task of a batch needs "
                f"a concrete model; set TASKROOM_MODEL_STANDARD. {self.models.describe()}"
            )
        prompt = build_prompt(
            args["task"],
            context=args.get("context"),
            files=self.files.read(args.get("files") or []),
            output=args.get("output"),
        )
        agent = args.get("agent") or self.default_agent
        concrete = [m for m in models if m is not None]
        started = await self.room.tasks.start(
            agent, {"prompt": prompt}, models=concrete or None, read_only=read_only
        )
        tasks = started["tasks"]
        if len(tasks) == 1:
            return {
                "task_id": tasks[0]["id"],
                "status": tasks[0]["status"],
                "agent": agent,
                "model": tasks[0].get("model"),
                "read_only": read_only,
                "message": "Task started. wait_for_task waits for it (with progress); "
                "check_task_status polls it; get_task_result fetches the result.",
            }
        return {
            "batch_id": started["batch_id"],
            "task_ids": started["task_ids"],
            "status": "pending" if all(t["status"] == "pending" for t in tasks) else "running",
            "agent": agent,
            "models": [t.get("model") for t in tasks],
            "read_only": read_only,
            "message": f"{len(tasks)} tasks started as a batch. wait_for_task with the batch_id "
            "returns the next to finish (return_all: all of them); list_tasks with the "
            "batch_id shows them.",
        }

    async def _check_task_status(
        self, ctx: ServerRequestContext[Any], args: dict[str, Any]
    ) -> dict[str, Any]:
        task = await self.room.tasks.get(args["task_id"])
        events = task.get("events") or []
        finished = _finished(task)
        data: dict[str, Any] = {
            "task_id": task["id"],
            "status": task["status"],
            "agent": task["agent"],
            "model": task.get("model"),
            "batch_id": task.get("batch_id"),
            "read_only": task.get("read_only", False),
            "task": _summary(task),
            "created_at": _iso(task["created_at"]),
            "started_at": _iso(task.get("started_at")),
            "completed_at": _iso(task.get("finished_at")),
            "progress": describe_event(events[-1]["data"]) if events else None,
            "recent_events": [
                f"{_iso(e['at'])} {describe_event(e['data'])}" for e in events[-RECENT_EVENTS:]
            ],
        }
        if task.get("started_at"):
            end = task.get("finished_at") or time.time()
            data["runtime_seconds"] = round(end - task["started_at"], 1)
        if task.get("error"):
            data["error"] = task["error"]
        if finished:
            data["message"] = "Finished; get_task_result returns its result."
        else:
            data["check_after_seconds"] = task.get("poll_interval")
            data["message"] = (
                "Not finished; wait_for_task waits for it with progress, or check again later."
            )
        return data

    async def _get_task_result(
        self, ctx: ServerRequestContext[Any], args: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            return await self.room.tasks.result(args["task_id"])
        except RoomError as exc:
            if exc.code != ErrorCode.CONFLICT:
                raise
            status = exc.details.get("status", "unfinished")
            raise ToolError(
                f"task {args['task_id']!r} is still {status}; wait_for_task waits for it, "
                "check_task_status shows its progress"
            ) from None

    async def _cancel_task(
        self, ctx: ServerRequestContext[Any], args: dict[str, Any]
    ) -> dict[str, Any]:
        task_id, batch_id = self._one_target(args)
        if task_id is not None:
            try:
                await self.room.tasks.cancel(task_id)
            except RoomError as exc:
                if exc.code != ErrorCode.CONFLICT:
                    raise
                status = exc.details.get("status")
                return {
                    "task_id": task_id,
                    "cancelled": False,
                    "status": status,
                    "message": f"Task already finished ({status}); nothing to cancel.",
                }
            task = (await self.room.tasks.wait(task_id, timeout=CANCEL_SETTLE_SECONDS))["tasks"][0]
            return {
                "task_id": task_id,
                "cancelled": True,
                "status": task["status"],
                "message": "Task cancelled."
                if task["status"] == "cancelled"
                else f"Cancel sent; the task is {task['status']}.",
            }
        cancelled = (await self.room.tasks.cancel(batch_id=batch_id))["cancelled"]
        tasks = (await self.room.tasks.wait(batch_id=batch_id, timeout=CANCEL_SETTLE_SECONDS))[
            "tasks"
        ]
        return {
            "batch_id": batch_id,
            "total_tasks": len(tasks),
            "cancelled": len(cancelled),
            "cancelled_task_ids": cancelled,
            "already_complete": len(tasks) - len(cancelled),
            "message": f"Cancelled {len(cancelled)} of the batch's {len(tasks)} tasks.",
        }

    async def _wait_for_task(
        self, ctx: ServerRequestContext[Any], args: dict[str, Any]
    ) -> dict[str, Any]:
        task_id, batch_id = self._one_target(args)
        timeout = float(args.get("timeout_seconds", DEFAULT_WAIT_SECONDS))
        began = time.monotonic()
        if task_id is not None:
            async with watch_tasks(self.room, task_id=task_id) as watch:
                tasks, timed_out = await self._wait(
                    ctx, watch, self._fetch_task(task_id), lambda ts: _finished(ts[0]), timeout
                )
            data = {**_outcome(tasks[0]), "done": not timed_out, "timed_out": timed_out}
            if timed_out:
                data["message"] = (
                    f"Still {tasks[0]['status']} after {timeout:g} s; the task goes on. Wait "
                    "again, or check_task_status."
                )
            data["wait_time_seconds"] = round(time.monotonic() - began, 1)
            return data
        assert batch_id is not None
        fetch = self._fetch_batch(batch_id)
        return_all = bool(args.get("return_all"))
        before = {t["id"] for t in await fetch() if _finished(t)}

        def done(tasks: list[Snapshot]) -> bool:
            # Without return_all: the next task to finish, not one that had already finished.
            if all(map(_finished, tasks)):
                return True
            return not return_all and any(_finished(t) and t["id"] not in before for t in tasks)

        async with watch_tasks(self.room, batch_id=batch_id) as watch:
            tasks, timed_out = await self._wait(ctx, watch, fetch, done, timeout)
        data = self._batch_outcome(batch_id, tasks, before, return_all, timed_out)
        data["wait_time_seconds"] = round(time.monotonic() - began, 1)
        return data

    def _batch_outcome(
        self,
        batch_id: str,
        tasks: list[Snapshot],
        before: set[str],
        return_all: bool,
        timed_out: bool,
    ) -> dict[str, Any]:
        finished = [t for t in tasks if _finished(t)]
        data: dict[str, Any] = {
            "batch_id": batch_id,
            "timed_out": timed_out,
            "all_complete": len(finished) == len(tasks),
            "completed_tasks": len(finished),
            "total_tasks": len(tasks),
        }
        newly = [t for t in finished if t["id"] not in before]
        if return_all or timed_out or not newly:
            data["tasks"] = [_outcome(t) for t in tasks]
            if timed_out:
                data["message"] = "Timed out; unfinished tasks go on. Wait again to follow them."
            elif not return_all:
                data["message"] = "Every task of the batch had already finished."
            return data
        first = min(newly, key=lambda t: t.get("finished_at") or 0)
        data |= {"newly_completed": True, **_outcome(first)}
        data["remaining_tasks"] = len(tasks) - len(finished)
        data["previously_completed"] = sorted(before)
        return data

    async def _list_tasks(
        self, ctx: ServerRequestContext[Any], args: dict[str, Any]
    ) -> dict[str, Any]:
        listed = await self.room.tasks.list(
            status=args.get("status_filter"), batch_id=args.get("batch_id"), limit=LIST_LIMIT
        )
        tasks = listed["tasks"]
        if args.get("recent_only"):
            cutoff = time.time() - RECENT_SECONDS
            tasks = [t for t in tasks if t["created_at"] >= cutoff]
        stats = {"total": len(tasks)} | {s: sum(t["status"] == s for t in tasks) for s in STATUSES}
        return {
            "stats": stats,
            "tasks": [
                {
                    "task_id": t["id"],
                    "status": t["status"],
                    "agent": t["agent"],
                    "model": t.get("model"),
                    "batch_id": t.get("batch_id"),
                    "read_only": t.get("read_only", False),
                    "task": _summary(t),
                    "created_at": _iso(t["created_at"]),
                    "completed_at": _iso(t.get("finished_at")),
                }
                for t in tasks
            ],
            "filters_applied": {
                "status": args.get("status_filter"),
                "batch_id": args.get("batch_id"),
                "recent_only": bool(args.get("recent_only")),
            },
            "more": listed.get("next_before") is not None,
        }

    @staticmethod
    def _one_target(args: dict[str, Any]) -> tuple[str | None, str | None]:
        task_id, batch_id = args.get("task_id"), args.get("batch_id")
        if (task_id is None) == (batch_id is None):
            raise ToolError("give exactly one of task_id or batch_id")
        return task_id, batch_id

    # --- agent tools -------------------------------------------------------------------------

    async def _run_agent(
        self, ctx: ServerRequestContext[Any], agent: AgentTool, args: dict[str, Any]
    ) -> types.CallToolResult:
        """Run one task on the agent and answer with its result, as a direct tool call would."""
        arguments = dict(args)
        if isinstance(arguments.get("model"), str):
            model = self.models.resolve(arguments["model"])
            if model is None:
                arguments.pop("model")
            else:
                arguments["model"] = model
        started = await self.room.tasks.start(agent.agent, arguments)
        task_id = started["task_ids"][0]
        meta = {TASK_ID_META: task_id}
        try:
            async with watch_tasks(self.room, task_id=task_id) as watch:
                tasks, timed_out = await self._wait(
                    ctx,
                    watch,
                    self._fetch_task(task_id),
                    lambda ts: _finished(ts[0]),
                    AGENT_CALL_WAIT_SECONDS,
                )
        except asyncio.CancelledError:
            # The caller gave up: the task it started for this call should not run on.
            with anyio.CancelScope(shield=True), anyio.move_on_after(CANCEL_SETTLE_SECONDS):
                with contextlib.suppress(RoomError):
                    await self.room.tasks.cancel(task_id)
            raise
        except ToolError as exc:
            return _error(f"{exc} (task {task_id})", meta)
        except RoomError as exc:
            return _error(f"{self._room_message(exc)} (task {task_id})", meta)
        task = tasks[0]
        if timed_out:
            return _error(
                f"task {task_id} is still {task['status']}; wait_for_task follows it", meta
            )
        if task["status"] != "completed":
            error = task.get("error") or {}
            return _error(
                f"task {task_id} of agent {agent.agent!r} {task['status']}: "
                f"{error.get('message', 'no reason given')}",
                meta,
            )
        result = task.get("result")
        structured = result if agent.tool.output_schema is not None else {"result": result}
        return _ok(structured, meta)
