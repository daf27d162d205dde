"""A participant speaking the wire protocol by hand, so a test can send any frame an
attacker would (a cited parent id, an escaped lone surrogate, a registration RoomClient
would never build)."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from taskroom.host.auth.tokens import create_token
from taskroom.host.client.connection import websocket_url

from .conftest import SECRET


class RawParticipant:
    def __init__(self, ws: ClientConnection, ready: dict[str, Any]) -> None:
        self.ws = ws
        self.ready = ready
        self.frames: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    @classmethod
    async def open(
        cls, base_url: str, room: str, identity: str, role: str = "user", **token: Any
    ) -> RawParticipant:
        raw = create_token(SECRET, room=room, identity=identity, role=role, **token)
        ws = await ws_connect(
            websocket_url(base_url, room),
            additional_headers={"Authorization": f"Bearer {raw}"},
            max_queue=None,  # keep every event unread rather than stop reading (and pongs)
        )
        ready = json.loads(await ws.recv())
        assert ready["type"] == "room.ready"
        return cls(ws, ready["data"])

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))  # ensure_ascii: "\ud800" goes as an escape

    async def next(self, match: Any, timeout: float = 10) -> dict[str, Any]:
        """The first frame ``match`` accepts, kept ones first; the others are kept."""
        for frame in self.frames:
            if match(frame):
                self.frames.remove(frame)
                return frame
        while True:
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            if match(frame):
                return frame
            self.frames.append(frame)

    async def request(self, type_: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        """The answer frame (``response`` or ``error``) to one request."""
        rid = f"r{next(self._ids)}"
        await self.send({"id": rid, "type": type_, "data": data or {}})
        return await self.next(lambda f: f.get("id") == rid and f["type"] in ("response", "error"))

    async def host_agent(self, name: str) -> None:
        spec = {"name": name, "tools": [{"name": f"run_{name}_task"}], "metadata": {"agent": True}}
        answer = await self.request("toolkits.register", spec)
        assert answer["type"] == "response", answer

    async def next_call(self) -> dict[str, Any]:
        return await self.next(lambda f: f["type"] == "tool.call")

    async def reply(self, call: dict[str, Any], result: Any) -> None:
        await self.send({"id": call["id"], "type": "response", "data": {"result": result}})

    async def ping(self) -> bool:
        return (await self.request("ping"))["data"]["pong"]

    async def close(self) -> None:
        await self.ws.close()
