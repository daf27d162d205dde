"""The join gate of a cluster node: serve the room here, or send the client to its owner.

Redirect, not proxy: the owner holds the room's whole state in memory, so the client
talks to it directly and every frame of the hot path crosses one node, not two. The
redirect is a WebSocket close frame rather than an HTTP 307, because browsers do not
expose a redirect during a WebSocket handshake; every client can read a close reason.
"""

from __future__ import annotations

import logging

from aiohttp import web

from taskroom.host.protocol import RoomError
from taskroom.host.protocol.frames import ROOM_MOVED_CLOSE_CODE
from taskroom.host.server.app import SUBPROTOCOL
from taskroom.host.server.cluster.node import ClusterNode

logger = logging.getLogger(__name__)

MAX_REASON_BYTES = 123
"""A WebSocket close reason holds at most 123 bytes: the longest node URL there is."""


class JoinGate:
    """Decides, before a participant joins, whether this node serves the room."""

    def __init__(self, node: ClusterNode) -> None:
        self.node = node

    async def __call__(self, request: web.Request, room: str) -> web.StreamResponse | None:
        try:
            owner = await self.node.claim(room)
        except RoomError as exc:
            return web.json_response({"error": exc.message}, status=503)
        if owner is None:
            return None
        return await redirect(request, owner)


async def redirect(request: web.Request, owner_url: str) -> web.WebSocketResponse:
    """Accept the WebSocket only to close it with the owner's URL as the reason."""
    ws = web.WebSocketResponse(protocols=(SUBPROTOCOL,))
    await ws.prepare(request)
    await ws.close(code=ROOM_MOVED_CLOSE_CODE, message=owner_url.encode())
    logger.debug("sent a client of %s to %s", request.path, owner_url)
    return ws
