"""One room identity per MCP client over HTTP: a client's bearer token is its own seat.

A client that sends ``Authorization: Bearer <room token>`` gets its own RoomClient joined
with that token, so the room sees it as itself: its tasks are its own, and it sees only
the tasks and toolkits its token allows. A client without the header acts as the
gateway, as over stdio.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from taskroom.host.client.room_client import RoomClient
from taskroom.host.protocol import ErrorCode, RoomError

logger = logging.getLogger(__name__)

MAX_CLIENTS = 256
"""Distinct tokens held at once; the least recently used seat is closed beyond it."""

OnJoin = Callable[[RoomClient], Awaitable[None]]


class ClientRooms:
    """RoomClients by bearer token, joined on first use and closed with the gateway."""

    def __init__(
        self, base: RoomClient, *, on_join: OnJoin | None = None, max_clients: int = MAX_CLIENTS
    ) -> None:
        self.base = base
        self.on_join = on_join
        self.max_clients = max_clients
        self._clients: dict[str, RoomClient] = {}
        self._lock = asyncio.Lock()

    async def for_request(self, request: Any) -> RoomClient:
        """The RoomClient for the HTTP request's token, else the gateway's own."""
        headers = getattr(request, "headers", None)
        header = headers.get("authorization") if headers is not None else None
        if not header:
            return self.base
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise RoomError(
                ErrorCode.PERMISSION_DENIED,
                "the Authorization header must be 'Bearer <room token>'",
            )
        async with self._lock:
            client = self._clients.pop(token, None)
            if client is None or client.closed:
                client = await self._join(token)
            self._clients[token] = client  # most recently used last
            while len(self._clients) > self.max_clients:
                await self._clients.pop(next(iter(self._clients))).close()
        return client

    async def _join(self, token: str) -> RoomClient:
        client = RoomClient(self.base.base_url, self.base.room_name, token)
        try:
            await client.connect()
        except RoomError as exc:
            await client.close()
            raise RoomError(
                ErrorCode.PERMISSION_DENIED,
                f"room {self.base.room_name!r} refused the token this client presented: "
                f"{exc.message}",
            ) from None
        who = client.participant.name if client.participant else "?"
        logger.info("an HTTP client joined room %s as %s", self.base.room_name, who)
        if self.on_join is not None:
            await self.on_join(client)
        return client

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()
