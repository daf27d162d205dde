"""Shared fixtures: a real room server on a free loopback port and tokens for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from taskroom.host.room import RoomServer
from taskroom.host.room_client import RoomClient
from taskroom.host.tokens import create_token

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


@pytest.fixture
async def connect(room_server: RoomServer, make_token):
    """Open RoomClients to the test room; all are closed at teardown."""
    clients: list[RoomClient] = []

    async def open_client(identity: str = "alice", room: str = "test", **kw) -> RoomClient:
        role = kw.pop("role", "user")
        client = RoomClient(room_server.base_url, room, make_token(room, identity, role), **kw)
        await client.connect()
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.close()
