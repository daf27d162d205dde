"""Floods a participant may try, against a room server in its own process, whose memory
(resident set size) is read before, during and after each flood.

Attacks (issue items 6 and 8): a participant that never reads its socket while the room
forwards it large answers; tasks.start requests refused because their prompt cannot be
stored; tens of thousands of tasks.wait from one connection that then leaves. Each must be
bounded while it lasts and leave the room's memory where it was once it ends.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from taskroom.host.auth.tokens import create_token
from taskroom.host.client.connection import websocket_url
from taskroom.host.client.room_client import RoomClient
from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.server.app import HEARTBEAT_SECONDS
from taskroom.host.server.peer import DEFAULT_SEND_QUEUE_BYTES
from taskroom.host.server.tasks.waits import MAX_WAITS_PER_CONNECTION
from taskroom.toolkits import Toolkit, tool

from .conftest import SECRET
from .processes import Process, free_port, start_room

ROOM = "floods"
MB = 1024 * 1024
SETTLED_SLACK = 0.10
"""Memory after a flood may exceed memory before it by this fraction at the most."""


def rss(pid: int) -> int:
    """Resident set size of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


@dataclass
class Memory:
    """RSS of the room process: a baseline, the peak while sampling, the settled value."""

    pid: int
    before: int = 0
    peak: int = 0
    after: int = 0
    samples: list[int] = field(default_factory=list)

    @contextmanager
    def sampling(self) -> Iterator[None]:
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.02):
                self.samples.append(rss(self.pid))

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            self.peak = max(self.samples, default=rss(self.pid))

    async def settle(self) -> int:
        """RSS once it stops falling (the room frees what a flood left behind)."""
        last = rss(self.pid)
        for _ in range(50):
            await asyncio.sleep(0.2)
            now = rss(self.pid)
            if now >= last:
                break
            last = now
        self.after = rss(self.pid)
        return self.after

    def report(self, what: str) -> str:
        return (
            f"{what}: RSS {self.before / MB:.0f} MB before, {self.peak / MB:.0f} MB peak, "
            f"{self.after / MB:.0f} MB after"
        )

    def assert_settled(self, what: str) -> None:
        print("\n" + self.report(what))
        assert self.after <= self.before * (1 + SETTLED_SLACK), self.report(what)


@dataclass
class Room:
    base_url: str
    process: Process
    log: Path

    async def client(self, identity: str, role: str = "user") -> RoomClient:
        token = create_token(SECRET, room=ROOM, identity=identity, role=role)
        client = RoomClient(self.base_url, ROOM, token, reconnect=False)
        await client.connect()
        return client

    async def raw(
        self, identity: str, *, receive_buffer: int | None = None, **kw: object
    ) -> ClientConnection:
        """A participant speaking the protocol by hand; ``receive_buffer`` shrinks its
        socket's kernel buffer, which on loopback could otherwise soak up tens of MB."""
        token = create_token(SECRET, room=ROOM, identity=identity, role="user")
        if receive_buffer is not None:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            sock.setblocking(False)
            host, port = self.base_url.removeprefix("http://").split(":")
            await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
            kw["sock"] = sock
        ws = await ws_connect(
            websocket_url(self.base_url, ROOM),
            additional_headers={"Authorization": f"Bearer {token}"},
            **kw,  # type: ignore[arg-type]
        )
        assert json.loads(await ws.recv())["type"] == "room.ready"
        return ws


@pytest.fixture
async def room(tmp_path) -> AsyncIterator[Room]:
    port = free_port()
    process = start_room(port, tmp_path / "room", SECRET, log=tmp_path / "room.log")
    try:
        yield Room(f"http://127.0.0.1:{port}", process, tmp_path / "room.log")
    finally:
        process.stop()


async def flooded(memory: Memory, flood: Callable[[], Awaitable[None]]) -> None:
    """Run ``flood`` twice; measure the second run.

    The first run pays the allocator's high-water mark (Python keeps freed memory in its
    arenas for reuse, and RSS does not drop when it is freed), so it sets the baseline:
    memory that really leaks grows again with every run and shows against it.
    """
    await flood()
    gc.collect()
    memory.before = await memory.settle()
    with memory.sampling():
        await flood()
    await memory.settle()


@tool
async def blob(size: int) -> str:
    """An answer of ``size`` bytes."""
    return "x" * size


async def gone(client: RoomClient, name: str, timeout: float) -> float:
    """Seconds until ``name`` is no longer in the room (raises if it stays)."""
    started = time.monotonic()
    while any(p.name == name for p in await client.list_participants()):
        assert time.monotonic() - started < timeout, f"{name} is still connected"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


# --- item 6: a reader that falls behind --------------------------------------------------


async def test_a_slow_reader_is_disconnected_and_blocks_no_one(room):
    memory = Memory(room.process.proc.pid)
    host = await room.client("big", "tool")
    await host.host_toolkit(Toolkit(name="big", tools=[blob]))
    alice = await room.client("alice")
    answers = 60  # 60 MB of answers for a reader whose send queue may hold 16 MB
    disconnected: list[float] = []

    async def flood() -> None:
        # reads one frame, then nothing
        mallory = await room.raw(
            "mallory", receive_buffer=64 * 1024, max_queue=1, max_size=None, compression=None
        )
        started = time.monotonic()
        for n in range(answers):
            frame = {"toolkit": "big", "tool": "blob", "arguments": {"size": MB}}
            await mallory.send(json.dumps({"id": n, "type": "tools.invoke", "data": frame}))
        # The host serves everyone else meanwhile: its answers to mallory never block it.
        others = [alice.invoke_tool("big", "blob", {"size": 10}) for _ in range(10)]
        results = await asyncio.wait_for(asyncio.gather(*others), 30)
        assert results == ["x" * 10] * 10
        disconnected.append(time.monotonic() - started + await gone(alice, "mallory", 60))
        mallory.transport.abort()  # the room has dropped it; skip the closing handshake

    await flooded(memory, flood)
    print(
        f"\nslow reader disconnected {max(disconnected):.1f} s after its first request at the "
        f"latest (send queue cap {DEFAULT_SEND_QUEUE_BYTES // MB} MB, {answers} MB of answers)"
    )
    # The queue cap, not the heartbeat (15 s, then a missed pong), ended the connection.
    assert max(disconnected) < HEARTBEAT_SECONDS, disconnected
    assert memory.peak < memory.before + 3 * DEFAULT_SEND_QUEUE_BYTES, memory.report("peak")
    memory.assert_settled("slow reader")
    # disconnected for its send queue, not for anything else
    assert room.log.read_text().count("mallory in floods is not reading") == 2
    assert await alice.request("ping") == {"pong": True}
    await alice.close()
    await host.close()


# --- item 8: refused starts and abandoned waits ----------------------------------------------


@tool(name="run_holder_task")
async def hold(prompt: str = "") -> str:
    """Never answers (until the test ends)."""
    await asyncio.Event().wait()
    return prompt


async def test_refused_starts_leave_nothing_in_memory(room):
    memory = Memory(room.process.proc.pid)
    agent = await room.client("holder", "agent")
    await agent.host_toolkit(Toolkit(name="holder", tools=[hold], metadata={"agent": True}))
    alice = await room.client("alice")
    prompt = "p" * (3 * MB) + "\ud800"  # the store refuses a lone surrogate

    async def flood() -> None:
        for _ in range(60):
            with pytest.raises(RoomError) as refused:
                await alice.tasks.start("holder", {"prompt": prompt})
            assert refused.value.code is ErrorCode.FAILED
            assert "could not be stored" in refused.value.message

    await flooded(memory, flood)
    assert (await alice.tasks.list())["tasks"] == []
    memory.assert_settled("60 refused 3 MB starts")
    await alice.close()
    await agent.close()


async def test_abandoned_waits_die_with_their_connection(room):
    memory = Memory(room.process.proc.pid)
    agent = await room.client("holder", "agent")
    await agent.host_toolkit(Toolkit(name="holder", tools=[hold], metadata={"agent": True}))
    alice = await room.client("alice")
    (task_id,) = (await alice.tasks.start("holder", {}))["task_ids"]
    waits = 30_000

    async def flood() -> None:
        flood = await room.raw("alice", max_queue=None)
        for n in range(waits):
            data = {"task_id": task_id, "timeout": 600}
            await flood.send(json.dumps({"id": n, "type": "tasks.wait", "data": data}))
        refusals = 0
        while refusals < waits - MAX_WAITS_PER_CONNECTION:
            frame = json.loads(await asyncio.wait_for(flood.recv(), 30))
            if frame["type"] == "error":
                assert frame["data"]["code"] == "unavailable"
                refusals += 1
        await flood.close()
        await connections_of(alice, "alice", 1)

    await flooded(memory, flood)
    memory.assert_settled(f"{waits} waits, then the connection left")
    assert (await alice.tasks.get(task_id))["status"] == "running"
    await alice.close()
    await agent.close()


async def connections_of(client: RoomClient, name: str, count: int) -> None:
    """Wait until ``name`` has ``count`` connections in the room."""
    started = time.monotonic()
    while sum(p.name == name for p in await client.list_participants()) != count:
        assert time.monotonic() - started < 30, f"{name} still has other connections"
        await asyncio.sleep(0.1)


def test_rss_reads_this_process():
    assert rss(os.getpid()) > MB
