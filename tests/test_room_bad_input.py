"""Bad input: every bad frame gets a clear error frame, and the room keeps working.

A raw ``websockets`` client sends the malformed frames (RoomClient would never send
them); after each one the same connection and another participant must still work.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from taskroom.host import protocol
from taskroom.host.client.connection import websocket_url
from taskroom.host.client.room_client import RoomClient
from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.server import RoomServer
from taskroom.toolkits import Tool, ToolContext, Toolkit, tool

# --- a raw participant -------------------------------------------------------------------


class Raw:
    """A participant speaking the wire protocol by hand."""

    def __init__(self, ws: ClientConnection, ready: dict[str, Any]) -> None:
        self.ws = ws
        self.ready = ready
        self.events: list[dict[str, Any]] = []
        self._ids = 1000

    @classmethod
    async def open(cls, base_url: str, token: str, room: str = "test") -> Raw:
        ws = await ws_connect(
            websocket_url(base_url, room), additional_headers={"Authorization": f"Bearer {token}"}
        )
        ready = json.loads(await ws.recv())
        assert ready["type"] == "room.ready"
        return cls(ws, ready["data"])

    async def next_answer(self, id_: Any = None, *, unsolicited: bool = False) -> dict[str, Any]:
        """The next response/error with ``id_`` (or, if ``unsolicited``, without an id)."""
        while True:
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), 5))
            if frame["type"] not in ("response", "error"):
                self.events.append(frame)
                continue
            if unsolicited and "id" not in frame:
                return frame
            if not unsolicited and frame.get("id") == id_:
                return frame

    async def next_reply(self) -> dict[str, Any]:
        """The next response or error frame, whatever its id."""
        while True:
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), 5))
            if frame["type"] in ("response", "error"):
                return frame
            self.events.append(frame)

    async def request(self, type_: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        self._ids += 1
        await self.ws.send(json.dumps({"id": self._ids, "type": type_, "data": data or {}}))
        return await self.next_answer(self._ids)


class Output(Tool):
    """A hand-written tool whose output must be an object with an integer ``n``."""

    def __init__(self) -> None:
        super().__init__(
            name="liar",
            description="Returns output that breaks its own schema.",
            output_schema={
                "type": "object",
                "properties": {"n": {"type": "integer"}},
                "required": ["n"],
            },
        )

    async def execute(self, context: ToolContext, arguments: dict[str, Any]) -> Any:
        return {"n": "not a number"}


def kit() -> Toolkit:
    @tool
    async def echo(text: str) -> str:
        """Echo the text."""
        return text

    @tool
    async def boom(reason: str = "kaput") -> str:
        """Raise ValueError."""
        raise ValueError(f"boom: {reason}")

    @tool
    async def repeat(text: str, times: int) -> str:
        """Repeat the text."""
        return text * times

    return Toolkit(name="kit", tools=[echo, boom, Output(), repeat])


async def assert_room_works(raw: Raw, other: RoomClient) -> None:
    """The raw connection and another participant still get answers."""
    pong = await raw.request("ping")
    assert pong["type"] == "response" and pong["data"] == {"pong": True}
    echoed = await raw.request(
        "tools.invoke", {"toolkit": "kit", "tool": "echo", "arguments": {"text": "ok"}}
    )
    assert echoed["type"] == "response", echoed
    assert echoed["data"]["result"] == "ok"
    assert await other.invoke_tool("kit", "echo", {"text": "still"}) == "still"
    assert await other.request("ping") == {"pong": True}


@pytest.fixture
async def room(
    room_server: RoomServer, connect, make_token
) -> AsyncIterator[tuple[Raw, RoomClient]]:
    host = await connect("hal")
    await host.host_toolkit(kit())
    bob = await connect("bob")
    raw = await Raw.open(room_server.base_url, make_token("test", "mallory"))
    try:
        yield raw, bob
    finally:
        await raw.ws.close()


# --- malformed frames ---------------------------------------------------------------------

INVOKE = {"toolkit": "kit", "tool": "echo", "arguments": {"text": "x"}}

BAD_FRAMES = [
    # (test id, text sent, id of the error frame, words the message must contain)
    ("malformed-json", '{"id": 1, "type": "ping"', None, "malformed JSON"),
    ("not-json", "hello room", None, "malformed JSON"),
    ("json-array", '[{"id": 2, "type": "ping"}]', None, "must be a JSON object"),
    ("json-string", '"ping"', None, "must be a JSON object"),
    ("json-null", "null", None, "must be a JSON object"),
    ("unknown-type", {"id": 3, "type": "tools.explode"}, 3, "unknown message type 'tools.explode'"),
    ("missing-type", {"id": 4, "data": {}}, 4, "type: Field required"),
    ("empty-type", {"id": 5, "type": ""}, 5, "type: String should have at least 1 character"),
    (
        "missing-tool",
        {"id": 6, "type": "tools.invoke", "data": {"toolkit": "kit"}},
        6,
        "tool: Field required",
    ),
    (
        "missing-name",
        {"id": "s1", "type": "schemas.get", "data": {}},
        "s1",
        "name: Field required",
    ),
    (
        "mistyped-arguments",
        {"id": 7, "type": "tools.invoke", "data": {**INVOKE, "arguments": "x"}},
        7,
        "arguments: Input should be a valid dictionary",
    ),
    ("mistyped-type", {"id": 8, "type": 5}, 8, "type: Input should be a valid string"),
    ("mistyped-data", {"id": 9, "type": "ping", "data": "x"}, 9, "data: Input should be"),
    ("mistyped-id", {"id": [1], "type": "ping"}, None, "id"),
    ("extra-frame-field", {"id": 10, "type": "ping", "bogus": 1}, 10, "bogus: Extra inputs"),
    ("extra-data-field", {"id": 11, "type": "ping", "data": {"x": 1}}, 11, "x: Extra inputs"),
    (
        "negative-timeout",
        {"id": 12, "type": "tools.invoke", "data": {**INVOKE, "timeout": -1}},
        12,
        "timeout: Input should be greater than 0",
    ),
    (
        "invoke-without-id",
        {"type": "tools.invoke", "data": INVOKE},
        None,
        "tools.invoke needs an id",
    ),
    (
        "bad-progress",
        {"id": 13, "type": "tool.progress", "data": {"data": {}}},
        13,
        "call_id: Field required",
    ),
    (
        "register-bad-name",
        {"id": 14, "type": "toolkits.register", "data": {"name": "no spaces allowed"}},
        14,
        "name: String should match pattern",
    ),
]


@pytest.mark.parametrize(
    ("sent", "error_id", "words"),
    [pytest.param(sent, eid, words, id=name) for name, sent, eid, words in BAD_FRAMES],
)
async def test_bad_frame_gets_clear_error_and_room_keeps_working(room, sent, error_id, words):
    raw, bob = room
    await raw.ws.send(sent if isinstance(sent, str) else json.dumps(sent))
    if error_id is None:
        answer = await raw.next_answer(unsolicited=True)
    else:
        answer = await raw.next_answer(error_id)
    assert answer["type"] == "error", answer
    assert answer["data"]["code"] == "invalid_request"
    assert words in answer["data"]["message"], answer["data"]["message"]
    await assert_room_works(raw, bob)


async def test_binary_frame_is_refused(room):
    raw, bob = room
    await raw.ws.send(b'{"id": 1, "type": "ping"}')
    answer = await raw.next_answer(unsolicited=True)
    assert answer["data"] == {
        "code": "invalid_request",
        "message": "binary frames are not supported; send JSON text",
    }
    await assert_room_works(raw, bob)


async def test_answers_to_calls_that_are_not_yours_are_ignored(room):
    """A stray response/error frame must neither crash the room nor finish a call."""
    raw, bob = room
    await raw.ws.send(json.dumps({"id": "c_nothing", "type": "response", "data": {}}))
    await raw.ws.send(json.dumps({"id": 99, "type": "error", "data": {"code": "failed"}}))
    await assert_room_works(raw, bob)


async def test_toolkit_with_broken_spec_is_refused(room):
    raw, bob = room
    broken = {
        "name": "broken",
        "tools": [{"name": "t", "input_schema": {"type": "not-a-type"}}],
    }
    answer = await raw.request("toolkits.register", broken)
    assert answer["data"]["code"] == "invalid_request"
    assert "input schema of broken.t is not a valid JSON Schema" in answer["data"]["message"]

    twice = {"name": "twice", "tools": [{"name": "t"}, {"name": "t"}]}
    answer = await raw.request("toolkits.register", twice)
    assert answer["data"]["code"] == "invalid_request"
    assert "lists a tool twice" in answer["data"]["message"]

    assert await bob.list_toolkits(name="broken") == []
    assert await bob.list_toolkits(name="twice") == []
    await assert_room_works(raw, bob)


ILL_TYPED_METADATA = [
    ({"labels": "math"}, "'labels': Input should be a valid list"),
    ({"labels": ["math", 7]}, "'labels.1': Input should be a valid string"),
    ({"agent": "yes"}, "'agent': Input should be a valid boolean"),
    ({"agent": True, "max_concurrency": "many"}, "'max_concurrency': Input should be a valid"),
    ({"agent": True, "max_concurrency": 0}, "'max_concurrency': Input should be greater"),
    ({"agent": True, "tool": ["run"]}, "'tool': Input should be a valid string"),
    ({"title": {"text": "x"}}, "'title': Input should be a valid string"),
]


@pytest.mark.parametrize(("metadata", "words"), ILL_TYPED_METADATA)
async def test_ill_typed_well_known_metadata_is_refused(room, metadata, words):
    """Studio and the router read these keys: a wrong type is refused at registration."""
    raw, bob = room
    spec = {"name": "labelled", "tools": [{"name": "run_labelled_task"}], "metadata": metadata}
    answer = await raw.request("toolkits.register", spec)
    assert answer["type"] == "error"
    assert answer["data"]["code"] == "invalid_request"
    assert words in answer["data"]["message"], answer["data"]["message"]
    assert await bob.list_toolkits(name="labelled") == []
    other = {"labels": ["math"], "kind": "llm", "anything": {"else": [1, "x"]}}
    answer = await raw.request("toolkits.register", {**spec, "metadata": other})
    assert answer["type"] == "response"
    await assert_room_works(raw, bob)


# --- tool-level failures --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        pytest.param(
            {"toolkit": "kit", "tool": "echo", "arguments": {"text": 5}},
            "invalid_request",
            ["invalid arguments for kit.echo", "5 is not of type 'string'", "/text"],
            id="argument-wrong-type",
        ),
        pytest.param(
            {"toolkit": "kit", "tool": "echo", "arguments": {}},
            "invalid_request",
            ["invalid arguments for kit.echo", "'text' is a required property"],
            id="argument-missing",
        ),
        pytest.param(
            {"toolkit": "kit", "tool": "echo", "arguments": {"text": "x", "loud": True}},
            "invalid_request",
            ["invalid arguments for kit.echo", "'loud' was unexpected"],
            id="argument-extra",
        ),
        pytest.param(
            {"toolkit": "kit", "tool": "boom", "arguments": {"reason": "disk on fire"}},
            "failed",
            ["ValueError", "boom: disk on fire"],
            id="tool-raises",
        ),
        pytest.param(
            {"toolkit": "kit", "tool": "liar"},
            "failed",
            ["kit.liar returned output that breaks its schema", "'not a number'", "/n"],
            id="output-breaks-schema",
        ),
        pytest.param(
            {"toolkit": "nope", "tool": "echo"},
            "not_found",
            ["no toolkit named 'nope'"],
            id="unknown-toolkit",
        ),
        pytest.param(
            {"toolkit": "kit", "tool": "nope"},
            "not_found",
            ["toolkit 'kit' has no tool 'nope'"],
            id="unknown-tool",
        ),
    ],
)
async def test_tool_call_failures_are_clear(room, data, code, words):
    raw, bob = room
    answer = await raw.request("tools.invoke", data)
    assert answer["type"] == "error", answer
    assert answer["data"]["code"] == code
    for word in words:
        assert word in answer["data"]["message"], answer["data"]["message"]
    # the RoomClient surfaces the same error as RoomError
    with pytest.raises(RoomError) as err:
        await bob.invoke_tool(data["toolkit"], data["tool"], data.get("arguments"))
    assert err.value.code == ErrorCode(code)
    assert err.value.message == answer["data"]["message"]
    await assert_room_works(raw, bob)


async def test_unknown_tool_lists_available_tools(room):
    raw, bob = room
    answer = await raw.request("tools.invoke", {"toolkit": "kit", "tool": "nope"})
    assert answer["data"]["details"] == {
        "toolkit": "kit",
        "tool": "nope",
        "available": ["echo", "boom", "liar", "repeat"],
    }
    with pytest.raises(RoomError) as err:
        await bob.invoke_tool("kit", "nope")
    assert sorted(err.value.details["available"]) == ["boom", "echo", "liar", "repeat"]


async def test_tool_error_type_is_in_details(room):
    raw, _ = room
    answer = await raw.request("tools.invoke", {"toolkit": "kit", "tool": "boom"})
    assert answer["data"]["details"] == {"type": "ValueError"}
    assert answer["data"]["message"] == "ValueError: boom: kaput"


# --- frame size cap -------------------------------------------------------------------------


@pytest.fixture
async def small_room(tmp_path, secret, make_token) -> AsyncIterator[tuple[Raw, RoomClient]]:
    server = RoomServer(data_dir=tmp_path, secret=secret, max_frame_bytes=4096, heartbeat=2.0)
    await server.start("127.0.0.1", 0)
    host = RoomClient(server.base_url, "test", make_token("test", "hal"))
    bob = RoomClient(server.base_url, "test", make_token("test", "bob"))
    raw = None
    try:
        await host.connect()
        await host.host_toolkit(kit())
        await bob.connect()
        raw = await Raw.open(server.base_url, make_token("test", "mallory"))
        yield raw, bob
    finally:
        if raw is not None:
            await raw.ws.close()
        await bob.close()
        await host.close()
        await server.stop()


async def test_frame_over_the_cap_is_refused(small_room):
    raw, bob = small_room
    text = "x" * 5000
    frame = {"id": 1, "type": "tools.invoke", "data": {**INVOKE, "arguments": {"text": text}}}
    sent = json.dumps(frame)
    await raw.ws.send(sent)
    answer = await raw.next_answer(1)  # the error carries the request's id
    assert answer["data"]["code"] == "invalid_request"
    assert f"frame of {len(sent)} bytes exceeds the cap of 4096 bytes" in answer["data"]["message"]
    await assert_room_works(raw, bob)
    # just under the cap is fine
    assert await bob.invoke_tool("kit", "echo", {"text": "y" * 3900}) == "y" * 3900
    # a second oversized frame, its id last as RoomClient writes it, is refused the same way
    await raw.ws.send(protocol.encode("ping", {"pad": "z" * 8000}, "last"))
    answer = await raw.next_answer("last")
    assert "exceeds the cap of 4096 bytes" in answer["data"]["message"]
    # without an id where one can be found, the error has none
    await raw.ws.send(json.dumps({"type": "ping", "data": {"pad": "z" * 8000, "id": 3}}))
    answer = await raw.next_answer(unsolicited=True)
    assert "exceeds the cap of 4096 bytes" in answer["data"]["message"]
    await assert_room_works(raw, bob)


async def test_room_client_refuses_a_request_over_the_cap_at_once(small_room):
    raw, bob = small_room
    with pytest.raises(RoomError) as refused:
        await asyncio.wait_for(bob.request("ping", {"pad": "z" * 8000}), 2)
    assert refused.value.code is ErrorCode.INVALID_REQUEST
    assert "exceeds the room's frame cap of 4096 bytes" in refused.value.message
    await assert_room_works(raw, bob)


async def test_json_nested_too_deeply_is_refused_with_its_id(room):
    """About 970 levels overflow Python's JSON parser: a clear error, no dropped socket."""
    raw, bob = room
    deep = "[" * 5000 + "]" * 5000
    await raw.ws.send('{"id": 41, "type": "ping", "data": {"x": ' + deep + "}}")
    answer = await raw.next_answer(41)
    assert answer["data"]["code"] == "invalid_request"
    assert "nested too deeply" in answer["data"]["message"]
    await assert_room_works(raw, bob)


async def test_frame_cap_counts_utf8_bytes_not_characters(small_room):
    """2,000 euro signs are 6,000 bytes of UTF-8 on the wire: over a 4,096-byte cap."""
    raw, bob = small_room
    sent = json.dumps(
        {"id": 1, "type": "ping", "data": {"pad": "\u20ac" * 2000}}, ensure_ascii=False
    )
    assert len(sent) < 4096 < len(sent.encode())
    await raw.ws.send(sent)
    answer = await raw.next_reply()
    assert answer["type"] == "error"
    assert "exceeds the cap of 4096 bytes" in answer["data"]["message"], answer["data"]
    await assert_room_works(raw, bob)


async def test_result_over_the_cap_fails_the_call_promptly(small_room):
    """A host's answer too big for the room must not leave the caller waiting for the
    deadline: the caller gets an error at once."""
    raw, bob = small_room
    with pytest.raises(RoomError) as err:
        await asyncio.wait_for(bob.invoke_tool("kit", "repeat", {"text": "y", "times": 6000}), 2)
    assert err.value.code in (ErrorCode.FAILED, ErrorCode.INVALID_REQUEST)
    await assert_room_works(raw, bob)
