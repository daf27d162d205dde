"""Faults of a cluster node: a service down at start, Redis lost mid-run, a lease taken
from a node that paused, nodes racing for one room, a redirect loop."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from taskroom.host.auth.tokens import create_token
from taskroom.host.client.room_client import RoomClient
from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.protocol.tasks import TaskRecord
from taskroom.host.server import RoomServer
from taskroom.host.server.build import build_room_server
from taskroom.host.server.cluster.install import ClusterNode, FencedStore
from taskroom.host.server.cluster.lease import LEASE_KEY, Holder
from taskroom.host.server.tasks import SQLiteTaskStore, TaskStoreError
from taskroom.toolkits import Toolkit, tool
from tests.processes import BIN, free_port
from tests.servers import RedisServer

from .nodes import SECRET


def serve(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "taskroom"), "room", "serve", *args],
        capture_output=True,
        text=True,
        env={"TASKROOM_SECRET": SECRET, "PATH": "/usr/bin:/bin"},
        timeout=60,
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_redis_down_at_start_is_one_error_naming_redis(tmp_path, postgres_dsn) -> None:
    port = free_port()
    dead = free_port()
    done = serve(
        [
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path),
            "--store",
            postgres_dsn,
            "--cluster",
            f"redis://127.0.0.1:{dead}/0",
            "--node-url",
            f"http://127.0.0.1:{port}",
        ]
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    [line] = error_lines(done.stderr)
    assert f"cannot reach Redis at redis://127.0.0.1:{dead}/0" in line


def test_postgres_down_at_start_is_one_error_naming_postgres(tmp_path, redis_server) -> None:
    port = free_port()
    dead = free_port()
    done = serve(
        [
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path),
            "--store",
            f"postgresql://taskroom@127.0.0.1:{dead}/tasks",
            "--cluster",
            redis_server.url,
            "--node-url",
            f"http://127.0.0.1:{port}",
        ]
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    [line] = error_lines(done.stderr)
    assert f"PostgreSQL at 127.0.0.1:{dead}/tasks" in line


def test_cluster_without_a_shared_store_is_refused(tmp_path, redis_server) -> None:
    port = free_port()
    done = serve(["--port", str(port), "--data-dir", str(tmp_path), "--cluster", redis_server.url])
    assert done.returncode == 1
    [line] = error_lines(done.stderr)
    assert "--store postgresql://" in line


# --- in-process nodes --------------------------------------------------------------------


async def start_node(
    tmp: Path, redis_url: str, store: str, node_url: str | None = None
) -> RoomServer:
    port = free_port()
    server = build_room_server(
        data_dir=tmp / f"node-{port}",
        secret=SECRET,
        store=store,
        cluster=redis_url,
        node_url=node_url or f"http://127.0.0.1:{port}",
    )
    await server.start("127.0.0.1", port)
    return server


async def join(server: RoomServer, room: str, identity: str) -> RoomClient:
    token = create_token(SECRET, room=room, identity=identity, role="user")
    client = RoomClient(server.base_url or "", room, token, reconnect=False)
    await client.connect()
    return client


async def healthz(server: RoomServer) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{server.base_url}/healthz") as resp,
    ):
        return resp.status, await resp.json()


@tool
def shout(text: str) -> str:
    """Upper-case the text."""
    return text.upper()


@pytest.fixture
async def own_redis() -> AsyncIterator[RedisServer]:
    """A Redis of this test's own, which the test may pause."""
    server = RedisServer()
    try:
        yield server
    finally:
        pause(server, signal.SIGCONT)
        server.remove()


def pause(server: RedisServer, sig: signal.Signals) -> None:
    assert server.proc is not None
    os.kill(server.proc.pid, sig)


async def health_until(server: RoomServer, status: int) -> dict[str, Any]:
    """Poll /healthz until it answers ``status`` (bounded: a node that never says so fails)."""
    for _ in range(300):
        code, body = await healthz(server)
        if code == status:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"/healthz never answered {status}: {body}")


async def test_redis_lost_mid_run_the_node_keeps_its_rooms_takes_no_new_ones_and_says_so(
    tmp_path, own_redis, postgres_dsn, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger="taskroom.host.server.cluster")
    server = await start_node(tmp_path, own_redis.url, postgres_dsn)
    try:
        alice = await join(server, "kept", "alice")
        bob = await join(server, "kept", "bob")
        await bob.host_toolkit(Toolkit(name="loud", tools=[shout]))
        assert (await healthz(server))[0] == 200

        pause(own_redis, signal.SIGSTOP)  # Redis stops answering
        body = await health_until(server, 503)
        assert body["status"] == "degraded"
        assert body["cluster"]["redis"].startswith("unreachable")
        assert body["cluster"]["accepting_rooms"] is False
        assert any("cannot reach Redis" in r.getMessage() for r in caplog.records)

        assert await alice.invoke_tool("loud", "shout", {"text": "still here"}) == "STILL HERE"
        with pytest.raises(RoomError) as refused:
            await join(server, "new-room", "carol")
        assert refused.value.code == ErrorCode.UNAVAILABLE
        assert "cannot reach Redis" in refused.value.message

        pause(own_redis, signal.SIGCONT)
        body = await health_until(server, 200)
        assert body["cluster"]["accepting_rooms"] is True
        carol = await join(server, "new-room", "carol")
        assert carol.node_url == server.base_url
        for client in (alice, bob, carol):
            await client.close()
    finally:
        await server.stop()


def record(room: str, task_id: str, status: str = "pending") -> TaskRecord:
    return TaskRecord(id=task_id, room=room, agent="a", tool="run_a_task", status=status)


async def test_a_node_that_paused_past_its_lease_is_fenced_out_of_the_store(
    tmp_path, redis_server
) -> None:
    lost: list[tuple[str, Holder | None]] = []

    async def on_lost(room: str, owner: Holder | None) -> None:
        lost.append((room, owner))

    old = ClusterNode(redis_server.url, "http://old.test", lease_ttl=1.0, on_lost=on_lost)
    new = ClusterNode(redis_server.url, "http://new.test", lease_ttl=1.0)
    inner = SQLiteTaskStore(tmp_path / "shared.sqlite3")
    await old.start()
    await new.start()
    try:
        fenced_old = FencedStore(inner, old)
        fenced_new = FencedStore(inner, new)
        assert await old.claim("paused") is None
        await fenced_old.save(record("paused", "t_1"))

        assert old._renewer is not None
        old._renewer.cancel()  # the old owner pauses: no renewals
        while await new.claim("paused") == "http://old.test":
            await asyncio.sleep(0.1)
        assert new.held["paused"].holder.fence > old.held["paused"].holder.fence

        await fenced_new.save(record("paused", "t_1", "running"))
        with pytest.raises(TaskStoreError, match="was not renewed in time"):
            await fenced_old.save(record("paused", "t_1", "failed"))
        with pytest.raises(TaskStoreError):
            await fenced_old.add_event("paused", "t_1", {"type": "log"})
        stored = await inner.get("paused", "t_1")
        assert stored is not None and stored.status == "running"

        await old.renew_once()  # it wakes up and learns it lost the room
        assert lost == [("paused", Holder("http://new.test", new.held["paused"].holder.fence))]
        assert "paused" not in old.held
    finally:
        await old.stop()
        await new.stop()
        await inner.close()


async def test_nodes_racing_for_rooms_each_room_gets_exactly_one_owner(redis_server) -> None:
    nodes = [ClusterNode(redis_server.url, f"http://racer{i}.test") for i in range(5)]
    for node in nodes:
        await node.start()
    try:
        rooms = [f"race-{i}" for i in range(20)]
        for room in rooms:
            answers = await asyncio.gather(*(node.claim(room) for node in nodes for _ in range(3)))
            winners = {nodes[i // 3].node_url for i, a in enumerate(answers) if a is None}
            assert len(winners) == 1, (room, answers)
            [winner] = winners
            assert {a for a in answers if a is not None} == {winner}
            holder = await nodes[0]._leases.holder(room)  # type: ignore[union-attr]
            assert holder == Holder(winner, 1)  # one acquisition: a node shares its own claims
    finally:
        for node in nodes:
            await node.stop()


async def test_a_redirect_loop_is_an_error_not_a_hang(tmp_path, redis_server, postgres_dsn) -> None:
    # A node misconfigured with another address: Redis names it the owner under its real
    # address, so it keeps sending clients to itself.
    server = await start_node(
        tmp_path, redis_server.url, postgres_dsn, node_url="http://127.0.0.1:9"
    )
    try:
        assert server.base_url is not None
        redis_client = ClusterNode(redis_server.url, "http://probe.test")
        await redis_client.start()
        assert redis_client._leases is not None
        await redis_client._leases.redis.set(
            LEASE_KEY.format(room="loop"), f"1|{server.base_url}", px=60_000
        )
        await redis_client.stop()
        with pytest.raises(RoomError) as failed:
            await join(server, "loop", "alice")
        assert failed.value.code == ErrorCode.FAILED
        assert "redirected in a loop" in failed.value.message
        assert f"{server.base_url} -> {server.base_url}" in failed.value.message
    finally:
        await server.stop()


async def test_a_node_that_loses_a_room_sends_its_clients_to_the_new_owner(
    tmp_path, redis_server, postgres_dsn
) -> None:
    first = await start_node(tmp_path, redis_server.url, postgres_dsn)
    second = await start_node(tmp_path, redis_server.url, postgres_dsn)
    try:
        token = create_token(SECRET, room="moving", identity="alice", role="user")
        alice = RoomClient(f"{first.base_url},{second.base_url}", "moving", token)
        await alice.connect()
        assert alice.node_url == first.base_url
        probe = ClusterNode(redis_server.url, "http://probe.test")
        await probe.start()
        assert probe._leases is not None
        # The lease now names the second node (as if it had taken the room while the
        # first one was cut off from Redis); the first learns it at its next renewal.
        await probe._leases.redis.set(
            LEASE_KEY.format(room="moving"), f"99|{second.base_url}", px=60_000
        )
        await probe.stop()
        await alice.wait_for_event("reconnected", timeout=30)
        assert alice.node_url == second.base_url
        assert "moving" not in first.rooms and "moving" in second.rooms
        assert [p.name for p in await alice.list_participants()] == ["alice"]
        await alice.close()
    finally:
        await first.stop()
        await second.stop()
