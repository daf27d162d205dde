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
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged
from starlette.requests import Request
from starlette.responses import JSONResponse

from taskroom.agents.providers import ProviderError, RoutedAdapter
from taskroom.agents.workspace_runner import WorkspaceTaskRunner
from taskroom.host.client.room_client import RoomClient
from taskroom.host.mcp import answers
from taskroom.host.mcp.defaults import DEFAULT_AGENT
from taskroom.host.mcp.identity import ClientRooms
from taskroom.host.mcp.models import ModelCatalog, ModelChoice, ModelError
from taskroom.host.mcp.prompt import FileAccess, FileRefused, build_prompt
from taskroom.host.mcp.tools import (
    DEFAULT_WAIT_SECONDS,
    MAX_WAIT_SECONDS,
    TASK_TOOLS,
    AgentTool,
    agent_tools,
)
from taskroom.host.mcp.waiting import Report, relayed, wait_for_next, wait_until_finished
from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.protocol.errors import TaskroomError
from taskroom.toolkits.toolkit import schema_validator, validation_error

logger = logging.getLogger(__name__)

SERVER_NAME = "taskroom"
INSTRUCTIONS = (
    "Tasks run on agents in a taskroom room and outlive this connection. Start one with "
    "run_task (or an agent_* tool, which waits for the result), then wait_for_task, "
    "check_task_status, get_task_result, cancel_task and list_tasks."
)
TASK_ID_META = "taskroom/task_id"
MODEL_SELECTION = "model_selection"
"""The argument that tells an agent (and the task record) which model ran and why."""
RECENT_SECONDS = 2 * 3600.0
LIST_LIMIT = 100
CANCEL_SETTLE_SECONDS = 5.0

Snapshot = dict[str, Any]
Handler = Callable[
    [ServerRequestContext[Any], RoomClient, dict[str, Any]],
    Awaitable[dict[str, Any] | types.CallToolResult],
]


class ToolError(TaskroomError):
    """A tool call that cannot succeed; it is answered as ``isError`` with this message."""


def _version() -> str:
    try:
        return version("taskroom")
    except PackageNotFoundError:
        return "0"


def _ok(
    data: dict[str, Any], meta: dict[str, Any] | None = None, text: str | None = None
) -> types.CallToolResult:
    """``data`` as structured content; the text is its JSON unless given (mcp-task's plain
    text answers keep their text)."""
    if text is None:
        text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    return types.CallToolResult(
        content=[types.TextContent(text=text)], structured_content=data, _meta=meta
    )


def _error(message: str, meta: dict[str, Any] | None = None) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(text=message)], is_error=True, _meta=meta
    )


def _reporter(ctx: ServerRequestContext[Any]) -> Report:
    async def report(progress: float, message: str) -> None:
        await ctx.session.report_progress(progress, None, message)

    return report


def structured_result(result: Any) -> dict[str, Any]:
    """An agent's result as MCP ``structuredContent``, which must be an object: an object
    result as it is (what ``taskroom invoke`` prints), anything else as ``{"result": ...}``."""
    return result if isinstance(result, dict) else {"result": result}


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


class McpGateway:
    """Serves MCP for one room connection; build with a joined RoomClient."""

    def __init__(
        self,
        room: RoomClient,
        *,
        models: ModelCatalog | None = None,
        files: FileAccess | None = None,
        default_agent: str = DEFAULT_AGENT,
        runner: WorkspaceTaskRunner | None = None,
        reconnect_grace: float = 2.0,
        progress_interval: float = 1.0,
    ) -> None:
        self.room = room
        self.models = models or ModelCatalog.load()
        self.files = files or FileAccess([])
        self.runner = runner
        """The workspace runner this gateway hosts (in ``room``), if it hosts one."""
        self.default_agent = default_agent
        self.reconnect_grace = reconnect_grace
        self.progress_interval = progress_interval
        self.agent_tools: dict[str, AgentTool] = {}
        self.clients = ClientRooms(room, on_join=self._admit)
        self.bus = InMemorySubscriptionBus()
        self._sessions: dict[str, Any] = {}
        """The latest request's session per client connection, to reach it unasked."""
        self._offs = [
            room.on("toolkit.registered", self._on_toolkit_change),
            room.on("toolkit.unregistered", self._on_toolkit_change),
        ]
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
            on_subscriptions_listen=ListenHandler(self.bus),
        )

    async def close(self) -> None:
        """Stop following the room and leave it as every HTTP client's identity."""
        for off in self._offs:
            off()
        await self.clients.close()

    # --- MCP handlers -------------------------------------------------------------------

    async def _list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        self._remember(ctx)
        agents = self.agent_tools
        try:
            room = await self.clients.for_request(ctx.request)
            await self._ensure_connected(room)
            agents = await self.refresh_agents(room)
        except (RoomError, ToolError) as exc:
            logger.warning("listing the room's agents failed, offering the last known: %s", exc)
        tools = [*TASK_TOOLS.values(), *(a.tool for a in agents.values())]
        return types.ListToolsResult(tools=tools)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        name, arguments = params.name, params.arguments or {}
        self._remember(ctx)
        room = self.room
        try:
            room = await self.clients.for_request(ctx.request)
            await self._ensure_connected(room)
            if name in TASK_TOOLS:
                problem = validation_error(arguments, self._validators[name])
                if problem:
                    raise ToolError(f"invalid arguments for {name}: {problem}")
                answer = await self._handlers[name](ctx, room, arguments)
                return answer if isinstance(answer, types.CallToolResult) else _ok(answer)
            agents = self.agent_tools if room is self.room else {}
            if name not in agents:
                agents = await self.refresh_agents(room)
            agent = agents.get(name)
            if agent is None:
                known = ", ".join([*TASK_TOOLS, *agents])
                raise ToolError(f"no tool {name!r}; this gateway offers: {known}")
            return await self._run_agent(ctx, room, agent, arguments)
        except (ToolError, ModelError, FileRefused, ProviderError) as exc:
            return _error(str(exc))
        except RoomError as exc:
            return _error(self._room_message(room, exc))
        except Exception as exc:
            logger.exception("tool %s failed", name)
            return _error(f"internal error in the MCP gateway: {type(exc).__name__}: {exc}")

    async def healthz(self, request: Request) -> JSONResponse:
        """HTTP health: 200 while the room connection is up, 503 while it is being restored."""
        up = self.room.connected.is_set()
        body = {"room": self.room.room_name, "connected": up}
        return JSONResponse(body, status_code=200 if up else 503)

    # --- room access ----------------------------------------------------------------------

    async def _ensure_connected(self, room: RoomClient) -> None:
        """Fail fast while the room is away, instead of holding the call for the reconnect."""
        if room.closed:
            raise ToolError(
                f"the gateway is no longer in room {room.room_name!r}; restart it "
                "(its token may have been refused or it was dismissed)"
            )
        if room.connected.is_set():
            return
        try:
            await asyncio.wait_for(room.connected.wait(), self.reconnect_grace)
        except TimeoutError:
            raise ToolError(
                f"the gateway lost its connection to room {room.room_name!r} at "
                f"{room.base_url} and is reconnecting in the background; try again shortly"
            ) from None

    @staticmethod
    def _room_message(room: RoomClient, exc: RoomError) -> str:
        if exc.code == ErrorCode.UNAVAILABLE:
            return (
                f"room {room.room_name!r} at {room.base_url} is unavailable "
                f"({exc.message}); the gateway keeps reconnecting, so try again shortly"
            )
        message = exc.message
        agents = exc.details.get("agents")
        if isinstance(agents, list):
            message += "; agents in the room: " + (", ".join(agents) or "none")
        return message

    async def _admit(self, client: RoomClient) -> None:
        """Let an HTTP client's identity use the workspace runner this gateway hosts."""
        name = client.participant.name if client.participant else None
        if self.runner is None or name is None or name in self.runner.allowed_callers:
            return
        self.runner.allowed_callers.append(name)
        await self.room.host_toolkit(self.runner.make_toolkit())

    async def _on_toolkit_change(self, event: dict[str, Any]) -> None:
        """Tell clients the tool list changed when an agent joins or leaves the room."""
        spec = event.get("toolkit") or {}
        was_agent = any(a.agent == event.get("name") for a in self.agent_tools.values())
        if not ((spec.get("metadata") or {}).get("agent") or was_agent):
            return
        before = set(self.agent_tools)
        try:
            after = set(await self.refresh_agents(self.room))
        except RoomError as exc:
            logger.debug("refreshing agents after a room change: %s", exc)
            return
        if after != before:
            await self.notify_tools_changed()

    def _remember(self, ctx: ServerRequestContext[Any]) -> None:
        """Keep a session of each client connection (stdio's one, or per HTTP session id):
        a session sends its unrelated notifications on its connection's own channel."""
        headers = getattr(ctx.request, "headers", None)
        key = headers.get("mcp-session-id", "") if headers is not None else "stdio"
        if key:
            self._sessions[key] = ctx.session

    async def notify_tools_changed(self) -> None:
        """``notifications/tools/list_changed`` to every client: handshake-era sessions
        directly, newer ones through their ``subscriptions/listen`` streams."""
        await self.bus.publish(ToolsListChanged())
        for key, session in list(self._sessions.items()):
            try:
                await session.send_tool_list_changed()
            except Exception as exc:  # a client that went away
                logger.debug("tools/list_changed not sent: %s", exc)
                self._sessions.pop(key, None)

    async def refresh_agents(self, room: RoomClient) -> dict[str, AgentTool]:
        """Every task runner ``room`` shows as an ``agent_<name>`` tool, named stably."""
        found = agent_tools(await room.list_toolkits())
        if room is self.room:
            self.agent_tools = found
        return found

    # --- the six task tools -----------------------------------------------------------------

    async def _run_task(
        self, ctx: ServerRequestContext[Any], room: RoomClient, args: dict[str, Any]
    ) -> dict[str, Any]:
        names = _model_list(args.get("model"))
        read_only = bool(args.get("read_only", False))
        choices = [self.models.resolve(n) for n in names] if names else [self.models.resolve(None)]
        prompt = build_prompt(
            args["task"],
            context=args.get("context"),
            files=self.files.read(args.get("files") or []),
            output=args.get("output"),
        )
        agent = args.get("agent") or self.default_agent
        self._check_keys(agent, choices)
        arguments = await self._task_arguments(room, agent, {"prompt": prompt}, choices)
        try:
            started = await room.tasks.start(
                agent, arguments, models=[c.model for c in choices], read_only=read_only
            )
        except RoomError as exc:
            if exc.code == ErrorCode.INVALID_REQUEST and len(choices) > 1 and not read_only:
                raise ToolError(
                    "Multiple models with write access (read_only: false) is not allowed, to "
                    "prevent file conflicts: set read_only: true for a batch over several "
                    f"models, or use a single model when write access is needed ({exc.message})"
                ) from None
            raise
        return answers.started(started["tasks"], agent, started["batch_id"], choices)

    async def _check_task_status(
        self, ctx: ServerRequestContext[Any], room: RoomClient, args: dict[str, Any]
    ) -> dict[str, Any]:
        return answers.status(await self._placed(room, await room.tasks.get(args["task_id"])))

    async def _get_task_result(
        self, ctx: ServerRequestContext[Any], room: RoomClient, args: dict[str, Any]
    ) -> types.CallToolResult:
        task = await self._placed(room, await room.tasks.get(args["task_id"]))
        if not answers.finished(task):
            raise ToolError(
                f"Task {task['id']} is not complete. Status: {task['status']}. wait_for_task "
                "waits for it, check_task_status shows its progress"
            )
        return _ok(answers.result(task), text=answers.result_text(task))

    async def _cancel_task(
        self, ctx: ServerRequestContext[Any], room: RoomClient, args: dict[str, Any]
    ) -> dict[str, Any]:
        task_id, batch_id = self._one_target(args)
        if task_id is not None:
            try:
                await room.tasks.cancel(task_id)
            except RoomError as exc:
                if exc.code != ErrorCode.CONFLICT:
                    raise
                return answers.cancelled_task(task_id, False, exc.details.get("status"))
            task = (await room.tasks.wait(task_id, timeout=CANCEL_SETTLE_SECONDS))["tasks"][0]
            return answers.cancelled_task(task_id, True, task["status"])
        assert batch_id is not None  # _one_target gives exactly one of the two
        cancelled = (await room.tasks.cancel(batch_id=batch_id))["cancelled"]
        settled = await room.tasks.wait(batch_id=batch_id, timeout=CANCEL_SETTLE_SECONDS)
        return answers.cancelled_batch(batch_id, len(settled["tasks"]), cancelled)

    async def _wait_for_task(
        self, ctx: ServerRequestContext[Any], room: RoomClient, args: dict[str, Any]
    ) -> dict[str, Any]:
        task_id, batch_id = self._one_target(args)
        timeout = min(float(args.get("timeout_seconds", DEFAULT_WAIT_SECONDS)), MAX_WAIT_SECONDS)
        began = time.monotonic()
        report = _reporter(ctx)
        if task_id is not None:
            task = await room.tasks.get(task_id)
            async with relayed(room, [task], report, self.progress_interval):
                waited = await room.tasks.wait(task_id, timeout=timeout)
            return answers.waited_task(
                await self._placed(room, waited["tasks"][0]),
                waited["timed_out"],
                timeout,
                time.monotonic() - began,
            )
        assert batch_id is not None
        tasks = await self._batch(room, batch_id)
        before = {t["id"] for t in tasks if answers.finished(t)}
        return_all = bool(args.get("return_all"))
        timed_out = False
        if len(before) < len(tasks):
            async with relayed(room, tasks, report, self.progress_interval, batch_id=batch_id):
                if return_all:
                    waited = await room.tasks.wait(batch_id=batch_id, mode="all", timeout=timeout)
                    timed_out = waited["timed_out"]
                else:
                    unfinished = [t["id"] for t in tasks if t["id"] not in before]
                    timed_out = not await wait_for_next(room, unfinished, timeout)
            tasks = await self._batch(room, batch_id)
        return answers.waited_batch(
            batch_id,
            tasks,
            before=before,
            return_all=return_all,
            timed_out=timed_out,
            timeout=timeout,
            waited=time.monotonic() - began,
        )

    async def _batch(self, room: RoomClient, batch_id: str) -> list[Snapshot]:
        tasks = (await room.tasks.list(batch_id=batch_id, limit=500))["tasks"]
        if not tasks:
            raise ToolError(f"No tasks found with batch_id: {batch_id} (room {room.room_name!r})")
        ordered = sorted(tasks, key=lambda t: t["created_at"])
        return [{**t, "batch_position": i} for i, t in enumerate(ordered)]

    async def _placed(self, room: RoomClient, task: Snapshot) -> Snapshot:
        """``task`` with its place in its batch when other entries resolved to its model:
        the room creates a batch's tasks in the order of its entries, so the place tells
        which entry (and model choice) the task runs."""
        if not task.get("batch_id") or not answers.shares_its_model(task):
            return task
        for placed in await self._batch(room, task["batch_id"]):
            if placed["id"] == task["id"]:
                return {**task, "batch_position": placed["batch_position"]}
        return task

    async def _list_tasks(
        self, ctx: ServerRequestContext[Any], room: RoomClient, args: dict[str, Any]
    ) -> dict[str, Any]:
        listed = await room.tasks.list(
            status=args.get("status_filter"), batch_id=args.get("batch_id"), limit=LIST_LIMIT
        )
        tasks = listed["tasks"]
        if args.get("recent_only"):
            cutoff = time.time() - RECENT_SECONDS
            tasks = [t for t in tasks if t["created_at"] >= cutoff]
        shared = {t["batch_id"] for t in tasks if t.get("batch_id") and answers.shares_its_model(t)}
        places: dict[str, int] = {}
        for batch_id in shared:
            places |= {t["id"]: t["batch_position"] for t in await self._batch(room, batch_id)}
        tasks = [
            {**t, "batch_position": places[t["id"]]} if t["id"] in places else t for t in tasks
        ]
        filters = {
            "batch_id": args.get("batch_id"),
            "status": args.get("status_filter"),
            "recent_only": bool(args.get("recent_only")),
        }
        return answers.listed(tasks, filters, listed.get("next_before") is not None)

    def _check_keys(self, agent: str, choices: list[ModelChoice]) -> None:
        """For the runner hosted here, a model whose provider has no key is refused now
        (ProviderError naming the variable), rather than failing the task later."""
        adapter = self.runner.llm_adapter if self.runner is not None else None
        if agent == getattr(self.runner, "name", None) and isinstance(adapter, RoutedAdapter):
            for choice in choices:
                adapter.table.route(choice.model)

    async def _task_arguments(
        self, room: RoomClient, agent: str, arguments: dict[str, Any], choices: list[ModelChoice]
    ) -> dict[str, Any]:
        """The arguments, with the model choices recorded when the agent takes them."""
        known = {a.agent: a for a in self.agent_tools.values()}
        if agent not in known:
            with contextlib.suppress(RoomError):
                known = {a.agent: a for a in (await self.refresh_agents(room)).values()}
        schema = known[agent].run_input if agent in known else {}
        takes = MODEL_SELECTION in (schema.get("properties") or {}) or (
            schema.get("additionalProperties", True) is not False
        )
        if agent in known and takes:
            arguments = {**arguments, MODEL_SELECTION: [c.as_dict() for c in choices]}
        return arguments

    @staticmethod
    def _one_target(args: dict[str, Any]) -> tuple[str | None, str | None]:
        task_id, batch_id = args.get("task_id"), args.get("batch_id")
        if (task_id is None) == (batch_id is None):
            raise ToolError("give exactly one of task_id or batch_id")
        return task_id, batch_id

    # --- agent tools -------------------------------------------------------------------------

    async def _run_agent(
        self,
        ctx: ServerRequestContext[Any],
        room: RoomClient,
        agent: AgentTool,
        args: dict[str, Any],
    ) -> types.CallToolResult:
        """Run one task on the agent and answer with its result, as a direct tool call would."""
        arguments = dict(args)
        if isinstance(arguments.get("model"), str):
            choice = self.models.resolve(arguments["model"])
            self._check_keys(agent.agent, [choice])
            arguments = await self._task_arguments(room, agent.agent, arguments, [choice])
            arguments["model"] = choice.model
        started = await room.tasks.start(agent.agent, arguments)
        task = started["tasks"][0]
        meta = {TASK_ID_META: task["id"]}
        try:
            async with relayed(room, [task], _reporter(ctx), self.progress_interval):
                task = await wait_until_finished(room, task["id"])
        except asyncio.CancelledError:
            # The caller gave up: the task it started for this call should not run on.
            with anyio.CancelScope(shield=True), anyio.move_on_after(CANCEL_SETTLE_SECONDS):
                with contextlib.suppress(RoomError):
                    await room.tasks.cancel(task["id"])
            raise
        except RoomError as exc:
            return _error(f"{self._room_message(room, exc)} (task {task['id']})", meta)
        if task["status"] != "completed":
            error = task.get("error") or {}
            return _error(
                f"task {task['id']} of agent {agent.agent!r} {task['status']}: "
                f"{error.get('message', 'no reason given')}",
                meta,
            )
        return _ok(structured_result(task.get("result")), meta)
