"""TaskRunner: an agent that runs one task from a clean context and returns checked output.

In a room a runner hosts toolkit ``<name>`` with one tool, ``run_<name>_task``, whose
input and output schemas are the runner's. The room's task API and other agents call
that tool; a subclass only writes :meth:`TaskRunner.ask`.

The constructor and ``ask`` follow MeshAgent's TaskRunner, so its subclasses port with
their bodies unchanged: keyword arguments with ``None`` for "default", ``ask`` called
with keywords (``context=``, ``arguments=``, ``attachment=``) unless the subclass wrote
it with other parameter names, and ``init_chat_context`` plain or ``async``.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskroom.agents.chat_context import ChatContext
from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.protocol.messages import ParticipantInfo
from taskroom.host.protocol.tasks import task_tool_name
from taskroom.toolkits.context import ToolContext
from taskroom.toolkits.requirements import (
    RequiredSchema,
    Requirement,
    ToolkitCache,
    install_requirements,
    remote_toolkit,
    resolve_schema,
    resolve_toolkits,
)
from taskroom.toolkits.tool import Tool
from taskroom.toolkits.toolkit import Toolkit, check_schema

if TYPE_CHECKING:
    from taskroom.toolkits.room import HostingRoom, RoomConnection

logger = logging.getLogger(__name__)

AGENT_KIND = "task_runner"
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")


@dataclass
class TaskContext:
    """Everything one task may use; made fresh for each task."""

    chat: ChatContext
    tool_context: ToolContext
    room: RoomConnection | None
    toolkits: list[Toolkit] = field(default_factory=list)

    @property
    def caller(self) -> ParticipantInfo:
        return self.tool_context.caller

    @property
    def on_behalf_of(self) -> ParticipantInfo | None:
        return self.tool_context.on_behalf_of

    @property
    def task_id(self) -> str | None:
        return self.tool_context.task_id

    @property
    def session(self) -> ChatContext:
        """The current MeshAgent SDK's name for :attr:`chat`."""
        return self.chat

    async def emit(self, event: dict[str, Any]) -> None:
        """Report progress to the caller, through the room."""
        await self.tool_context.progress(event)


AgentCallContext = TaskContext
"""MeshAgent's name for the context ``ask`` receives."""

_current_task: ContextVar[TaskContext | None] = ContextVar("taskroom_task", default=None)


def current_task() -> TaskContext | None:
    """The task whose ``ask`` is running in this asyncio task, if any.

    An adapter called without a tool context (as MeshAgent-style runners call
    ``llm_adapter.next``) reads it to report progress to the task and honour read_only.
    """
    return _current_task.get()


@contextmanager
def _running(context: TaskContext) -> Iterator[None]:
    token = _current_task.set(context)
    try:
        yield
    finally:
        _current_task.reset(token)


class _RunTaskTool(Tool):
    def __init__(self, runner: TaskRunner) -> None:
        super().__init__(
            name=task_tool_name(runner.name),
            title=runner.title,
            description=runner.description or f"Run a {runner.title} task",
            input_schema=runner.input_schema,
            output_schema=runner.output_schema,
        )
        self.runner = runner

    async def execute(self, context: ToolContext, arguments: dict[str, Any]) -> Any:
        return await self.runner.run_task(context, arguments)


class TaskRunner:
    """Base class for task runners. Subclasses write ``ask(context, arguments)``."""

    kind = AGENT_KIND
    ask_by_keyword = True
    """Whether ``ask`` takes ``context=`` and ``arguments=``; set per subclass."""
    ask_takes_attachment = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.ask_by_keyword, cls.ask_takes_attachment = _ask_form(cls.ask)

    def __init__(
        self,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        input_schema: dict[str, Any] | None = None,
        output_schema: dict[str, Any] | RequiredSchema | None = None,
        requires: Sequence[Requirement] | None = None,
        supports_tools: bool | None = None,
        toolkits: Sequence[Toolkit] | None = None,
        labels: Sequence[str] | None = None,
        annotations: Sequence[str] | dict[str, str] | None = None,
        max_concurrency: int = 16,
    ) -> None:
        self.name_given = name is not None
        """False when the name was made up here: a service host then names the runner
        after the identity it joins as, as MeshAgent names runners after theirs."""
        name = name or _default_name(title or type(self).__name__)
        if not _NAME.match(name):
            raise ValueError(f"invalid runner name {name!r}: use letters, digits, '.', '_' or '-'")
        self.name = name
        self.title = title or name
        self.description = description or ""
        self.input_schema = input_schema or {"type": "object"}
        check_schema(self.input_schema, what=f"input schema of {name!r}")
        self.requires = list(requires or [])
        self._output_requirement: RequiredSchema | None = None
        if isinstance(output_schema, RequiredSchema):
            self._output_requirement = output_schema
            self.requires.append(output_schema)
            output_schema = output_schema.schema
        if output_schema is not None:
            check_schema(output_schema, what=f"output schema of {name!r}")
        self.output_schema: dict[str, Any] | None = output_schema
        self.supports_tools = bool(supports_tools)
        self.toolkits = list(toolkits or [])
        self.labels = list(labels or [])
        self.annotations = annotations
        self.max_concurrency = max_concurrency
        self.room: HostingRoom | None = None
        self._toolkit_cache: ToolkitCache | None = None

    # --- what a subclass writes --------------------------------------------------

    def init_chat_context(self) -> ChatContext | Awaitable[ChatContext]:
        """The fresh context each task starts from; a subclass may make this ``async``."""
        return ChatContext()

    async def ask(self, context: TaskContext, arguments: dict[str, Any]) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement ask()")

    # --- room integration ------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        meta = {
            "agent": True,
            "kind": self.kind,
            "labels": self.labels,
            "supports_tools": self.supports_tools,
            "max_concurrency": self.max_concurrency,
            "title": self.title,
            "tool": task_tool_name(self.name),
        }
        if self.annotations:
            meta["annotations"] = self.annotations
        return meta

    def make_toolkit(self) -> Toolkit:
        return Toolkit(
            name=self.name,
            title=self.title,
            description=self.description,
            tools=[_RunTaskTool(self)],
            metadata=self.metadata(),
        )

    async def start(self, room: HostingRoom) -> None:
        """Install requirements (bounded waits), then offer the runner in the room."""
        self.room = room
        await install_requirements(room, self.requires)
        if self._output_requirement is not None:
            self.output_schema = await resolve_schema(room, self._output_requirement)
            check_schema(self.output_schema, what=f"schema {self._output_requirement.name!r}")
        self._toolkit_cache = ToolkitCache(room)
        await room.host_toolkit(self.make_toolkit())
        logger.info("runner %s is ready in room %s", self.name, room.room_name)

    async def stop(self) -> None:
        if self.room is not None and not self.room.closed:
            try:
                await self.room.unhost_toolkit(self.name)
            except RoomError as exc:
                logger.debug("unhosting %s: %s", self.name, exc.message)
        if self._toolkit_cache is not None:
            self._toolkit_cache.close()
            self._toolkit_cache = None
        self.room = None

    async def run_task(self, tool_context: ToolContext, arguments: dict[str, Any]) -> Any:
        """One task: a fresh context, resolved toolkits, ``ask``, usage reported back."""
        room = tool_context.room or self.room
        toolkits = list(self.toolkits)
        if room is not None:
            cache = self._toolkit_cache
            if cache is not None and cache.room is room:
                toolkits += await cache.resolve(self.requires)
            else:
                toolkits += await resolve_toolkits(room, self.requires)
            toolkits += await self._caller_toolkits(room, arguments.get("tools") or [])
        if tool_context.read_only:
            toolkits = [tk.read_only_view() for tk in toolkits]
        chat = self.init_chat_context()
        if inspect.isawaitable(chat):
            chat = await chat
        context = TaskContext(
            chat=chat,
            tool_context=tool_context,
            room=room,
            toolkits=[tk for tk in toolkits if tk.tools],
        )
        try:
            with _running(context):
                if not self.ask_by_keyword:
                    return await self.ask(context, arguments)
                extra = {"attachment": None} if self.ask_takes_attachment else {}
                return await self.ask(context=context, arguments=arguments, **extra)
        finally:
            if context.chat.usage.requests:
                tool_context.usage.update(context.chat.usage.as_dict())

    async def _caller_toolkits(self, room: RoomConnection, names: Sequence[str]) -> list[Toolkit]:
        if not names:
            return []
        if not self.supports_tools:
            raise RoomError(
                ErrorCode.INVALID_REQUEST, f"runner {self.name!r} does not take tools from callers"
            )
        toolkits = []
        for name in names:
            found = await room.list_toolkits(name=name)
            if not found:
                raise RoomError(
                    ErrorCode.NOT_FOUND, f"toolkit {name!r} named in 'tools' is not in the room"
                )
            toolkits.append(remote_toolkit(room, found[0]))
        return toolkits


def _default_name(text: str) -> str:
    """A runner name from a title or class name: ``WeatherRunner`` -> ``weather-runner``."""
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1-\2", text)
    return re.sub(r"[^A-Za-z0-9_.]+", "-", words).strip("-").lower()[:100] or "task-runner"


def _ask_form(ask: Callable[..., Any]) -> tuple[bool, bool]:
    """How to call a subclass's ``ask``: by keyword (as MeshAgent does) when it names its
    parameters ``context`` and ``arguments``, else positionally; and whether it takes
    ``attachment``."""
    params = inspect.signature(ask).parameters
    named = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    var_kw = any(p.kind == p.VAR_KEYWORD for p in params.values())
    by_keyword = {"context", "arguments"} <= named
    return by_keyword, by_keyword and ("attachment" in named or var_kw)
