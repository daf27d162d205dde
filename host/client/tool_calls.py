"""Tool calls made through the room: a handle to await or cancel one in flight."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from taskroom.host.protocol import ErrorCode, RoomError

if TYPE_CHECKING:
    from taskroom.host.client.room_client import RoomClient


class ToolCall:
    """A tool call in flight: await :meth:`result`, or :meth:`cancel` it."""

    def __init__(
        self,
        client: RoomClient,
        call_id: int,
        future: asyncio.Future[dict[str, Any]],
        timeout: float | None = None,
    ):
        self.client = client
        self.call_id = call_id
        self.timeout = timeout
        self._future = future

    @property
    def _limit(self) -> float | None:
        """With a timeout the wait is capped a request timeout past it; without one, the
        room's own deadline for the call ends it."""
        limit = self.timeout
        if limit is not None and self.client.request_timeout is not None:
            limit += self.client.request_timeout
        return limit

    async def result(self) -> Any:
        """The call's result; waiting can be given up (cancelled, timed out) and resumed."""
        return await self._wait(asyncio.shield(self._future))

    async def outcome(self) -> Any:
        """The call's result, for the one waiter that owns the call (``invoke_tool``): the
        answer is awaited directly, with no shield and its extra loop turn; cancelling the
        waiter cancels the wait, and :meth:`cancel` then still tells the room."""
        return await self._wait(self._future)

    async def _wait(self, answer: asyncio.Future[dict[str, Any]]) -> Any:
        limit = self._limit
        try:
            data = await answer if limit is None else await asyncio.wait_for(answer, limit)
        except TimeoutError:
            raise RoomError(
                ErrorCode.TIMEOUT, f"no answer to tool call {self.call_id} within {limit:g} s"
            ) from None
        return data.get("result")

    async def cancel(self) -> None:
        """Ask the room to cancel; the host is told and :meth:`result` raises ``cancelled``."""
        if self._future.done() and not self._future.cancelled():
            return  # answered already
        with contextlib.suppress(RoomError):
            await self.client.request("tools.cancel", {"call_id": self.call_id})
