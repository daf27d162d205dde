"""The context a tool runs in: who called, for whom, and a way to report progress."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskroom.host.protocol.messages import ParticipantInfo

if TYPE_CHECKING:
    from taskroom.toolkits.room import RoomConnection

logger = logging.getLogger(__name__)

ProgressSink = Callable[[dict[str, Any]], Awaitable[None]]


async def _discard(_: dict[str, Any]) -> None:
    return None


@dataclass
class ToolContext:
    """Passed to every tool call.

    ``caller`` and ``on_behalf_of`` are set by the room, so a tool can trust them.
    Cancellation is delivered as ``asyncio.CancelledError`` in the tool's task.
    """

    caller: ParticipantInfo
    on_behalf_of: ParticipantInfo | None = None
    call_id: str | None = None
    room: RoomConnection | None = None
    task_id: str | None = None
    read_only: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    """Token usage the work consumed; the host sends it back with the result."""
    _progress: ProgressSink = _discard
    _emitting: asyncio.Task[None] | None = field(default=None, repr=False, compare=False)

    async def progress(self, data: dict[str, Any]) -> None:
        """Send a progress event to the caller (and, for tasks, to the task record)."""
        await self._progress(data)

    def emit(self, event: dict[str, Any]) -> None:
        """MeshAgent's synchronous form of :meth:`progress`: the event is sent in the
        background, in order with the others this context emits; the toolkit sends them
        all before the tool's answer (:meth:`flush`)."""
        previous = self._emitting

        async def send() -> None:
            if previous is not None:
                await previous
            try:
                await self._progress(event)
            except Exception as exc:  # progress is best effort, as with progress()
                logger.debug("a progress event was not sent: %r", exc)

        self._emitting = asyncio.get_running_loop().create_task(send())

    async def flush(self) -> None:
        """Wait until every event :meth:`emit` queued has been sent."""
        if self._emitting is not None:
            await self._emitting

    @property
    def principal(self) -> ParticipantInfo:
        """The participant the work is ultimately for: on_behalf_of, else the caller."""
        return self.on_behalf_of or self.caller
