"""RoomClient: a participant's connection to a room, on the ``websockets`` library.

Agents, the CLI, invoke scripts, the MCP gateway and tests all use this one client. It
answers requests by id, hosts toolkits (serving each call in its own asyncio task), and
reconnects with backoff, registering again everything it hosts. Every frame it receives
is checked against the protocol's message table; a frame that does not fit is logged
and dropped, so a faulty room cannot break the read loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from taskroom.host import protocol
from taskroom.host.client.agents import AgentsClient
from taskroom.host.client.connection import open_room
from taskroom.host.client.frame_writer import FrameWriter
from taskroom.host.client.hosting import ToolkitHosting
from taskroom.host.client.redirect import open_owner
from taskroom.host.client.tasks import TasksClient
from taskroom.host.client.tool_calls import ToolCall
from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.protocol.frames import describe_validation
from taskroom.host.protocol.messages import (
    ParticipantInfo,
    RoomDismissed,
    RoomReady,
    ToolCallRequest,
    ToolCancel,
    ToolkitInstance,
    ToolProgress,
)
from taskroom.host.protocol.table import MESSAGES, request_data
from taskroom.toolkits.toolkit import Toolkit

logger = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], Any]
ProgressHandler = Callable[[dict[str, Any]], Any]

DEFAULT_REQUEST_TIMEOUT = 90.0
"""How long a request waits for its answer unless told otherwise: longer than anything
the room itself waits for (a ``room.call`` webhook gets 60 s), so an answer the room
could not tie to its request fails the caller instead of hanging it."""


class RoomClient:
    """A connection to one room. Use as ``async with RoomClient(url, room, token) as room``."""

    def __init__(
        self,
        url: str,
        room: str,
        token: str,
        *,
        reconnect: bool = True,
        max_frame_bytes: int = protocol.MAX_FRAME_BYTES,
        backoff: tuple[float, float] = (0.1, 5.0),
        ping_interval: float | None = 20.0,
        request_timeout: float | None = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        self.base_url = url
        """Where to join: one address, or several separated by commas (cluster nodes)."""
        self.node_url: str | None = None
        """The node serving the room on the current connection (the owner, in a cluster)."""
        self.room_name = room
        self.token = token
        self.reconnect = reconnect
        self.max_frame_bytes = max_frame_bytes
        self.backoff = backoff
        self.ping_interval = ping_interval
        self.request_timeout = request_timeout
        """Default wait for an answer, in seconds; None waits as long as it takes."""
        self.participant: ParticipantInfo | None = None
        self.participants: dict[str, ParticipantInfo] = {}
        self.ready_data: dict[str, Any] = {}
        self.room_frame_cap = max_frame_bytes
        self.connected = asyncio.Event()
        self.hosting = ToolkitHosting(self)
        self.hosted = self.hosting.toolkits
        self._ws: ClientConnection | None = None
        self._writer: FrameWriter | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._progress: dict[int | str, ProgressHandler] = {}
        self._handlers: dict[str, list[EventHandler]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        self._dismissed: str | None = None
        self._background: set[asyncio.Task[None]] = set()

    # --- lifecycle ----------------------------------------------------------------

    async def __aenter__(self) -> RoomClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def connect(self) -> None:
        """Join the room; raises RoomError (permission_denied) if the token is refused."""
        await self._open()
        self._reader = asyncio.get_running_loop().create_task(self._run())

    async def _open(self) -> None:
        self.node_url = await open_owner(self.base_url, self._open_at)

    async def _open_at(self, node_url: str) -> None:
        ws, ready, data = await open_room(
            node_url,
            self.room_name,
            self.token,
            max_size=self.max_frame_bytes * 4,
            ping_interval=self.ping_interval,
        )
        self._ws = ws
        self._writer = FrameWriter(ws)
        self._on_ready(data, ready)
        self.connected.set()

    def _on_ready(self, data: dict[str, Any], ready: RoomReady) -> None:
        self.ready_data = data
        self.room_frame_cap = ready.max_frame_bytes
        self.participant = ready.participant
        self.participants = {p.id: p for p in ready.participants}

    async def close(self) -> None:
        """Leave the room; everything this client hosted is unregistered by the room."""
        self._closing = True
        self.hosting.cancel_all()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        self._fail_pending("the client closed")
        self.connected.clear()

    @property
    def agents(self) -> AgentsClient:
        """MeshAgent's agent API: ask, invoke_tool, list_toolkits, list_agents, make_call."""
        return AgentsClient(self)

    @property
    def tasks(self) -> TasksClient:
        """The room's task API (start, get, result, wait, cancel, list, subscribe)."""
        return TasksClient(self)

    @property
    def closed(self) -> bool:
        return self._closing

    async def _run(self) -> None:
        while True:
            ws = self._ws
            assert ws is not None
            try:
                async for raw in ws:
                    await self._on_frame(raw)
            except ConnectionClosed:
                pass
            if self._closing:
                return
            self.connected.clear()
            self._fail_pending("connection to the room was lost")
            self.hosting.cancel_all()
            if ws.close_code == protocol.DISMISSED_CLOSE_CODE and self._dismissed is None:
                self._dismissed = "dismissed by the room"
            reason = self._dismissed or "connection lost"
            self._emit("disconnected", {"reason": reason})
            if not self.reconnect or self._dismissed is not None:
                self._closing = True
                self._emit("closed", {"reason": reason})
                return
            await self._reconnect()

    async def _reconnect(self) -> None:
        delay = self.backoff[0]
        while not self._closing:
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
            try:
                await self._open()
            except RoomError as exc:
                if exc.code == ErrorCode.PERMISSION_DENIED:
                    logger.error("reconnect refused: %s", exc.message)
                    self._closing = True
                    self._emit("closed", {"reason": exc.message})
                    return
                logger.info("reconnect to %s failed: %s", self.room_name, exc.message)
                delay = min(delay * 2, self.backoff[1])
                continue
            task = asyncio.get_running_loop().create_task(self._register_again())
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return

    async def _register_again(self) -> None:
        """Re-register hosted toolkits; runs beside the read loop, which reads the answers."""
        try:
            await self.hosting.register_all()
        except (RoomError, ConnectionClosed) as exc:
            logger.warning("re-registering toolkits failed: %s", exc)
            return
        logger.info("reconnected to room %s", self.room_name)
        self._emit("reconnected", {})

    def _fail_pending(self, reason: str) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(RoomError(ErrorCode.UNAVAILABLE, reason))
        self._pending.clear()
        self._progress.clear()

    # --- frames ---------------------------------------------------------------------------

    async def _on_frame(self, raw: str | bytes) -> None:
        try:
            frame = json.loads(raw)
            type_ = frame["type"]
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring malformed frame from the room")
            return
        if type_ == protocol.RESPONSE or type_ == protocol.ERROR:
            self._on_answer(type_, frame)
            return
        spec = MESSAGES.get(type_)
        if spec is None or spec.kind not in ("event", "host"):
            logger.warning("ignoring a %r frame from the room: not an event", type_)
            return
        data = frame.get("data")
        if data is None:
            data = {}
        try:
            message = spec.model.model_validate(data)
        except ValidationError as exc:
            logger.warning(
                "ignoring an invalid %r frame from the room: %s", type_, describe_validation(exc)
            )
            return
        if isinstance(message, ToolCallRequest):
            self.hosting.on_call(frame.get("id"), message)
        elif isinstance(message, ToolCancel):
            self.hosting.cancel(message.call_id)
        elif isinstance(message, ToolProgress):
            handler = self._progress.get(message.call_id)
            if handler is not None:
                _call_soon(handler, message.data)
        else:
            if isinstance(message, ParticipantInfo):
                if type_ == "participant.joined":
                    self.participants[message.id] = message
                else:
                    self.participants.pop(message.id, None)
            elif isinstance(message, RoomDismissed):
                self._dismissed = message.reason or "dismissed by the room"
            self._emit(type_, data)

    def _on_answer(self, type_: str, frame: dict[str, Any]) -> None:
        fid = frame.get("id")
        fut = self._pending.pop(fid, None) if isinstance(fid, int) else None
        if isinstance(fid, str | int):
            self._progress.pop(fid, None)
        data = frame.get("data")
        if not isinstance(data, dict):
            data = {}
        if fut is None:
            if type_ == protocol.ERROR:
                logger.warning("room error: %s", data)
            return
        if fut.done():
            return
        if type_ == protocol.RESPONSE:
            fut.set_result(data)
        else:
            fut.set_exception(RoomError.from_data(data))

    def _emit(self, type_: str, data: dict[str, Any]) -> None:
        for handler in list(self._handlers.get(type_, ())):
            _call_soon(handler, data)
        for handler in list(self._handlers.get("*", ())):
            _call_soon(handler, {"type": type_, "data": data})

    # --- requests -----------------------------------------------------------------------------

    async def send_text(self, text: str) -> None:
        """Send a frame already encoded (it leaves with the others of this loop turn)."""
        if self._writer is None:
            raise RoomError(ErrorCode.UNAVAILABLE, "not connected to the room")
        await self._writer.send(text)

    async def send(self, type_: str, data: dict[str, Any] | None = None) -> None:
        """Send an event (no answer expected)."""
        await self.send_text(protocol.encode(type_, data))

    async def request(
        self,
        type_: str,
        data: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        on_progress: ProgressHandler | None = None,
        on_sent: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """Send a request and await its answer; an ``error`` frame raises RoomError.

        ``timeout`` defaults to the client's ``request_timeout``; when it passes, the
        request fails with ``timeout``. ``on_sent`` is told the request's id once it is
        sent, for requests the room lets you cancel by it.
        """
        if timeout is None:
            timeout = self.request_timeout
        fut, rid = await self._start(type_, data, on_progress)
        if on_sent is not None:
            on_sent(rid)
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise RoomError(
                ErrorCode.TIMEOUT, f"no answer to {type_} within {timeout:g} s"
            ) from None
        finally:
            self._pending.pop(rid, None)
            self._progress.pop(rid, None)

    async def _start(
        self, type_: str, data: dict[str, Any] | None, on_progress: ProgressHandler | None
    ) -> tuple[asyncio.Future[dict[str, Any]], int]:
        if not self.connected.is_set():
            if self._closing:
                raise RoomError(ErrorCode.UNAVAILABLE, "the client is closed")
            try:
                await asyncio.wait_for(self.connected.wait(), 30)
            except TimeoutError:
                raise RoomError(ErrorCode.UNAVAILABLE, "not connected to the room") from None
        rid = next(self._ids)
        text = protocol.encode(type_, data, rid)
        if protocol.frame_size(text) > self.room_frame_cap:
            raise RoomError(
                ErrorCode.INVALID_REQUEST,
                f"{type_} of {protocol.frame_size(text)} bytes exceeds the room's frame cap "
                f"of {self.room_frame_cap} bytes",
            )
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        if on_progress is not None:
            self._progress[rid] = on_progress
        try:
            await self.send_text(text)
        except ConnectionClosed:
            self._pending.pop(rid, None)
            raise RoomError(ErrorCode.UNAVAILABLE, "connection to the room was lost") from None
        return fut, rid

    # --- tools --------------------------------------------------------------------------------

    async def start_tool_call(
        self,
        toolkit: str,
        tool: str,
        arguments: dict[str, Any] | None = None,
        *,
        participant_id: str | None = None,
        timeout: float | None = None,
        on_progress: ProgressHandler | None = None,
        parent_call_id: str | None = None,
    ) -> ToolCall:
        """Start a call and return a handle, so the caller can cancel it later."""
        data: dict[str, Any] = {"toolkit": toolkit, "tool": tool, "arguments": arguments or {}}
        if participant_id:
            data["participant_id"] = participant_id
        if timeout:
            data["timeout"] = timeout
        if parent_call_id:
            data["parent_call_id"] = parent_call_id
        fut, rid = await self._start("tools.invoke", data, on_progress)
        return ToolCall(self, rid, fut, timeout)

    async def invoke_tool(
        self,
        toolkit: str,
        tool: str,
        arguments: dict[str, Any] | None = None,
        *,
        participant_id: str | None = None,
        timeout: float | None = None,
        on_progress: ProgressHandler | None = None,
        parent_call_id: str | None = None,
    ) -> Any:
        """Call a tool through the room and return its (validated) result."""
        call = await self.start_tool_call(
            toolkit,
            tool,
            arguments,
            participant_id=participant_id,
            timeout=timeout,
            on_progress=on_progress,
            parent_call_id=parent_call_id,
        )
        try:
            return await call.outcome()
        except asyncio.CancelledError:
            await asyncio.shield(call.cancel())
            raise

    async def list_toolkits(
        self,
        *,
        participant_id: str | None = None,
        participant_name: str | None = None,
        name: str | None = None,
    ) -> list[ToolkitInstance]:
        query = request_data(
            "toolkits.list",
            participant_id=participant_id or None,
            participant_name=participant_name or None,
            name=name or None,
        )
        data = await self.request("toolkits.list", query)
        return [ToolkitInstance(**t) for t in data["toolkits"]]

    async def host_toolkit(self, toolkit: Toolkit) -> None:
        """Register a toolkit; calls to it are served by this client until it leaves."""
        await self.hosting.host(toolkit)

    async def unhost_toolkit(self, name: str) -> None:
        self.hosted.pop(name, None)
        await self.request("toolkits.unregister", request_data("toolkits.unregister", name=name))

    # --- schemas and participants ---------------------------------------------------------------

    async def put_schema(self, name: str, schema: dict[str, Any]) -> str:
        data = request_data("schemas.put", name=name, schema=schema)
        return (await self.request("schemas.put", data))["action"]

    async def get_schema(self, name: str) -> dict[str, Any]:
        return (await self.request("schemas.get", request_data("schemas.get", name=name)))["schema"]

    async def list_schemas(self) -> dict[str, dict[str, Any]]:
        data = await self.request("schemas.list")
        return {s["name"]: s["schema"] for s in data["schemas"]}

    async def remove_schema(self, name: str) -> None:
        await self.request("schemas.remove", request_data("schemas.remove", name=name))

    async def list_participants(self) -> list[ParticipantInfo]:
        data = await self.request("participants.list")
        return [ParticipantInfo(**p) for p in data["participants"]]

    # --- events ---------------------------------------------------------------------------------

    def on(self, type_: str, handler: EventHandler) -> Callable[[], None]:
        """Call ``handler(data)`` for each event of ``type_`` ("*" for all); returns an
        unsubscribe function."""
        self._handlers.setdefault(type_, []).append(handler)
        return lambda: self._handlers.get(type_, []).remove(handler)

    async def wait_for_event(
        self,
        type_: str,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        def handler(data: dict[str, Any]) -> None:
            if not fut.done() and (predicate is None or predicate(data)):
                fut.set_result(data)

        off = self.on(type_, handler)
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise RoomError(ErrorCode.TIMEOUT, f"no {type_} event within {timeout:g} s") from None
        finally:
            off()


def _call_soon(handler: Callable[[dict[str, Any]], Any], data: dict[str, Any]) -> None:
    """Run an event handler without letting it stall the read loop."""
    try:
        result = handler(data)
    except Exception:
        logger.exception("event handler failed")
        return
    if isinstance(result, Awaitable):
        asyncio.ensure_future(result)
