"""The hosting side of a room client: serve the calls the room sends to its toolkits.

Each call runs in its own asyncio task, so a slow tool never stalls the read loop, and a
``tool.cancel`` from the room cancels exactly that task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed

from taskroom.host import protocol
from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.protocol.messages import ToolCallRequest
from taskroom.toolkits.context import ToolContext
from taskroom.toolkits.toolkit import Toolkit

if TYPE_CHECKING:
    from taskroom.host.client.room_client import RoomClient

logger = logging.getLogger(__name__)


class ToolkitHosting:
    """The toolkits one client hosts, and the calls to them it is serving."""

    def __init__(self, client: RoomClient) -> None:
        self.client = client
        self.toolkits: dict[str, Toolkit] = {}
        self.serving: dict[str, asyncio.Task[None]] = {}

    async def host(self, toolkit: Toolkit) -> None:
        """Register a toolkit; keep it only if the room accepts it."""
        self.toolkits[toolkit.name] = toolkit
        try:
            await self.register(toolkit)
        except RoomError:
            self.toolkits.pop(toolkit.name, None)
            raise

    async def register(self, toolkit: Toolkit) -> None:
        await self.client.request("toolkits.register", toolkit.spec().model_dump(mode="json"))

    async def register_all(self) -> None:
        """Register every hosted toolkit again (after a reconnect)."""
        for toolkit in list(self.toolkits.values()):
            await self.register(toolkit)

    def cancel(self, call_id: str) -> None:
        task = self.serving.get(call_id)
        if task is not None:
            task.cancel()

    def cancel_all(self) -> None:
        for task in list(self.serving.values()):
            task.cancel()

    def on_call(self, call_id: Any, call: ToolCallRequest) -> None:
        """Serve a ``tool.call`` frame in a task of its own."""
        if not isinstance(call_id, str):
            logger.warning("ignoring a 'tool.call' frame from the room without a call id")
            return
        task = asyncio.get_running_loop().create_task(self._serve(call_id, call))
        self.serving[call_id] = task
        task.add_done_callback(lambda _t: self.serving.pop(call_id, None))

    async def _serve(self, call_id: str, call: ToolCallRequest) -> None:
        client = self.client
        toolkit = self.toolkits.get(call.toolkit)
        try:
            if toolkit is None:
                raise RoomError(
                    ErrorCode.NOT_FOUND, f"this participant does not host {call.toolkit!r}"
                )

            async def progress(event: dict[str, Any]) -> None:
                await client.send("tool.progress", {"call_id": call_id, "data": event})

            context = ToolContext(
                caller=call.caller,
                on_behalf_of=call.on_behalf_of,
                call_id=call_id,
                room=client,
                task_id=call.task_id,
                read_only=call.read_only,
                metadata={"chain": call.chain, "timeout": call.timeout},
                _progress=progress,
            )
            result = await toolkit.execute(context, call.tool, call.arguments)
            answer: dict[str, Any] = {"result": result}
            if context.usage:
                answer["usage"] = context.usage
            text = protocol.response(call_id, answer)
            if protocol.frame_size(text) > client.room_frame_cap:
                raise RoomError(
                    ErrorCode.FAILED,
                    f"the answer of {protocol.frame_size(text)} bytes exceeds the room's frame "
                    f"cap of {client.room_frame_cap} bytes",
                )
        except asyncio.CancelledError:
            return
        except RoomError as exc:
            text = protocol.error(call_id, exc.code, exc.message, exc.details)
        except Exception as exc:
            logger.info("tool %s.%s raised %r", call.toolkit, call.tool, exc)
            text = protocol.error(
                call_id,
                ErrorCode.FAILED,
                f"{type(exc).__name__}: {exc}",
                {"type": type(exc).__name__},
            )
        with contextlib.suppress(ConnectionClosed):
            await client.send_text(text)
