"""RequiredToolkit and RequiredSchema: what an agent needs from the room it joins.

At agent start a requirement is waited for (bounded, never a hang) or, for a schema the
agent carries, published. At each task a RequiredToolkit becomes a proxy toolkit whose
tools call through the room on behalf of the task's caller; a :class:`ToolkitCache` keeps
those proxies between tasks until the room reports that its toolkits changed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.protocol.messages import ToolkitInstance
from taskroom.host.protocol.progress import NestedProgress
from taskroom.toolkits.context import ToolContext
from taskroom.toolkits.room import RoomConnection
from taskroom.toolkits.tool import Tool
from taskroom.toolkits.toolkit import Toolkit, check_schema

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.1


@dataclass(frozen=True)
class RequiredToolkit:
    """A room toolkit the agent uses; ``tools`` narrows it, ``participant_name`` pins a host.

    The agent waits for it at start for ``timeout`` seconds (None: with no limit).
    ``callable`` is accepted for MeshAgent programs; taskroom never calls a toolkit in on
    its own, so a callable requirement is waited for like any other.
    """

    name: str
    tools: tuple[str, ...] | list[str] | None = None
    participant_name: str | None = None
    timeout: float | None = 30.0
    callable: bool | None = None


@dataclass(frozen=True)
class RequiredSchema:
    """A named room schema; with ``schema`` given, the agent publishes it at start.

    ``timeout`` and ``callable`` as for :class:`RequiredToolkit`.
    """

    name: str
    schema: dict[str, Any] | None = None
    timeout: float | None = 30.0
    callable: bool | None = None


Requirement = RequiredToolkit | RequiredSchema


class RemoteTool(Tool):
    """A proxy that calls a tool hosted by another participant, through the room."""

    def __init__(
        self,
        room: RoomConnection,
        instance: ToolkitInstance,
        tool_name: str,
        participant_id: str | None = None,
    ) -> None:
        spec = next(t for t in instance.toolkit.tools if t.name == tool_name)
        super().__init__(
            name=spec.name,
            title=spec.title,
            description=spec.description,
            input_schema=spec.input_schema,
            output_schema=spec.output_schema,
            annotations=spec.annotations,
        )
        self.room = room
        self.toolkit_name = instance.toolkit.name
        self.participant_id = participant_id

    async def execute(self, context: ToolContext, arguments: dict[str, Any]) -> Any:
        return await self.room.invoke_tool(
            self.toolkit_name,
            self.name,
            arguments,
            participant_id=self.participant_id,
            parent_call_id=context.call_id,
            on_progress=lambda event: context.progress(
                NestedProgress(toolkit=self.toolkit_name, tool=self.name, event=event).model_dump(
                    mode="json"
                )
            ),
        )


def remote_toolkit(
    room: RoomConnection,
    instance: ToolkitInstance,
    tools: Sequence[str] | None = None,
    *,
    pin_host: bool = False,
) -> Toolkit:
    """Proxy ``instance`` as a local Toolkit. Unpinned proxies let the room pick the
    least-loaded host at each call."""
    spec = instance.toolkit
    available = [t.name for t in spec.tools]
    wanted = list(tools) if tools else available
    missing = [t for t in wanted if t not in available]
    if missing:
        raise RoomError(
            ErrorCode.NOT_FOUND,
            f"toolkit {spec.name!r} has no tool {missing[0]!r} (it has {', '.join(available)})",
        )
    host = instance.participant_id if pin_host else None
    proxies = [RemoteTool(room, instance, name, host) for name in wanted]
    return Toolkit(name=spec.name, title=spec.title, description=spec.description, tools=proxies)


async def find_toolkit(
    room: RoomConnection, requirement: RequiredToolkit
) -> ToolkitInstance | None:
    found = await room.list_toolkits(
        name=requirement.name, participant_name=requirement.participant_name
    )
    for instance in found:
        names = {t.name for t in instance.toolkit.tools}
        if not requirement.tools or set(requirement.tools) <= names:
            return instance
    return found[0] if found else None


async def install_requirements(room: RoomConnection, requires: Sequence[Requirement]) -> None:
    """Publish carried schemas, then wait (each within its timeout) for the rest."""
    await asyncio.gather(*(_install(room, r) for r in requires))


async def _install(room: RoomConnection, requirement: Requirement) -> None:
    if isinstance(requirement, RequiredSchema) and requirement.schema is not None:
        check_schema(requirement.schema, what=f"required schema {requirement.name!r}")
        await room.put_schema(requirement.name, requirement.schema)
        return
    if requirement.callable:
        logger.warning(
            "%s is marked callable, but rooms call nothing in for a requirement: waiting for "
            "it to be called in (e.g. taskroom call agent, or taskroom service run)",
            _describe(requirement),
        )
    limit = requirement.timeout
    deadline = None if limit is None else time.monotonic() + limit
    if deadline is None:
        logger.info("waiting with no time limit for %s", _describe(requirement))
    while True:
        if isinstance(requirement, RequiredSchema):
            if requirement.name in await room.list_schemas():
                return
        else:
            instance = await find_toolkit(room, requirement)
            if instance is not None:
                remote_toolkit(room, instance, requirement.tools)  # names a missing tool
                return
        if deadline is not None and time.monotonic() >= deadline:
            raise RoomError(ErrorCode.NOT_FOUND, _missing_message(room, requirement))
        await asyncio.sleep(POLL_SECONDS)


def _describe(requirement: Requirement) -> str:
    if isinstance(requirement, RequiredSchema):
        return f"required schema {requirement.name!r}"
    what = f"required toolkit {requirement.name!r}"
    if requirement.participant_name:
        what += f" hosted by {requirement.participant_name!r}"
    return what


def _missing_message(room: RoomConnection, requirement: Requirement) -> str:
    return (
        f"{_describe(requirement)} did not appear in room {room.room_name!r} "
        f"within {requirement.timeout or 0:g} s"
    )


async def resolve_toolkits(room: RoomConnection, requires: Sequence[Requirement]) -> list[Toolkit]:
    """Proxy toolkits for each RequiredToolkit, built fresh for one task."""
    return [
        await _resolve(room, requirement)
        for requirement in requires
        if isinstance(requirement, RequiredToolkit)
    ]


async def _resolve(room: RoomConnection, requirement: RequiredToolkit) -> Toolkit:
    instance = await find_toolkit(room, requirement)
    if instance is None:
        raise RoomError(
            ErrorCode.NOT_FOUND,
            f"required toolkit {requirement.name!r} is no longer in room {room.room_name!r}",
        )
    return remote_toolkit(
        room, instance, requirement.tools, pin_host=requirement.participant_name is not None
    )


@runtime_checkable
class EventSource(Protocol):
    """A connection that reports room events (``RoomClient`` does)."""

    def on(self, type_: str, handler: Callable[[dict[str, Any]], Any]) -> Callable[[], None]: ...


REFRESH_EVENTS = ("toolkit.registered", "toolkit.unregistered", "disconnected", "reconnected")
"""Events after which cached proxies may point at instances that changed or are gone."""

CacheKey = tuple[str, tuple[str, ...] | None, str | None]


class ToolkitCache:
    """The proxy toolkits of one connection's requirements, reused from task to task.

    Resolving a requirement lists the room's toolkits (a round trip) and builds proxies;
    doing it for every task costs more than a task that answers at once. The cache drops
    everything when the room reports a toolkit registered or unregistered, or the
    connection drops, so the next task sees the room as it is. A connection that cannot
    report events is resolved afresh for every task.
    """

    def __init__(self, room: RoomConnection) -> None:
        self.room = room
        self._built: dict[CacheKey, Toolkit] = {}
        self._generation = 0
        self._unsubscribe: list[Callable[[], None]] = []
        if isinstance(room, EventSource):
            self._unsubscribe = [room.on(event, self._invalidate) for event in REFRESH_EVENTS]

    @property
    def generation(self) -> int:
        """How many times the room's changes have emptied the cache."""
        return self._generation

    def _invalidate(self, _: dict[str, Any]) -> None:
        self._generation += 1
        self._built.clear()

    async def resolve(self, requires: Sequence[Requirement]) -> list[Toolkit]:
        """Proxy toolkits for each RequiredToolkit, from the cache where it is current."""
        if not self._unsubscribe:
            return await resolve_toolkits(self.room, requires)
        toolkits = []
        for requirement in requires:
            if not isinstance(requirement, RequiredToolkit):
                continue
            key = (
                requirement.name,
                tuple(requirement.tools) if requirement.tools else None,
                requirement.participant_name,
            )
            toolkit = self._built.get(key)
            if toolkit is None:
                generation = self._generation
                toolkit = await _resolve(self.room, requirement)
                if generation == self._generation:  # nothing changed while we listed
                    self._built[key] = toolkit
            toolkits.append(toolkit)
        return toolkits

    def close(self) -> None:
        """Stop listening to the room's events."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        self._built.clear()


async def resolve_schema(room: RoomConnection, requirement: RequiredSchema) -> dict[str, Any]:
    if requirement.schema is not None:
        return requirement.schema
    return await room.get_schema(requirement.name)
