"""Typed pieces of a routed call: where it comes from, where it goes, how it is answered."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskroom.host.protocol.messages import ParticipantInfo, ToolkitSpec

if TYPE_CHECKING:
    from taskroom.host.server.participant import Participant, Principal

Reply = Callable[[bool, dict[str, Any]], Awaitable[None]]
"""Called once with (ok, data): the response data, or an error's data."""

Progress = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class CallOrigin:
    """Whom a call is for, as the room derives it (never from the caller's frame).

    ``principal`` decides visibility; ``read_only`` is inherited by everything started
    on behalf of a read_only task.
    """

    principal: Principal
    on_behalf_of: ParticipantInfo | None = None
    chain: tuple[str, ...] = ()
    task_id: str | None = None
    read_only: bool = False


@dataclass(frozen=True)
class CallTarget:
    """What to call: a tool of a toolkit, optionally pinned to one hosting participant."""

    toolkit: str
    tool: str
    participant_id: str | None = None


@dataclass(frozen=True)
class Answer:
    """Where the outcome goes. ``caller``/``ref`` name the request that asked, so the
    call is cancelled when that connection leaves or cancels it by its request id."""

    reply: Reply
    progress: Progress
    caller: Participant | None = None
    ref: str | int | None = None
    detached: bool = False
    """The host's answer is replied to in a task of its own, so the host's connection
    reads its next frame at once rather than after ``reply`` (a task's, which stores
    the outcome first): answers arriving together are then stored together."""


@dataclass(frozen=True)
class Instance:
    """One registered toolkit instance: the participant hosting it and its spec."""

    host: Participant
    spec: ToolkitSpec


@dataclass(eq=False)
class PendingCall:
    """One call routed through the room, answered exactly once."""

    call_id: str
    target: CallTarget
    host: Participant
    origin: CallOrigin
    answer: Answer
    timeout: float = 0.0
    """Seconds the room gives the host to answer."""
    done: bool = False

    @property
    def toolkit(self) -> str:
        return self.target.toolkit

    @property
    def tool(self) -> str:
        return self.target.tool

    def wire_data(self, arguments: dict[str, Any], timeout: float) -> dict[str, Any]:
        """The ``tool.call`` data the host receives."""
        behalf = self.origin.on_behalf_of
        return {
            "call_id": self.call_id,
            "toolkit": self.target.toolkit,
            "tool": self.target.tool,
            "arguments": arguments,
            "caller": self.origin.principal.info_data,
            "on_behalf_of": behalf.model_dump() if behalf else None,
            "task_id": self.origin.task_id,
            "read_only": self.origin.read_only,
            "chain": list(self.origin.chain),
            "timeout": timeout,
        }
