"""Rooms and tasks across 1, 2 and 3 room-server nodes, and the time a room takes to
serve again after the SIGKILL of the node that owned it.

    python bench/cluster.py [--rooms R] [--seconds S] [--kills K]

Starts a throwaway PostgreSQL and Redis (the machine's Debian packages, as the tests do)
and ``taskroom room serve --cluster`` nodes on loopback. For each cluster size, R rooms
each get an agent answering at once and a caller keeping 8 tasks in flight; each room is
entered through a different node first, so the rooms spread over the nodes. Tasks/s is
the median of three windows of S/3 seconds. Failover: a 3-node cluster, one room with an
agent and a caller entering by every node; the owner is SIGKILLed and the time until the
caller's next request is answered (by the new owner) is measured K times; the median is
reported. Every client runs in this one process, which shares the machine's cores with
the nodes: read tasks/s as what this machine gives, not as a cluster's ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from taskroom.host.auth.tokens import create_token  # noqa: E402
from taskroom.host.client.room_client import RoomClient  # noqa: E402
from taskroom.host.protocol import RoomError  # noqa: E402
from tests.cluster.nodes import SECRET, CountingRunner, Node  # noqa: E402
from tests.servers import PostgresServer, RedisServer, fresh_database  # noqa: E402

IN_FLIGHT = 8
WINDOWS = 3
FAILOVER_TARGET = 10.0


async def join(url: str, room: str, identity: str, role: str = "user") -> RoomClient:
    client = RoomClient(url, room, create_token(SECRET, room=room, identity=identity, role=role))
    await client.connect()
    return client


async def tasks_per_second(nodes: list[Node], rooms: int, seconds: float) -> tuple[float, str]:
    urls = [n.url for n in nodes]
    prefix = f"bench{len(nodes)}"
    clients: list[RoomClient] = []
    done = [0]
    for r in range(rooms):
        first = r % len(urls)
        entry = ",".join(urls[first:] + urls[:first])
        agent = await join(entry, f"{prefix}-{r}", "instant", role="agent")
        await CountingRunner("instant", requeue_safe=True, delay=0, concurrency=64).start(agent)
        clients.append(agent)
        clients.append(await join(entry, f"{prefix}-{r}", "caller"))
    callers = clients[1::2]
    owners = [c.node_url for c in callers]
    spread = "/".join(str(owners.count(u)) for u in urls)

    running = [True]

    async def loop(caller: RoomClient) -> None:
        n = 0
        while running[0]:  # a flag beside cancel: 3.11's wait_for can swallow a cancel
            started = await caller.tasks.start("instant", {"n": n})
            await caller.tasks.wait(started["task_ids"][0], timeout=60)
            done[0] += 1
            n += 1

    workers = [asyncio.ensure_future(loop(c)) for c in callers for _ in range(IN_FLIGHT)]
    await asyncio.sleep(1.0)  # warm-up
    rates = []
    for _ in range(WINDOWS):
        before, t0 = done[0], time.perf_counter()
        await asyncio.sleep(seconds / WINDOWS)
        rates.append((done[0] - before) / (time.perf_counter() - t0))
    running[0] = False
    for w in workers:
        w.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    for client in callers + clients[0::2]:
        await client.close()
    return statistics.median(rates), spread


async def failover_once(tmp: Path, redis: RedisServer, dsn: str, index: int) -> float:
    nodes = [Node(tmp, f"f{index}-{i}", redis.url, dsn) for i in range(3)]
    entry = ",".join(n.url for n in nodes)
    room = f"failover-{index}"
    agent = await join(entry, room, "instant", role="agent")
    await CountingRunner("instant", requeue_safe=True, delay=0, concurrency=8).start(agent)
    caller = await join(entry, room, "caller")
    await caller.tasks.start("instant", {"n": 0})
    owner = next(n for n in nodes if n.url == caller.node_url)
    owner.kill()
    killed = time.monotonic()
    while True:
        try:
            await caller.request("ping", timeout=5)
            break
        except RoomError:
            await asyncio.sleep(0.02)
    elapsed = time.monotonic() - killed
    await caller.close()
    await agent.close()
    for node in nodes:
        node.stop()
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--kills", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    console = Console()
    postgres, redis = PostgresServer(), RedisServer()
    try:
        with tempfile.TemporaryDirectory(prefix="taskroom-bench-cluster-") as folder:
            tmp = Path(folder)
            table = Table(title=f"{args.rooms} rooms, {IN_FLIGHT} tasks in flight per room")
            for column in ("nodes", "rooms per node", "tasks/s (median)", "vs 1 node"):
                table.add_column(column, justify="right")
            base = None
            for size in (1, 2, 3):
                dsn = await fresh_database(postgres)
                nodes = [Node(tmp, f"n{size}-{i}", redis.url, dsn) for i in range(size)]
                try:
                    rate, spread = await tasks_per_second(nodes, args.rooms, args.seconds)
                finally:
                    for node in nodes:
                        node.stop()
                base = base or rate
                table.add_row(str(size), spread, f"{rate:,.0f}", f"{rate / base:.2f}x")
            console.print(table)

            times = []
            for k in range(args.kills):
                times.append(await failover_once(tmp, redis, await fresh_database(postgres), k))
            median = statistics.median(times)
            verdict = "meets" if median < FAILOVER_TARGET else "misses"
            console.print(
                f"failover (3 nodes, owner SIGKILLed, {args.kills} runs): median {median:.2f} s "
                f"(runs: {', '.join(f'{t:.2f}' for t in times)}); {verdict} the "
                f"{FAILOVER_TARGET:g} s target"
            )
    finally:
        postgres.remove()
        redis.remove()


if __name__ == "__main__":
    asyncio.run(main())
