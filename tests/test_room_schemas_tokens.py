"""Room schemas, participant tokens and grants, against a real room server."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from taskroom.host.auth.tokens import (
    DEFAULT_GRANTS,
    SECRET_ENV,
    SECRET_FILE,
    ParticipantToken,
    TokenError,
    create_token,
    load_secret,
)
from taskroom.host.client.connection import websocket_url
from taskroom.host.client.room_client import RoomClient
from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.toolkits import Toolkit, tool


async def eventually(pred, timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def echo_kit(name: str = "kit") -> Toolkit:
    @tool
    async def echo(text: str) -> str:
        """Echo."""
        return text

    return Toolkit(name=name, tools=[echo])


# --- schemas --------------------------------------------------------------------------------

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name"],
}


async def test_schemas_round_trip_with_change_events(connect):
    alice = await connect("alice")
    bob = await connect("bob")
    changes: list[dict[str, Any]] = []
    bob.on("schema.changed", changes.append)

    assert await alice.put_schema("person", PERSON) == "created"
    assert await bob.get_schema("person") == PERSON
    await eventually(lambda: len(changes) == 1)
    assert changes[0] == {"name": "person", "action": "created"}

    updated = {**PERSON, "required": ["name", "age"]}
    assert await alice.put_schema("person", updated) == "updated"
    assert await alice.put_schema("pet", {"type": "string"}) == "created"
    assert await bob.get_schema("person") == updated
    assert await bob.list_schemas() == {"person": updated, "pet": {"type": "string"}}
    await eventually(lambda: len(changes) == 3)
    assert changes[1:] == [
        {"name": "person", "action": "updated"},
        {"name": "pet", "action": "created"},
    ]

    # a late joiner is greeted with the schema names
    carol = await connect("carol")
    assert carol.ready_data["schemas"] == ["person", "pet"]

    # a schema belongs to whoever created it: bob can neither overwrite nor remove it
    for attempt in (bob.remove_schema("pet"), bob.put_schema("pet", {"type": "integer"})):
        with pytest.raises(RoomError) as denied:
            await attempt
        assert denied.value.code == ErrorCode.PERMISSION_DENIED
    await alice.remove_schema("pet")
    await eventually(lambda: len(changes) == 4)
    assert changes[3] == {"name": "pet", "action": "removed"}
    assert await alice.list_schemas() == {"person": updated}

    with pytest.raises(RoomError) as err:
        await alice.get_schema("pet")
    assert err.value.code is ErrorCode.NOT_FOUND
    assert "no schema named 'pet'" in err.value.message
    with pytest.raises(RoomError) as err:
        await alice.remove_schema("pet")
    assert err.value.code is ErrorCode.NOT_FOUND
    assert len(changes) == 4


async def test_invalid_schema_is_refused_clearly(connect):
    alice = await connect("alice")
    changes: list[dict[str, Any]] = []
    alice.on("schema.changed", changes.append)

    with pytest.raises(RoomError) as err:
        await alice.put_schema("broken", {"type": "no-such-type"})
    assert err.value.code is ErrorCode.INVALID_REQUEST
    assert "schema 'broken' is not a valid JSON Schema" in err.value.message
    assert "no-such-type" in err.value.message

    with pytest.raises(RoomError) as err:
        await alice.put_schema("broken", {"properties": {"a": {"minimum": "zero"}}})
    assert err.value.code is ErrorCode.INVALID_REQUEST
    assert "'zero' is not of type 'number'" in err.value.message

    with pytest.raises(RoomError) as err:
        await alice.request("schemas.put", {"name": "broken", "schema": "a string"})
    assert err.value.code is ErrorCode.INVALID_REQUEST
    assert "schema" in err.value.message

    with pytest.raises(RoomError) as err:
        await alice.put_schema("bad name", {"type": "string"})
    assert err.value.code is ErrorCode.INVALID_REQUEST
    assert "name" in err.value.message

    with pytest.raises(RoomError) as err:
        await alice.get_schema("broken")
    assert err.value.code is ErrorCode.NOT_FOUND
    await alice.request("ping")
    assert changes == []
    assert await alice.list_schemas() == {}


async def test_schemas_are_per_room(room_server, connect):
    alice = await connect("alice", room="one")
    bob = await connect("bob", room="two")
    await alice.put_schema("thing", {"type": "object"})
    assert await bob.list_schemas() == {}
    with pytest.raises(RoomError) as err:
        await bob.get_schema("thing")
    assert err.value.code is ErrorCode.NOT_FOUND
    assert "'two'" in err.value.message


# --- tokens ---------------------------------------------------------------------------------

OTHER_SECRET = "another-secret-" + "y" * 32


def refused_tokens(secret: str) -> list[Any]:
    expired_claim = ParticipantToken(
        room="test", identity="eve", grants=["tools.call"], expires_at=time.time() - 60
    )
    return [
        pytest.param(
            create_token(secret, room="elsewhere", identity="eve"),
            "token is for room 'elsewhere', not 'test'",
            id="other-room",
        ),
        pytest.param(
            create_token(secret, room="test", identity="eve", ttl=-60),
            "token has expired",
            id="expired-ttl",
        ),
        pytest.param(expired_claim.to_jwt(secret), "token has expired", id="expired-at"),
        pytest.param(
            create_token(OTHER_SECRET, room="test", identity="eve"),
            "signature is invalid",
            id="forged",
        ),
        pytest.param("", "no token", id="none"),
        pytest.param("not-a-token", "token is invalid", id="garbage"),
        pytest.param(
            ParticipantToken(room="test", identity="eve", role="overlord").to_jwt(secret),
            "unknown role 'overlord'",
            id="unknown-role",
        ),
    ]


@pytest.mark.parametrize(("token", "reason"), refused_tokens("test-secret-" + "x" * 32))
async def test_refused_tokens(room_server, connect, secret, token, reason):
    assert room_server.secret == secret
    alice = await connect("alice")
    joined: list[dict[str, Any]] = []
    alice.on("participant.joined", joined.append)

    eve = RoomClient(room_server.base_url, "test", token, reconnect=False)
    with pytest.raises(RoomError) as err:
        await eve.connect()
    assert err.value.code is ErrorCode.PERMISSION_DENIED
    assert "(401)" in err.value.message
    assert reason in err.value.message, err.value.message
    await eve.close()

    # the room and everyone in it are unaffected
    assert await alice.request("ping") == {"pong": True}
    assert [p.name for p in await alice.list_participants()] == ["alice"]
    assert joined == []
    bob = await connect("bob")
    assert {p.name for p in await bob.list_participants()} == {"alice", "bob"}


async def test_connection_without_authorization_header_is_refused(room_server):
    url = websocket_url(room_server.base_url, "test")
    with pytest.raises(InvalidStatus) as err:
        async with ws_connect(url):
            pass
    assert err.value.response.status_code == 401
    assert "no token" in json.loads(err.value.response.body)["error"]


async def test_token_in_a_websocket_subprotocol(room_server, make_token):
    """How the Studio joins: the token never appears in the URL."""
    url = websocket_url(room_server.base_url, "test")
    offered = ["taskroom", "taskroom.bearer." + make_token("test", "page")]
    async with ws_connect(url, subprotocols=offered) as ws:
        assert ws.subprotocol == "taskroom"
        ready = json.loads(await ws.recv())
        assert ready["data"]["participant"]["name"] == "page"
    forged = ["taskroom", "taskroom.bearer." + make_token("other-room", "page")]
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(url, subprotocols=forged):
            pass
    assert refused.value.response.status_code == 401
    assert b"not 'test'" in refused.value.response.body


async def test_token_in_query_string_and_all_rooms_token(room_server, make_token, secret):
    url = websocket_url(room_server.base_url, "test") + "?token=" + make_token("test", "browser")
    async with ws_connect(url) as ws:
        ready = json.loads(await ws.recv())
        assert ready["data"]["participant"]["name"] == "browser"

    anywhere = create_token(secret, room="*", identity="ops", role="admin")
    for room in ("alpha", "beta"):
        client = RoomClient(room_server.base_url, room, anywhere, reconnect=False)
        await client.connect()
        try:
            assert client.participant.name == "ops"
            assert client.participant.role == "admin"
            assert client.ready_data["room"] == room
        finally:
            await client.close()


async def test_invalid_room_name_is_refused(room_server, make_token):
    client = RoomClient(room_server.base_url, "bad$name", make_token("bad$name"))
    with pytest.raises(RoomError) as err:
        await client.connect()
    assert err.value.code is ErrorCode.INVALID_REQUEST
    assert "invalid room name" in err.value.message


def test_token_round_trip_and_default_grants(secret):
    raw = create_token(secret, room="r", identity="agent-7", role="agent", ttl=60)
    token = ParticipantToken.from_jwt(raw, secret)
    assert (token.room, token.identity, token.role) == ("r", "agent-7", "agent")
    assert token.grants == DEFAULT_GRANTS["agent"]
    assert token.allows("tools.call") and not token.allows("tasks.all")
    assert token.expires_at is not None and 0 < token.expires_at - time.time() <= 61

    custom = ParticipantToken.from_jwt(
        create_token(secret, room="r", identity="x", grants=["tools.call"], ttl=None), secret
    )
    assert custom.grants == ["tools.call"] and custom.expires_at is None
    admin = ParticipantToken.from_jwt(
        create_token(secret, room="r", identity="a", role="admin"), secret
    )
    assert admin.allows("anything.at.all")

    with pytest.raises(ValueError, match="unknown role"):
        create_token(secret, room="r", identity="x", role="king")
    with pytest.raises(TokenError, match="signature is invalid"):
        ParticipantToken.from_jwt(raw, OTHER_SECRET)


# --- the signing secret -----------------------------------------------------------------------


def test_load_secret_creates_owner_only_file_and_reuses_it(tmp_path, monkeypatch):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    data_dir = tmp_path / "data"
    first = load_secret(data_dir)
    path = data_dir / SECRET_FILE
    assert path.is_file()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(first) >= 32
    assert path.read_text() == first
    assert load_secret(data_dir) == first
    assert load_secret(data_dir, create=False) == first
    assert load_secret(tmp_path / "elsewhere") != first

    monkeypatch.setenv(SECRET_ENV, "from-the-environment")
    assert load_secret(data_dir) == "from-the-environment"
    assert load_secret(tmp_path / "never-created") == "from-the-environment"
    assert not (tmp_path / "never-created").exists()


def test_load_secret_refusals(tmp_path, monkeypatch):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    with pytest.raises(TokenError, match="no TASKROOM_SECRET and no secret file"):
        load_secret(tmp_path / "none", create=False)
    assert not (tmp_path / "none").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / SECRET_FILE).write_text("  \n")
    with pytest.raises(TokenError, match="is empty"):
        load_secret(empty)


async def test_server_uses_loaded_secret(tmp_path, monkeypatch):
    """A server without an explicit secret signs with load_secret's, so CLI tokens work."""
    from taskroom.host.server import RoomServer

    monkeypatch.delenv(SECRET_ENV, raising=False)
    server = RoomServer(data_dir=tmp_path)
    await server.start("127.0.0.1", 0)
    try:
        secret = load_secret(tmp_path)
        assert server.secret == secret
        client = RoomClient(
            server.base_url, "r", create_token(secret, room="r", identity="cli"), reconnect=False
        )
        await client.connect()
        assert client.participant.name == "cli"
        await client.close()
    finally:
        await server.stop()


# --- grants ---------------------------------------------------------------------------------


async def test_observer_cannot_register_call_or_write(connect):
    host = await connect("hal")
    await host.host_toolkit(echo_kit())
    watcher = await connect("watcher", role="observer")
    assert watcher.participant.role == "observer"

    with pytest.raises(RoomError) as err:
        await watcher.host_toolkit(echo_kit("mine"))
    assert err.value.code is ErrorCode.PERMISSION_DENIED
    assert "'toolkits.register' grant" in err.value.message
    assert "mine" not in watcher.hosted
    assert await host.list_toolkits(name="mine") == []

    with pytest.raises(RoomError) as err:
        await watcher.invoke_tool("kit", "echo", {"text": "hi"})
    assert err.value.code is ErrorCode.PERMISSION_DENIED
    assert "'tools.call' grant" in err.value.message

    with pytest.raises(RoomError) as err:
        await watcher.put_schema("s", {"type": "string"})
    assert err.value.code is ErrorCode.PERMISSION_DENIED
    assert "'schemas.write' grant" in err.value.message

    # reading is allowed, and the observer's connection stays usable
    assert [i.toolkit.name for i in await watcher.list_toolkits()] == ["kit"]
    assert await watcher.list_schemas() == {}
    assert await watcher.request("ping") == {"pong": True}
    assert await host.invoke_tool("kit", "echo", {"text": "hi"}) == "hi"


async def test_explicit_grants_limit_a_role(room_server, make_token):
    caller_only = RoomClient(
        room_server.base_url, "test", make_token("test", "limited", grants=["tools.call"])
    )
    host = RoomClient(room_server.base_url, "test", make_token("test", "hal"))
    await caller_only.connect()
    await host.connect()
    try:
        await host.host_toolkit(echo_kit())
        assert await caller_only.invoke_tool("kit", "echo", {"text": "yes"}) == "yes"
        with pytest.raises(RoomError) as err:
            await caller_only.host_toolkit(echo_kit("other"))
        assert err.value.code is ErrorCode.PERMISSION_DENIED
    finally:
        await caller_only.close()
        await host.close()
