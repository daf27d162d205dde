"""The room as toolkits see it: a Protocol, so toolkits sit below the client that implements it.

``RoomClient`` satisfies :class:`RoomConnection` structurally; a toolkit, a requirement or a
test double types against the Protocol and never imports the client (or its WebSocket
library) to do so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from taskroom.host.protocol.messages import ParticipantInfo, ToolkitInstance

if TYPE_CHECKING:
    from taskroom.toolkits.toolkit import Toolkit

ProgressHandler = Callable[[dict[str, Any]], Any]


class RoomConnection(Protocol):
    """What toolkits and requirements use of a room connection: who it is, tool calls,
    toolkit lookups and named schemas."""

    @property
    def room_name(self) -> str: ...

    @property
    def participant(self) -> ParticipantInfo | None:
        """This connection's participant, once the room has accepted it."""
        ...

    async def invoke_tool(
        self,
        toolkit: str,
        tool: str,
        arguments: dict[str, Any] | None = None,
        *,
        participant_id: str | None = None,
        on_progress: ProgressHandler | None = None,
        parent_call_id: str | None = None,
    ) -> Any:
        """Call a tool through the room and return its result."""
        ...

    async def list_toolkits(
        self,
        *,
        participant_id: str | None = None,
        participant_name: str | None = None,
        name: str | None = None,
    ) -> list[ToolkitInstance]: ...

    async def put_schema(self, name: str, schema: dict[str, Any]) -> str: ...

    async def get_schema(self, name: str) -> dict[str, Any]: ...

    async def list_schemas(self) -> dict[str, dict[str, Any]]: ...


class HostingRoom(RoomConnection, Protocol):
    """A room connection that can also offer toolkits of its own, as an agent does."""

    @property
    def closed(self) -> bool: ...

    async def host_toolkit(self, toolkit: Toolkit) -> None:
        """Register ``toolkit``; this connection serves its calls until it leaves."""
        ...

    async def unhost_toolkit(self, name: str) -> None: ...
