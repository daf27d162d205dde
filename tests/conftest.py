"""Shared fixtures: a real room server on a free loopback port and tokens for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from taskroom.host.auth.tokens import create_token
from taskroom.host.client.room_client import RoomClient
from taskroom.host.server import RoomServer
from taskroom.host.server.build import build_room_server

SECRET = "test-secret-" + "x" * 32


@pytest.fixture
def secret() -> str:
    return SECRET


@pytest.fixture
async def room_server(tmp_path) -> AsyncIterator[RoomServer]:
    server = RoomServer(data_dir=tmp_path / "room-data", secret=SECRET, heartbeat=2.0)
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def make_token() -> Callable[..., str]:
    def make(room: str = "test", identity: str = "alice", role: str = "user", **kw) -> str:
        return create_token(SECRET, room=room, identity=identity, role=role, **kw)

    return make


class ClientPool:
    """Opens RoomClients to one server, defaulting to one room; closes them all at teardown."""

    def __init__(self, base_url: str, room: str) -> None:
        self.base_url = base_url
        self.room = room
        self.clients: list[RoomClient] = []

    async def __call__(
        self, identity: str = "alice", role: str = "user", *, room: str | None = None, **kw
    ) -> RoomClient:
        room = room or self.room
        token = create_token(SECRET, room=room, identity=identity, role=role)
        client = RoomClient(self.base_url, room, token, **kw)
        await client.connect()
        self.clients.append(client)
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


@pytest.fixture
def room_name() -> str:
    """The room the client fixtures join; a test module may override it."""
    return "test"


@pytest.fixture
async def connect(room_server: RoomServer, room_name: str) -> AsyncIterator[ClientPool]:
    """Clients of the bare room server (routing, toolkits, schemas; no tasks)."""
    pool = ClientPool(room_server.base_url, room_name)
    yield pool
    await pool.close()


@pytest.fixture
async def full_room(tmp_path) -> AsyncIterator[RoomServer]:
    """The room server as shipped: tasks, agent calls and the Studio included."""
    server = build_room_server(data_dir=tmp_path / "full-room-data", secret=SECRET)
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def join(full_room: RoomServer, room_name: str) -> AsyncIterator[ClientPool]:
    """Clients of the full room server."""
    pool = ClientPool(full_room.base_url, room_name)
    yield pool
    await pool.close()
