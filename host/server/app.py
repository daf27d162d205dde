"""The room server: one aiohttp application, one port, many rooms by name."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import re
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from taskroom.host import protocol
from taskroom.host.auth.tokens import ALL_ROOMS, ParticipantToken, TokenError, load_secret
from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.server.participant import Participant
from taskroom.host.server.peer import DEFAULT_SEND_QUEUE_BYTES, QueuedPeer
from taskroom.host.server.room import Room
from taskroom.host.server.ws_batch import batch_sender, immediate_writer

logger = logging.getLogger(__name__)

ROOM_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
HEARTBEAT_SECONDS = 15.0
SUBPROTOCOL = "taskroom"
BEARER_SUBPROTOCOL = "taskroom.bearer."
"""A browser offers ``["taskroom", "taskroom.bearer.<token>"]``; the room picks the first."""

RoomSetup = Callable[["RoomServer", Room], Awaitable[None] | None]
JoinGate = Callable[[web.Request, str], Awaitable[web.StreamResponse | None]]
"""Before a join: None lets it proceed here, a response answers it instead (a cluster
node sends the client to the room's owner)."""
HealthReport = Callable[[], dict[str, Any]]
"""A part of ``/healthz``; ``"degraded": True`` in it marks the whole node degraded."""


class RoomServer:
    """Hosts rooms over WebSocket at ``/rooms/{room}``; each room is made on first join.

    ``room_setup`` callbacks extend each new room (task store, calls into rooms), so the
    core stays small and each capability lives in its own module.
    """

    def __init__(
        self,
        *,
        data_dir: Path | str = ".taskroom",
        secret: str | None = None,
        max_frame_bytes: int = protocol.MAX_FRAME_BYTES,
        heartbeat: float = HEARTBEAT_SECONDS,
        max_send_queue_bytes: int = DEFAULT_SEND_QUEUE_BYTES,
        room_setup: list[RoomSetup] | None = None,
        public_url: str | None = None,
        webhook_secret: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.secret = secret or load_secret(self.data_dir)
        self.max_frame_bytes = max_frame_bytes
        self.heartbeat = heartbeat
        self.max_send_queue_bytes = max_send_queue_bytes
        self.rooms: dict[str, Room] = {}
        self.room_setup: list[RoomSetup] = list(room_setup or [])
        self.start_hooks: list[Callable[[], Awaitable[None]]] = []
        self.stop_hooks: list[Callable[[], Awaitable[None]]] = []
        self._opening: dict[str, asyncio.Future[Room]] = {}
        self.join_gate: JoinGate | None = None
        self.health_reports: dict[str, HealthReport] = {}
        self.app = web.Application()
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/rooms/{room}", self._join)
        self.app.on_shutdown.append(self._on_shutdown)
        self.base_url: str | None = None
        self.public_url = public_url.rstrip("/") if public_url else None
        """The URL agents are told to join; needed when binding 0.0.0.0 or behind a proxy."""
        self.webhook_secret = webhook_secret
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()

    async def room(self, name: str) -> Room:
        """The room called ``name``, set up on first use (concurrent joins share one setup)."""
        room = self.rooms.get(name)
        if room is not None:
            return room
        opening = self._opening.get(name)
        if opening is not None:
            return await asyncio.shield(opening)
        future: asyncio.Future[Room] = asyncio.get_running_loop().create_future()
        self._opening[name] = future
        try:
            room = Room(name, max_frame_bytes=self.max_frame_bytes)
            for setup in self.room_setup:
                result = setup(self, room)
                if inspect.isawaitable(result):
                    await result
            self.rooms[name] = room
            future.set_result(room)
            return room
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: a joiner that shares it re-raises it
            raise
        finally:
            self._opening.pop(name, None)

    def authenticate(self, request: web.Request, room: str) -> ParticipantToken:
        """The token from ``Authorization: Bearer``, else from the WebSocket subprotocol
        ``taskroom.bearer.<token>`` (browsers cannot set headers, and a subprotocol stays
        out of URLs and access logs), else from ``?token=``."""
        header = request.headers.get("Authorization", "")
        raw = header[7:].strip() if header.lower().startswith("bearer ") else ""
        for offered in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
            offered = offered.strip()
            if not raw and offered.startswith(BEARER_SUBPROTOCOL):
                raw = offered[len(BEARER_SUBPROTOCOL) :]
        raw = raw or request.query.get("token", "")
        if not raw:
            raise TokenError("no token: send 'Authorization: Bearer <token>'")
        token = ParticipantToken.from_jwt(raw, self.secret)
        if token.room not in (room, ALL_ROOMS):
            raise TokenError(f"token is for room {token.room!r}, not {room!r}")
        return token

    async def _healthz(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = {"status": "ok", "rooms": len(self.rooms)}
        for part, report in self.health_reports.items():
            body[part] = report()
            if body[part].get("degraded"):
                body["status"] = "degraded"
        return web.json_response(body, status=200 if body["status"] == "ok" else 503)

    async def _join(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["room"]
        if not ROOM_NAME.match(name):
            return web.json_response({"error": f"invalid room name {name!r}"}, status=400)
        try:
            token = self.authenticate(request, name)
        except TokenError as exc:
            return web.json_response({"error": str(exc)}, status=401)
        if self.join_gate is not None:
            answer = await self.join_gate(request, name)
            if answer is not None:
                return answer
        ws = web.WebSocketResponse(
            protocols=(SUBPROTOCOL,),
            heartbeat=self.heartbeat,
            max_msg_size=self.max_frame_bytes * 4,
            autoping=True,
        )
        await ws.prepare(request)
        room = await self.room(name)
        peer = QueuedPeer(
            ws.send_str,
            _closer(ws, request),
            max_queue_bytes=self.max_send_queue_bytes,
            name=f"{token.identity} in {name}",
            send_batch=batch_sender(ws, request),
            write_now=immediate_writer(ws, request),
        )
        participant = Participant(peer, token)
        self._sockets.add(ws)
        await room.join(participant)
        logger.info("%s joined room %s", participant, name)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_text(room, participant, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    participant.send(
                        protocol.error(
                            None,
                            ErrorCode.INVALID_REQUEST,
                            "binary frames are not supported; send JSON text",
                        )
                    )
                elif msg.type == WSMsgType.ERROR:
                    logger.info("connection of %s failed: %s", participant, ws.exception())
                del msg  # a frame of several MB must not stay alive until the next one
        finally:
            self._sockets.discard(ws)
            await room.leave(participant)
            await peer.close(1000, "left")
            logger.info("%s left room %s", participant, name)
        return ws

    async def _on_text(self, room: Room, participant: Participant, text: str) -> None:
        try:
            frame = protocol.decode(text, self.max_frame_bytes)
        except RoomError as exc:
            participant.send(protocol.error(exc.details.get("id"), exc.code, exc.message))
            return
        await room.dispatch(participant, frame)

    async def _on_shutdown(self, app: web.Application) -> None:
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"room server shutting down")

    async def start(self, host: str = "127.0.0.1", port: int = 8765) -> str:
        """Serve until :meth:`stop`; returns the base URL (port 0 picks a free one)."""
        for hook in self.start_hooks:
            await hook()
        self._runner = web.AppRunner(self.app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []  # noqa: SLF001
        bound = sockets[0].getsockname()[1] if sockets else port
        self.base_url = f"http://{host}:{bound}"
        logger.info("room server listening on %s", self.base_url)
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for room in self.rooms.values():
            for hook in room.close_hooks:
                await hook()
        for hook in self.stop_hooks:
            await hook()

    async def serve_forever(
        self, host: str, port: int, *, started: Callable[[str], None] | None = None
    ) -> None:
        """Serve until cancelled or sent SIGTERM; either way stop cleanly (a cluster node
        hands its rooms back at once rather than leaving them to lapse). ``started`` hears
        the base URL once the port is bound."""
        try:
            url = await self.start(host, port)
            if started is not None:
                started(url)
            stopping = asyncio.Event()
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
            await stopping.wait()
        finally:
            await self.stop()

    async def __aenter__(self) -> RoomServer:
        await self.start(port=0)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()


def _closer(
    ws: web.WebSocketResponse, request: web.Request
) -> Callable[[int, str], Awaitable[None]]:
    """Close a socket with a reason; if the peer does not take the close frame within a
    few seconds (it stopped reading), drop the TCP connection."""

    async def close(code: int, reason: str) -> None:
        transport = request.transport
        try:
            await asyncio.wait_for(ws.close(code=code, message=reason.encode()[:120]), 5.0)
        except (TimeoutError, ConnectionError, RuntimeError, asyncio.CancelledError) as exc:
            # A cancelled send queue cancels aiohttp's shared drain waiter, so ws.close
            # can raise CancelledError without this task being cancelled: abort anyway.
            if transport is not None:
                transport.abort()
            task = asyncio.current_task()
            if isinstance(exc, asyncio.CancelledError) and task and task.cancelling():
                raise

    return close
