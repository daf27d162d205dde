"""Three room-server nodes on one PostgreSQL and one Redis: one room, whichever node a
participant enters by, and a room that survives the SIGKILL of the node that owned it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from taskroom.host.auth.tokens import create_token
from taskroom.host.client.room_client import RoomClient
from taskroom.host.protocol import RoomError
from taskroom.host.server.cluster.lease import LEASE_KEY, Holder
from taskroom.toolkits import Toolkit, tool

from .nodes import SECRET, CountingRunner, Node

TASKS = 200


@pytest.fixture
def nodes(tmp_path, redis_server, postgres_dsn) -> Iterator[list[Node]]:
    started = [Node(tmp_path, f"node{i}", redis_server.url, postgres_dsn) for i in range(3)]
    try:
        yield started
    finally:
        for node in started:
            node.stop()


class Clients:
    def __init__(self, room: str) -> None:
        self.room = room
        self.open: list[RoomClient] = []

    async def __call__(self, url: str, identity: str, role: str = "user", **kw: Any) -> RoomClient:
        token = create_token(SECRET, room=self.room, identity=identity, role=role)
        client = RoomClient(url, self.room, token, **kw)
        await client.connect()
        self.open.append(client)
        return client


@pytest.fixture
async def clients(request) -> AsyncIterator[Clients]:
    pool = Clients(request.node.name.replace("[", "-").replace("]", "")[:60])
    yield pool
    for client in pool.open:
        await client.close()


@tool
def shout(text: str) -> str:
    """Upper-case the text."""
    return text.upper()


async def test_participants_entering_by_different_nodes_meet_in_one_room(nodes, clients) -> None:
    alice = await clients(nodes[0].url, "alice")
    bob = await clients(nodes[1].url, "bob")
    carol = await clients(nodes[2].url, "carol")
    owner = alice.node_url
    assert bob.node_url == owner and carol.node_url == owner
    assert {p.name for p in await carol.list_participants()} == {"alice", "bob", "carol"}

    await bob.host_toolkit(Toolkit(name="loud", tools=[shout]))
    assert await carol.invoke_tool("loud", "shout", {"text": "hi"}) == "HI"

    agent = await clients(nodes[2].url, "counter", role="agent")
    runner = CountingRunner("counter", requeue_safe=False, delay=0, concurrency=4)
    await runner.start(agent)
    started = await alice.tasks.start("counter", {"n": 7})
    done = await alice.tasks.wait(started["task_ids"][0], timeout=30)
    assert done["tasks"][0]["status"] == "completed"
    assert done["tasks"][0]["result"] == {"n": 7}


async def test_a_client_given_every_node_skips_one_that_is_down(nodes, clients) -> None:
    nodes[0].kill()
    entries = ",".join(n.url for n in nodes)
    alice = await clients(entries, "alice")
    assert alice.node_url in (nodes[1].url, nodes[2].url)


async def test_a_node_stopped_cleanly_hands_its_rooms_back_at_once(
    nodes, clients, redis_server
) -> None:
    alice = await clients(nodes[0].url, "alice", reconnect=False)
    assert alice.node_url == nodes[0].url
    redis = Redis.from_url(redis_server.url)
    try:
        lease = LEASE_KEY.format(room=clients.room)
        assert Holder.parse(await redis.get(lease)).node_url == nodes[0].url
        nodes[0].stop()  # SIGTERM
        assert await redis.get(lease) is None
    finally:
        await redis.aclose()
    bob = await clients(nodes[1].url, "bob")
    assert bob.node_url == nodes[1].url


async def _finished(caller: RoomClient, ids: list[str]) -> list[dict[str, Any]]:
    records = []
    for task_id in ids:
        records.append(await caller.tasks.get(task_id))
    return records


async def test_the_owner_killed_mid_run_another_node_serves_the_room_and_no_task_is_lost(
    nodes, clients
) -> None:
    entries = ",".join(n.url for n in nodes)
    caller = await clients(entries, "alice")
    safe = CountingRunner("safe", requeue_safe=True, delay=0.3, concurrency=8)
    once = CountingRunner("once", requeue_safe=False, delay=0.3, concurrency=8)
    for runner in (safe, once):
        await runner.start(await clients(entries, runner.name, role="agent"))
    ids = []
    for n in range(TASKS):
        agent = "safe" if n % 2 == 0 else "once"
        ids.append((await caller.tasks.start(agent, {"n": n}))["task_ids"][0])
    while sum(safe.runs.values()) + sum(once.runs.values()) < 40:
        await asyncio.sleep(0.05)

    owner = next(n for n in nodes if n.url == caller.node_url)
    owner.kill()
    killed = time.monotonic()
    while True:
        try:
            await caller.request("ping", timeout=5)
            break
        except RoomError:
            await asyncio.sleep(0.05)
    failover = time.monotonic() - killed
    print(f"failover: the room served again {failover:.2f} s after SIGKILL of its owner")
    assert caller.node_url != owner.url
    assert failover < 30

    deadline = time.monotonic() + 120
    while True:
        records = await _finished(caller, ids)
        if all(r["status"] in ("completed", "failed") for r in records):
            break
        assert time.monotonic() < deadline, [r["status"] for r in records if r["status"]]
        await asyncio.sleep(0.5)

    assert len(records) == TASKS
    for record in records:
        n = record["arguments"]["n"]
        if record["status"] == "completed":
            assert record["result"] == {"n": n}
        else:
            assert record["error"]["message"], record
    once_runs = [once.runs[n] for n in range(1, TASKS, 2)]
    assert max(once_runs) <= 1  # a runner that is not re-queue-safe never runs a task twice
    safe_records = [r for r in records if r["agent"] == "safe"]
    assert all(r["status"] == "completed" for r in safe_records)
    failed_once = [r for r in records if r["agent"] == "once" and r["status"] == "failed"]
    assert all("not re-queue-safe" in r["error"]["message"] for r in failed_once)
