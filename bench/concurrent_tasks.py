"""Concurrent tasks through a room against a slow LLM, beside the same calls made directly.

    python bench/concurrent_tasks.py [--tasks 1000] [--latency 1.0] [--agents 2]
                                     [--transport aiohttp|httpx]

Four processes on loopback: the scripted LLM (every answer waits --latency seconds), the
room server, the agent process(es) (LLMTaskRunner, one OpenAI client each), and this
script, which starts every task at once and waits for all (``tasks.run``: one request
each). The baseline is the same
number of concurrent LLM requests sent straight from one process with the same client.

DESIGN's target is relative to the bound the LLM client itself sets: latency + requests
× the client's CPU per request ÷ cores (each task here makes one request). The client's
CPU per request is measured first, in this process, with the same transport.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import statistics
import sys
import tempfile
import time

import httpx2 as httpx
from bench_processes import BIN, SECRET, cpu_seconds, free_port, spawn, wait_up
from llm_client import cpu_per_request
from openai import AsyncOpenAI, DefaultAioHttpClient, DefaultAsyncHttpxClient
from rich.console import Console
from rich.table import Table

from taskroom.host.auth.tokens import create_token
from taskroom.host.client.room_client import RoomClient

ROOM = "bench"

TARGET_OF_BOUND = 1.25

AGENT_SCRIPT = """
import asyncio, sys
import httpx2 as httpx
from openai import AsyncOpenAI, DefaultAioHttpClient, DefaultAsyncHttpxClient
from taskroom.agents import LLMTaskRunner, OpenAIResponsesAdapter
from taskroom.host.client.room_client import RoomClient

async def main(url, room, token, base_url, concurrency, transport):
    make = DefaultAioHttpClient if transport == "aiohttp" else DefaultAsyncHttpxClient
    http = make(limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency))
    client = AsyncOpenAI(base_url=base_url, api_key="bench", http_client=http, max_retries=0)
    runner = LLMTaskRunner(llm_adapter=OpenAIResponsesAdapter(client=client), max_concurrency=concurrency, max_repairs=0)
    async with RoomClient(url, room, token) as c:
        await runner.start(c)
        await asyncio.Event().wait()

asyncio.run(main(*sys.argv[1:5], int(sys.argv[5]), sys.argv[6]))
"""


async def direct(base_url: str, n: int, transport: str) -> float:
    make = DefaultAioHttpClient if transport == "aiohttp" else DefaultAsyncHttpxClient
    http = make(limits=httpx.Limits(max_connections=n, max_keepalive_connections=n))
    client = AsyncOpenAI(base_url=base_url, api_key="bench", http_client=http, max_retries=0)
    began = time.perf_counter()
    await asyncio.gather(
        *(client.responses.create(model="scripted-model", input=f"task {i}") for i in range(n))
    )
    elapsed = time.perf_counter() - began
    await client.close()
    return elapsed


async def through_room(url: str, n: int) -> tuple[float, int, int]:
    token = create_token(SECRET, room=ROOM, identity="bench", role="admin")
    async with RoomClient(url, ROOM, token) as client:
        began = time.perf_counter()
        tasks = await asyncio.gather(
            *(
                client.tasks.run("llm-task-runner", {"prompt": f"task {i}"}, timeout=120)
                for i in range(n)
            )
        )
        elapsed = time.perf_counter() - began
    ids = [t["id"] for t in tasks]
    completed = sum(1 for t in tasks if t["status"] == "completed")
    errors = collections.Counter(
        str((t.get("error") or {}).get("message", t["status"]))[:160]
        for t in tasks
        if t["status"] != "completed"
    )
    for message, count in errors.most_common(3):
        print(f"{count} tasks did not complete: {message}")
    return elapsed, completed, len(set(ids))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--transport", choices=["aiohttp", "httpx"], default="aiohttp")
    args = parser.parse_args()

    llm_port, room_port = free_port(), free_port()
    llm_url = f"http://127.0.0.1:{llm_port}/v1"
    room_url = f"http://127.0.0.1:{room_port}"
    data = tempfile.mkdtemp(prefix="taskroom-bench-")
    procs = [
        spawn(
            [
                str(BIN / "taskroom"),
                "llm",
                "serve-test",
                "--port",
                str(llm_port),
                "--latency",
                str(args.latency),
            ]
        ),
        spawn(
            [str(BIN / "taskroom"), "room", "serve", "--port", str(room_port), "--data-dir", data],
            {"TASKROOM_SECRET": SECRET},
        ),
    ]
    instant_port = free_port()
    instant_url = f"http://127.0.0.1:{instant_port}/v1"
    procs.append(spawn([str(BIN / "taskroom"), "llm", "serve-test", "--port", str(instant_port)]))
    try:
        await wait_up(f"{instant_url}/models")
        await wait_up(f"{llm_url}/models")
        await wait_up(f"{room_url}/healthz")
        per_agent = -(-args.tasks // args.agents)
        for _ in range(args.agents):
            token = create_token(SECRET, room=ROOM, identity="llm-task-runner", role="agent")
            procs.append(
                spawn(
                    [
                        sys.executable,
                        "-c",
                        AGENT_SCRIPT,
                        room_url,
                        ROOM,
                        token,
                        llm_url,
                        str(per_agent),
                        args.transport,
                    ]
                )
            )
        admin = create_token(SECRET, room=ROOM, identity="bench", role="admin")
        async with RoomClient(room_url, ROOM, admin) as client:
            while len(await client.list_toolkits(name="llm-task-runner")) < args.agents:
                await asyncio.sleep(0.1)
        await through_room(room_url, min(50, args.tasks))  # warm up connections
        await direct(llm_url, min(50, args.tasks), args.transport)
        direct_times, room_times, lost = [], [], 0
        cpu_ms: dict[str, list[float]] = collections.defaultdict(list)
        client_ms = statistics.median(
            [await cpu_per_request(instant_url, args.transport, 500, 64) for _ in range(3)]
        )
        roles = {"LLM server": [procs[0]], "room": [procs[1]], "agent processes": procs[3:]}
        for _ in range(args.runs):
            direct_times.append(await direct(llm_url, args.tasks, args.transport))
            before = {role: sum(cpu_seconds(p.pid) for p in ps) for role, ps in roles.items()}
            caller0 = time.process_time()
            elapsed, completed, unique = await through_room(room_url, args.tasks)
            cpu_ms["caller (this script)"].append((time.process_time() - caller0) * 1e3)
            for role, ps in roles.items():
                cpu_ms[role].append((sum(cpu_seconds(p.pid) for p in ps) - before[role]) * 1e3)
            room_times.append(elapsed)
            lost += args.tasks - completed + (args.tasks - unique)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)

    table = Table(
        title=f"{args.tasks} concurrent tasks, LLM latency {args.latency:g} s, {args.agents} agent processes, {args.runs} runs"
    )
    table.add_column("path")
    table.add_column("median s", justify="right")
    table.add_column("min s", justify="right")
    table.add_row(
        "direct LLM calls (baseline)",
        f"{statistics.median(direct_times):.2f}",
        f"{min(direct_times):.2f}",
    )
    table.add_row(
        "tasks through the room", f"{statistics.median(room_times):.2f}", f"{min(room_times):.2f}"
    )
    cores = os.cpu_count() or 1
    bound = args.latency + args.tasks * client_ms / 1e3 / cores
    table.add_row("bound: latency + requests × client CPU ÷ cores", f"{bound:.2f}", "")
    per_task = {role: statistics.median(v) / args.tasks for role, v in cpu_ms.items()}
    machine_bound = args.latency + sum(per_task.values()) * args.tasks / 1e3 / cores
    table.add_row(
        "bound the machine sets: latency + every process's CPU ÷ cores", f"{machine_bound:.2f}", ""
    )
    console = Console()
    console.print(table)
    cpu_table = Table(title="CPU per task through the room, by process (medians)")
    cpu_table.add_column("process")
    cpu_table.add_column("ms per task", justify="right")
    for role, ms in per_task.items():
        cpu_table.add_row(role, f"{ms:.2f}")
    cpu_table.add_row("all", f"{sum(per_task.values()):.2f}")
    console.print(cpu_table)
    room_s = statistics.median(room_times)
    ratio = room_s / bound
    console.print(
        f"client CPU per request ({args.transport}): {client_ms:.2f} ms; {cores} cores; "
        f"room / direct: {room_s / statistics.median(direct_times):.2f}x; "
        f"tasks lost or duplicated: {lost}"
    )
    console.print(
        f"through the room / the machine's bound: {room_s / machine_bound:.2f}x\n"
        f"through the room / bound: {ratio:.2f}x (DESIGN target ≤ {TARGET_OF_BOUND}x, none lost) "
        f"-> {'meets' if ratio <= TARGET_OF_BOUND and not lost else 'MISSES'}"
    )


if __name__ == "__main__":
    asyncio.run(main())
