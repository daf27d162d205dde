"""Tool calls through a real room: routing, identity, deadlines, cancellation, failover.

Every test runs a real RoomServer on a free loopback port and real WebSocket clients.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel
from websockets.asyncio.client import connect as ws_connect

from taskroom.host.client.connection import websocket_url
from taskroom.host.client.room_client import RoomClient
from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.server import RoomServer
from taskroom.toolkits import ToolContext, Toolkit, tool

# --- helpers --------------------------------------------------------------------------


async def eventually(pred: Callable[[], bool], timeout: float = 2.0, what: str = "") -> None:
    """Poll ``pred`` until it holds, or fail the test after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {what}")
        await asyncio.sleep(0.01)


def record(client: RoomClient, type_: str) -> list[dict[str, Any]]:
    """Collect every ``type_`` event the client receives from now on."""
    seen: list[dict[str, Any]] = []
    client.on(type_, seen.append)
    return seen


class Echoed(BaseModel):
    text: str
    length: int


def demo_toolkit(name: str = "demo", calls: list[ToolContext] | None = None) -> Toolkit:
    """echo (validated input and output), count (progress), whoami (context)."""

    @tool
    async def echo(text: str, context: ToolContext) -> Echoed:
        """Echo the text back with its length."""
        if calls is not None:
            calls.append(context)
        return Echoed(text=text, length=len(text))

    @tool
    async def count(n: int, context: ToolContext) -> int:
        """Report n progress steps, then return n."""
        for i in range(n):
            await context.progress({"step": i})
        return n

    @tool
    async def whoami(context: ToolContext) -> dict:
        """The identity the room gave this call."""
        if calls is not None:
            calls.append(context)
        behalf = context.on_behalf_of
        return {
            "caller_id": context.caller.id,
            "caller_name": context.caller.name,
            "caller_role": context.caller.role,
            "on_behalf_of_id": behalf.id if behalf else None,
            "on_behalf_of_name": behalf.name if behalf else None,
            "host_id": context.room.participant.id if context.room else None,
            "chain": context.metadata.get("chain"),
            "call_id": context.call_id,
        }

    return Toolkit(name=name, tools=[echo, count, whoami])


class Gate:
    """A tool that blocks until released and records whether it was cancelled."""

    def __init__(self) -> None:
        self.started: list[ToolContext] = []
        self.cancelled: list[str] = []
        self.finished: list[str] = []
        self.release = asyncio.Event()

    def toolkit(self, name: str = "slow") -> Toolkit:
        gate = self

        @tool
        async def hold(context: ToolContext, seconds: float = 30.0) -> dict:
            """Wait until released (or ``seconds`` pass)."""
            gate.started.append(context)
            try:
                async with asyncio.timeout(seconds):
                    await gate.release.wait()
            except asyncio.CancelledError:
                gate.cancelled.append(context.call_id or "")
                raise
            except TimeoutError:
                pass
            gate.finished.append(context.call_id or "")
            return {"host_id": context.room.participant.id if context.room else None}

        return Toolkit(name=name, tools=[hold])


# --- results, progress, identity ---------------------------------------------------


async def test_hosted_toolkit_is_invoked_with_validated_result_and_progress(connect):
    host = await connect("hal")
    await host.host_toolkit(demo_toolkit())
    bob = await connect("bob")

    result = await bob.invoke_tool("demo", "echo", {"text": "hello"})
    assert result == {"text": "hello", "length": 5}

    steps: list[dict[str, Any]] = []
    assert await bob.invoke_tool("demo", "count", {"n": 3}, on_progress=steps.append) == 3
    assert steps == [{"step": 0}, {"step": 1}, {"step": 2}]

    # the host validates the arguments against the tool's schema before running it
    with pytest.raises(RoomError) as err:
        await bob.invoke_tool("demo", "echo", {"text": 42})
    assert err.value.code is ErrorCode.INVALID_REQUEST
    assert "42 is not of type 'string'" in err.value.message


async def test_caller_identity_comes_from_the_token(room_server, connect, make_token):
    seen: list[ToolContext] = []
    host = await connect("hal")
    await host.host_toolkit(demo_toolkit(calls=seen))

    url = websocket_url(room_server.base_url, "test")
    headers = {"Authorization": f"Bearer {make_token('test', 'mallory')}"}
    async with ws_connect(url, additional_headers=headers) as ws:
        ready = json.loads(await ws.recv())
        assert ready["type"] == "room.ready"
        me = ready["data"]["participant"]
        assert me["name"] == "mallory"

        async def ask(frame: dict[str, Any]) -> dict[str, Any]:
            await ws.send(json.dumps(frame))
            while True:
                answer = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if answer.get("id") == frame["id"]:
                    return answer

        forged = {"id": "p_admin", "name": "admin", "role": "admin"}
        base = {"toolkit": "demo", "tool": "whoami", "arguments": {}}
        for extra in ({"caller": forged}, {"on_behalf_of": forged}):
            answer = await ask({"id": 1, "type": "tools.invoke", "data": {**base, **extra}})
            assert answer["type"] == "error"
            assert answer["data"]["code"] == "invalid_request"
            field = next(iter(extra))
            assert field in answer["data"]["message"]
            assert "Extra inputs are not permitted" in answer["data"]["message"]
        assert seen == [], "a refused call must never reach the host"

        answer = await ask({"id": 2, "type": "tools.invoke", "data": base})
        assert answer["type"] == "response", answer
        who = answer["data"]["result"]
        assert who["caller_name"] == "mallory"
        assert who["caller_id"] == me["id"]
        assert who["caller_role"] == "user"
        assert who["on_behalf_of_id"] is None

    # and through RoomClient the same holds
    bob = await connect("bob")
    who = await bob.invoke_tool("demo", "whoami")
    assert (who["caller_name"], who["caller_id"]) == ("bob", bob.participant.id)
    assert seen[-1].caller.name == "bob"


async def test_nested_call_carries_on_behalf_of(connect):
    relay_host = await connect("relay")
    inner_host = await connect("inner")
    inner_calls: list[ToolContext] = []
    await inner_host.host_toolkit(demo_toolkit("inner", calls=inner_calls))

    @tool
    async def relay(context: ToolContext) -> dict:
        """Ask the inner toolkit who is calling, for the original caller."""
        assert context.room is not None
        inner = await context.room.invoke_tool("inner", "whoami", parent_call_id=context.call_id)
        return {"outer_call_id": context.call_id, "inner": inner}

    await relay_host.host_toolkit(Toolkit(name="outer", tools=[relay]))
    alice = await connect("alice")

    out = await alice.invoke_tool("outer", "relay")
    inner = out["inner"]
    assert inner["caller_name"] == "relay"
    assert inner["caller_id"] == relay_host.participant.id
    assert inner["on_behalf_of_name"] == "alice"
    assert inner["on_behalf_of_id"] == alice.participant.id
    assert inner["chain"] == [out["outer_call_id"]]
    assert inner_calls[-1].principal.name == "alice"

    # two levels deep, on_behalf_of stays the original caller
    @tool
    async def relay2(context: ToolContext) -> dict:
        """Call relay for the original caller."""
        assert context.room is not None
        return await context.room.invoke_tool("outer", "relay", parent_call_id=context.call_id)

    second = await connect("second")
    await second.host_toolkit(Toolkit(name="outer2", tools=[relay2]))
    out2 = await alice.invoke_tool("outer2", "relay2")
    assert out2["inner"]["on_behalf_of_id"] == alice.participant.id
    assert len(out2["inner"]["chain"]) == 2


async def test_parent_call_id_not_yours_is_refused(connect):
    gate = Gate()
    host = await connect("hal")
    await host.host_toolkit(gate.toolkit())
    inner_host = await connect("inner")
    inner_calls: list[ToolContext] = []
    await inner_host.host_toolkit(demo_toolkit("inner", calls=inner_calls))
    alice = await connect("alice")
    carol = await connect("carol")

    call = await alice.start_tool_call("slow", "hold")
    await eventually(lambda: len(gate.started) == 1, what="the call reaches the host")
    live_call_id = gate.started[0].call_id
    assert live_call_id

    for parent in (live_call_id, "c_0000000000000000"):
        for who in (carol, alice):  # neither the caller nor a stranger serves the call
            with pytest.raises(RoomError) as err:
                await who.invoke_tool("inner", "whoami", parent_call_id=parent)
            assert err.value.code is ErrorCode.PERMISSION_DENIED
            assert "is not a call you are serving" in err.value.message
    assert inner_calls == []

    # the host serving it may use it
    who = await host.invoke_tool("inner", "whoami", parent_call_id=live_call_id)
    assert who["on_behalf_of_id"] == alice.participant.id

    gate.release.set()
    assert await call.result() == {"host_id": host.participant.id}
    # once the parent call is over, its id no longer authorises anything
    with pytest.raises(RoomError) as err:
        await host.invoke_tool("inner", "whoami", parent_call_id=live_call_id)
    assert err.value.code is ErrorCode.PERMISSION_DENIED


# --- deadlines, disconnects, cancellation ------------------------------------------------


async def test_deadline_expiry_times_out_and_cancels_the_host(connect):
    gate = Gate()
    host = await connect("hal")
    await host.host_toolkit(gate.toolkit())
    bob = await connect("bob")

    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(RoomError) as err:
        await bob.invoke_tool("slow", "hold", {"seconds": 10}, timeout=0.3)
    elapsed = loop.time() - started
    assert err.value.code is ErrorCode.TIMEOUT
    assert "slow.hold" in err.value.message
    assert 0.25 <= elapsed < 2.0
    await eventually(lambda: len(gate.cancelled) == 1, 1.0, "the host task is cancelled")
    assert gate.finished == []
    # the host's load was released: the next call is served normally
    gate.release.set()
    assert await bob.invoke_tool("slow", "hold", timeout=5) == {"host_id": host.participant.id}


async def test_host_closing_mid_call_gives_unavailable(connect):
    gate = Gate()
    host = await connect("hal", reconnect=False)
    await host.host_toolkit(gate.toolkit())
    bob = await connect("bob")

    call = await bob.start_tool_call("slow", "hold")
    await eventually(lambda: len(gate.started) == 1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await host.close()
    with pytest.raises(RoomError) as err:
        await asyncio.wait_for(call.result(), 1.0)
    assert err.value.code is ErrorCode.UNAVAILABLE
    assert "left the room mid-call" in err.value.message
    assert loop.time() - started < 1.0


async def test_host_connection_dropping_mid_call_gives_unavailable(
    room_server, connect, make_token
):
    """A host whose TCP connection just dies (no close handshake)."""
    url = websocket_url(room_server.base_url, "test")
    headers = {"Authorization": f"Bearer {make_token('test', 'flaky')}"}
    bob = await connect("bob")
    async with ws_connect(url, additional_headers=headers) as ws:
        await ws.recv()  # room.ready
        spec = demo_toolkit("flaky").spec().model_dump(mode="json")
        await ws.send(json.dumps({"id": 1, "type": "toolkits.register", "data": spec}))
        while (frame := json.loads(await ws.recv())).get("id") != 1:
            pass
        assert frame["type"] == "response"

        call = await bob.start_tool_call("flaky", "echo", {"text": "hi"})
        while (frame := json.loads(await asyncio.wait_for(ws.recv(), 5)))["type"] != "tool.call":
            pass
        assert frame["data"]["arguments"] == {"text": "hi"}
        loop = asyncio.get_running_loop()
        started = loop.time()
        ws.transport.abort()
        with pytest.raises(RoomError) as err:
            await asyncio.wait_for(call.result(), 1.0)
        assert err.value.code is ErrorCode.UNAVAILABLE
        assert loop.time() - started < 1.0
    assert await bob.list_toolkits(name="flaky") == []
    assert (await bob.request("ping")) == {"pong": True}


async def test_cancel_reaches_the_host_and_the_caller_gets_cancelled(connect):
    gate = Gate()
    host = await connect("hal")
    await host.host_toolkit(gate.toolkit())
    bob = await connect("bob")

    call = await bob.start_tool_call("slow", "hold")
    await eventually(lambda: len(gate.started) == 1)
    await call.cancel()
    with pytest.raises(RoomError) as err:
        await asyncio.wait_for(call.result(), 1.0)
    assert err.value.code is ErrorCode.CANCELLED
    await eventually(lambda: len(gate.cancelled) == 1, 1.0, "the tool sees CancelledError")
    assert gate.cancelled == [gate.started[0].call_id]
    assert gate.finished == []
    # cancelling again, or a call that is over, is harmless
    await call.cancel()
    with pytest.raises(RoomError) as err:
        await bob.request("tools.cancel", {"call_id": call.call_id})
    assert err.value.code is ErrorCode.NOT_FOUND


async def test_cancelling_the_awaiting_task_cancels_the_call(connect):
    gate = Gate()
    host = await connect("hal")
    await host.host_toolkit(gate.toolkit())
    bob = await connect("bob")

    task = asyncio.ensure_future(bob.invoke_tool("slow", "hold"))
    await eventually(lambda: len(gate.started) == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: len(gate.cancelled) == 1, 1.0, "the host is told")


async def test_caller_leaving_cancels_its_calls(connect):
    gate = Gate()
    host = await connect("hal")
    await host.host_toolkit(gate.toolkit())
    bob = await connect("bob", reconnect=False)

    await bob.start_tool_call("slow", "hold")
    await eventually(lambda: len(gate.started) == 1)
    await bob.close()
    await eventually(lambda: len(gate.cancelled) == 1, 1.0, "the host is told the caller left")


# --- instances, visibility, listing -------------------------------------------------------


async def test_calls_spread_over_instances_and_participant_id_targets_one(connect):
    gate = Gate()
    hosts = [await connect(f"h{i}") for i in range(3)]
    for h in hosts:
        await h.host_toolkit(gate.toolkit("pool"))
    ids = {h.participant.id for h in hosts}
    bob = await connect("bob")

    # concurrent calls go to the least-loaded instance: 6 calls, 2 on each host
    calls = [await bob.start_tool_call("pool", "hold") for _ in range(6)]
    await eventually(lambda: len(gate.started) == 6)
    by_host: dict[str, int] = {}
    for ctx in gate.started:
        assert ctx.room is not None
        by_host[ctx.room.participant.id] = by_host.get(ctx.room.participant.id, 0) + 1
    assert by_host == {i: 2 for i in ids}
    gate.release.set()
    results = [await c.result() for c in calls]
    assert {r["host_id"] for r in results} == ids

    # one at a time, ties go to the least recently used: a round robin
    sequential = [(await bob.invoke_tool("pool", "hold"))["host_id"] for _ in range(6)]
    assert sorted(sequential) == sorted(list(ids) * 2)
    assert len(set(sequential[:3])) == 3

    target = hosts[1].participant.id
    for _ in range(4):
        got = await bob.invoke_tool("pool", "hold", participant_id=target)
        assert got["host_id"] == target

    with pytest.raises(RoomError) as err:
        await bob.invoke_tool("pool", "hold", participant_id=bob.participant.id)
    assert err.value.code is ErrorCode.NOT_FOUND


async def test_private_toolkit_is_visible_only_to_host_and_allowed_callers(connect):
    host = await connect("hal")
    bob = await connect("bob")
    carol = await connect("carol")
    bob_events = record(bob, "toolkit.registered")
    carol_events = record(carol, "toolkit.registered")

    secret = demo_toolkit("secret")
    secret.public = False
    secret.allowed_callers = ["bob"]
    await host.host_toolkit(secret)
    await eventually(lambda: len(bob_events) == 1, what="bob is told")
    assert bob_events[0]["toolkit"]["name"] == "secret"
    await carol.request("ping")  # every frame sent to carol before this has arrived
    assert carol_events == []

    assert [i.toolkit.name for i in await host.list_toolkits()] == ["secret"]
    assert [i.toolkit.name for i in await bob.list_toolkits()] == ["secret"]
    assert await carol.list_toolkits() == []
    assert await carol.list_toolkits(name="secret") == []

    assert (await bob.invoke_tool("secret", "echo", {"text": "x"}))["length"] == 1
    with pytest.raises(RoomError) as err:
        await carol.invoke_tool("secret", "echo", {"text": "x"})
    assert err.value.code is ErrorCode.NOT_FOUND
    with pytest.raises(RoomError) as err:
        await carol.invoke_tool("secret", "echo", {"text": "x"}, participant_id=host.participant.id)
    assert err.value.code is ErrorCode.NOT_FOUND

    # a late joiner's greeting respects visibility too
    late_carol = await connect("carol")
    late_bob = await connect("bob")
    assert late_carol.ready_data["toolkits"] == []
    assert [t["toolkit"]["name"] for t in late_bob.ready_data["toolkits"]] == ["secret"]

    carol_gone = record(carol, "toolkit.unregistered")
    bob_gone = record(bob, "toolkit.unregistered")
    await host.unhost_toolkit("secret")
    await eventually(lambda: len(bob_gone) == 1)
    await carol.request("ping")
    assert carol_gone == []


async def test_listing_filters_and_toolkit_and_presence_events(connect):
    alice = await connect("alice")
    joined = record(alice, "participant.joined")
    left = record(alice, "participant.left")
    registered = record(alice, "toolkit.registered")
    unregistered = record(alice, "toolkit.unregistered")

    bob = await connect("bob", reconnect=False)
    carol = await connect("carol")
    await eventually(lambda: len(joined) == 2)
    assert [(e["name"], e["id"]) for e in joined] == [
        ("bob", bob.participant.id),
        ("carol", carol.participant.id),
    ]
    assert {p.name for p in await alice.list_participants()} == {"alice", "bob", "carol"}
    assert set(alice.participants) == {
        alice.participant.id,
        bob.participant.id,
        carol.participant.id,
    }

    await bob.host_toolkit(demo_toolkit("kit-a"))
    await bob.host_toolkit(demo_toolkit("kit-b"))
    await carol.host_toolkit(demo_toolkit("kit-a"))
    await eventually(lambda: len(registered) == 3)
    assert [
        (e["toolkit"]["name"], e["participant_id"], e["participant_name"]) for e in registered
    ] == [
        ("kit-a", bob.participant.id, "bob"),
        ("kit-b", bob.participant.id, "bob"),
        ("kit-a", carol.participant.id, "carol"),
    ]
    assert [t["name"] for t in registered[0]["toolkit"]["tools"]] == ["echo", "count", "whoami"]

    def keys(instances):
        return sorted((i.toolkit.name, i.participant_id) for i in instances)

    b, c = bob.participant.id, carol.participant.id
    assert keys(await alice.list_toolkits()) == sorted([("kit-a", b), ("kit-b", b), ("kit-a", c)])
    assert keys(await alice.list_toolkits(name="kit-a")) == sorted([("kit-a", b), ("kit-a", c)])
    assert keys(await alice.list_toolkits(participant_id=b)) == [("kit-a", b), ("kit-b", b)]
    assert keys(await alice.list_toolkits(participant_id=b, name="kit-b")) == [("kit-b", b)]
    assert keys(await alice.list_toolkits(participant_name="carol")) == [("kit-a", c)]
    assert await alice.list_toolkits(name="kit-c") == []
    assert await alice.list_toolkits(participant_id="p_nobody") == []

    await bob.unhost_toolkit("kit-b")
    await eventually(lambda: len(unregistered) == 1)
    assert unregistered[0] == {"name": "kit-b", "participant_id": b}
    with pytest.raises(RoomError) as err:
        await bob.unhost_toolkit("kit-b")
    assert err.value.code is ErrorCode.NOT_FOUND

    await bob.close()
    await eventually(lambda: len(left) == 1 and len(unregistered) == 2)
    assert unregistered[1] == {"name": "kit-a", "participant_id": b}
    assert left[0]["id"] == b and left[0]["name"] == "bob"
    assert keys(await alice.list_toolkits()) == [("kit-a", c)]
    assert b not in alice.participants
    assert {p.name for p in await alice.list_participants()} == {"alice", "carol"}
    # the remaining instance serves every call now
    who = await alice.invoke_tool("kit-a", "whoami")
    assert who["host_id"] == c


# --- reconnect ---------------------------------------------------------------------------


async def test_client_reconnects_after_server_restart(tmp_path, secret, make_token):
    server = RoomServer(data_dir=tmp_path, secret=secret, heartbeat=2.0)
    await server.start("127.0.0.1", 0)
    base_url = server.base_url
    port = int(base_url.rsplit(":", 1)[1])
    host = RoomClient(base_url, "test", make_token("test", "hal"), backoff=(0.05, 0.2))
    fresh: RoomClient | None = None
    try:
        await host.connect()
        await host.host_toolkit(demo_toolkit())
        first_id = host.participant.id
        disconnected = record(host, "disconnected")
        reconnected = record(host, "reconnected")

        await server.stop()
        await eventually(lambda: len(disconnected) == 1, 2.0, "the client notices")
        server = RoomServer(data_dir=tmp_path, secret=secret, heartbeat=2.0)
        assert await server.start("127.0.0.1", port) == base_url

        fresh = RoomClient(base_url, "test", make_token("test", "bob"), reconnect=False)
        await fresh.connect()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while not await fresh.list_toolkits(name="demo"):
            assert loop.time() < deadline, "the toolkit was not registered again"
            await asyncio.sleep(0.05)
        result = await fresh.invoke_tool("demo", "echo", {"text": "back"}, timeout=3)
        assert result == {"text": "back", "length": 4}
        await eventually(lambda: len(reconnected) == 1, 3.0, "reconnected event")
        assert host.connected.is_set()
        assert host.participant.id != first_id
        # the reconnected client can make calls itself, too
        assert await host.invoke_tool("demo", "count", {"n": 1}, timeout=3) == 1
    finally:
        if fresh is not None:
            await fresh.close()
        await host.close()
        await server.stop()
