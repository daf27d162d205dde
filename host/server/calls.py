"""In-flight tool calls: who asked, who hosts, when it expires, how to answer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskroom.host.protocol.messages import ParticipantInfo

if TYPE_CHECKING:
    from taskroom.host.server.participant import Participant

Reply = Callable[[bool, dict[str, Any]], Awaitable[None]]
"""Called once with (ok, data): the response data, or an error's data."""

Progress = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(eq=False)
class PendingCall:
    """One call routed through the room, answered exactly once."""

    call_id: str
    toolkit: str
    tool: str
    host: Participant
    caller: ParticipantInfo
    on_behalf_of: ParticipantInfo | None
    reply: Reply
    progress: Progress
    caller_participant: Participant | None = None
    caller_ref: str | int | None = None
    task_id: str | None = None
    read_only: bool = False
    chain: list[str] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None
    done: bool = False

    def wire_data(self, arguments: dict[str, Any], timeout: float) -> dict[str, Any]:
        """The ``tool.call`` data the host receives."""
        return {
            "call_id": self.call_id,
            "toolkit": self.toolkit,
            "tool": self.tool,
            "arguments": arguments,
            "caller": self.caller.model_dump(),
            "on_behalf_of": self.on_behalf_of.model_dump() if self.on_behalf_of else None,
            "task_id": self.task_id,
            "read_only": self.read_only,
            "chain": self.chain,
            "timeout": timeout,
        }
