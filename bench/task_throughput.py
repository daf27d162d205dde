"""Tasks per second one room sustains, and the room's CPU time per task.

    python bench/task_throughput.py [--tasks 4000] [--runs 3] [--queued 1000,5000]

The agents answer at once (no LLM), so every cost measured is the room's and the wire's.
Processes on loopback: the room server (the full server of ``taskroom room serve``: tasks
in SQLite, agent calls, Studio), the agent process(es) (a TaskRunner whose ``ask`` returns
at once), and this script, the caller. The room's CPU time is read from
``/proc/<pid>/stat`` before and after each measurement.

Two measurements:

* **throughput**: ``--inflight`` callers (64) each start a task and wait for it, again and
  again, until ``--tasks`` have finished. Reports tasks/s and room CPU per task, twice:
  with a ``tasks.start`` and a ``tasks.wait`` per task, and with one request
  (``tasks.run``: a ``tasks.start`` with ``wait``) where the room takes it.
* **queue cost**: with no agent in the room, N tasks are started and queue; then an agent
  joins and drains them. Reports room CPU per task for each N: if dispatch walked the
  queue, it would grow with N; it must stay flat.

Every measurement runs ``--runs`` times; the tables show medians, and the last table the
ratios against the DESIGN targets (≥ 2,000 tasks/s, ≤ 0.5 ms of room CPU per task).

``--baseline-src DIR`` also runs the room and the agent from another checkout of the
project (the commit before a change, say), alternating with this one run by run, and
adds a table of both medians and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any

from bench_processes import ScriptChild, run_child, source_env

HOST = "127.0.0.1"
ROOM = "throughput"
AGENT = "instant"
SCRIPT = os.path.abspath(__file__)
TARGET_TASKS_PER_S = 2_000
TARGET_CPU_MS = 0.5

Samples = dict[str, list[float]]


# --- the processes the benchmark starts ----------------------------------------------------


async def serve_room(secret: str) -> None:
    from taskroom.host.server.build import build_room_server

    with tempfile.TemporaryDirectory(prefix="taskroom-bench-") as data_dir:
        server = build_room_server(data_dir=data_dir, secret=secret)
        url = await server.start(HOST, 0)
        print(f"READY {url.rsplit(':', 1)[1]}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()


async def serve_agent(port: str, secret: str, concurrency: str, gated: str = "") -> None:
    """An agent answering at once; ``gated`` holds every task until ``gate.open`` is called,
    so the benchmark can fill the room's queue behind busy instances."""
    from taskroom.agents import TaskRunner
    from taskroom.host.auth.tokens import create_token
    from taskroom.host.client.room_client import RoomClient
    from taskroom.toolkits import Toolkit, tool

    gate = asyncio.Event()
    if not gated:
        gate.set()

    @tool()
    def open_gate() -> str:
        """Let held tasks finish."""
        gate.set()
        return "open"

    class Instant(TaskRunner):
        """Answers every task at once: what is left is the room's cost."""

        async def ask(self, context: Any, arguments: dict[str, Any]) -> Any:
            if not gate.is_set():
                await gate.wait()
            return {"echo": arguments.get("n")}

    runner = Instant(name=AGENT, max_concurrency=int(concurrency))
    token = create_token(secret, room=ROOM, identity=AGENT, role="agent")
    async with RoomClient(f"http://{HOST}:{port}", ROOM, token) as client:
        if gated:
            await client.host_toolkit(Toolkit(name="gate", tools=[open_gate]))
        await runner.start(client)
        print(f"READY {port}", flush=True)
        await asyncio.Event().wait()


def child_main(role: str, args: list[str]) -> None:
    """Run one child (profiling and the event loop: see ``run_child``)."""
    logging.basicConfig(level=logging.WARNING)
    run_child(serve_room(*args) if role == "room" else serve_agent(*args), room=role == "room")


class Child(ScriptChild):
    """A process started from this file; it prints ``READY <port>`` when up."""

    script = SCRIPT


# --- the caller -----------------------------------------------------------------------------


async def throughput(
    client: Any, room: Child, agents: list[Child], tasks: int, inflight: int, one_request: bool
) -> tuple[float, float, float, float, float]:
    """(tasks/s, room CPU ms per task, of it the room's event-loop thread, agent CPU ms
    per task, this caller's CPU ms per task) with ``inflight`` tasks started-and-waited at once: ``one_request`` with
    ``tasks.run`` (one ``tasks.start`` that answers when the task ends), else with a
    ``tasks.start`` and a ``tasks.wait``."""
    counter = iter(range(tasks))
    failed = 0

    async def worker() -> None:
        nonlocal failed
        for n in counter:
            if one_request:
                status = (await client.tasks.run(AGENT, {"n": n}, timeout=60))["status"]
            else:
                started = await client.tasks.start(AGENT, {"n": n})
                task_id = started["task_ids"][0]
                waited = await client.tasks.wait(task_id, timeout=60)
                status = waited["tasks"][0]["status"]
            if status != "completed":
                failed += 1

    agent_cpu0 = sum(a.cpu_seconds() for a in agents)
    caller0 = time.process_time()
    loop0 = room.cpu_seconds(main_thread=True)
    cpu0, t0 = room.cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    elapsed, cpu = time.perf_counter() - t0, room.cpu_seconds() - cpu0
    loop_cpu = room.cpu_seconds(main_thread=True) - loop0
    agent_cpu = sum(a.cpu_seconds() for a in agents) - agent_cpu0
    caller_cpu = time.process_time() - caller0
    if failed:
        raise RuntimeError(f"{failed} of {tasks} tasks did not complete")
    per_task = 1e3 / tasks
    return (
        tasks / elapsed,
        cpu * per_task,
        loop_cpu * per_task,
        agent_cpu * per_task,
        caller_cpu * per_task,
    )


async def queue_cost(
    client: Any, room: Child, port: str, secret: str, queued: int, env: dict[str, str]
) -> float:
    """Room CPU ms per task to start ``queued`` tasks behind a busy agent (so they queue),
    then let the agent drain them."""
    concurrency = 64
    total = queued + concurrency
    done = asyncio.Event()
    finished = 0

    def on_update(data: dict[str, Any]) -> None:
        nonlocal finished
        if data.get("status") in ("completed", "failed", "cancelled"):
            finished += 1
            if finished == total:
                done.set()

    agent = Child("agent", port, secret, str(concurrency), "gated", env=env)
    await agent.start()
    unsubscribe = client.on("task.updated", on_update)
    await client.tasks.subscribe(all=True)
    try:
        cpu0 = room.cpu_seconds()
        for chunk in range(0, total, 256):
            await asyncio.gather(
                *(
                    client.tasks.start(AGENT, {"n": n})
                    for n in range(chunk, min(total, chunk + 256))
                )
            )
        await client.invoke_tool("gate", "open_gate", {})
        await asyncio.wait_for(done.wait(), 600)
        cpu = room.cpu_seconds() - cpu0
    finally:
        unsubscribe()
        await client.request("tasks.unsubscribe", {"all": True})
        await agent.stop()
    return cpu / total * 1e3


MEASURES = ("tasks/s", "cpu", "loop cpu", "agent cpu", "caller cpu")


async def starts_can_wait(client: Any) -> bool:
    """Whether the room takes ``tasks.start`` with ``wait`` (a baseline may predate it):
    asked of an agent that does not exist, so nothing starts."""
    from taskroom.host.protocol import ErrorCode, RoomError

    try:
        await client.request("tasks.start", {"agent": "no-such-agent", "wait": 0})
    except RoomError as exc:
        return exc.code != ErrorCode.INVALID_REQUEST
    return True


@contextlib.asynccontextmanager
async def fresh_room(env: dict[str, str]) -> AsyncIterator[tuple[Child, str, str, Any]]:
    """A room server of its own with an empty task store, and an admin client in it:
    each measurement starts from the same state, whatever ran before it."""
    from taskroom.host.auth.tokens import create_token
    from taskroom.host.client.room_client import RoomClient

    secret = secrets.token_urlsafe(32)
    room = Child("room", secret, env=env)
    port = await room.start()
    token = create_token(secret, room=ROOM, identity="bench", role="admin")
    try:
        async with RoomClient(f"http://{HOST}:{port}", ROOM, token) as client:
            yield room, port, secret, client
    finally:
        await room.stop()


async def run_once(args: argparse.Namespace, env: dict[str, str], samples: Samples) -> None:
    """One run of every measurement, the room and agents importing taskroom as ``env``
    says; appends to ``samples``."""
    for queued in args.queued:
        async with fresh_room(env) as (room, port, secret, client):
            cost = await queue_cost(client, room, port, secret, queued, env)
            samples.setdefault(f"queue {queued}", []).append(cost)
    modes = [("", False), ("1r ", True)]
    for prefix, one_request in modes:
        async with fresh_room(env) as (room, port, secret, client):
            if one_request and not await starts_can_wait(client):
                continue
            agents = [Child("agent", port, secret, "64", env=env) for _ in range(args.agents)]
            await asyncio.gather(*(a.start() for a in agents))
            try:
                warmup = min(500, args.tasks)
                await throughput(client, room, agents, warmup, args.inflight, one_request)
                measured = await throughput(
                    client, room, agents, args.tasks, args.inflight, one_request
                )
                for key, value in zip(MEASURES, measured, strict=True):
                    samples.setdefault(prefix + key, []).append(value)
            finally:
                for a in agents:
                    await a.stop()


async def run(args: argparse.Namespace) -> dict[str, Samples]:
    """Samples per side: ``new`` (this checkout) and, with a baseline, ``base``; the two
    alternate run by run so both see the same machine."""
    sides: dict[str, dict[str, str]] = {"new": {}}
    if args.baseline_src:
        # --profile profiles this checkout's room only.
        base_env = {**source_env(args.baseline_src), "TASKROOM_BENCH_PROFILE": ""}
        sides = {"base": base_env, "new": {}}
    samples: dict[str, Samples] = {side: {} for side in sides}
    for _ in range(args.runs):
        for side, env in sides.items():
            await run_once(args, env, samples[side])
    return samples


# --- the report -----------------------------------------------------------------------------


ROWS = [
    ("start + wait: tasks/s", "tasks/s", "{:,.0f}"),
    ("  room CPU per task, ms", "cpu", "{:.3f}"),
    ("    of it the event loop's thread, ms", "loop cpu", "{:.3f}"),
    ("  agent process CPU per task, ms", "agent cpu", "{:.3f}"),
    ("  caller (this script) CPU per task, ms", "caller cpu", "{:.3f}"),
    ("one request (tasks.run): tasks/s", "1r tasks/s", "{:,.0f}"),
    ("  room CPU per task, ms", "1r cpu", "{:.3f}"),
    ("    of it the event loop's thread, ms", "1r loop cpu", "{:.3f}"),
    ("  agent process CPU per task, ms", "1r agent cpu", "{:.3f}"),
    ("  caller (this script) CPU per task, ms", "1r caller cpu", "{:.3f}"),
]


def median_of(samples: Samples, key: str, fmt: str) -> str:
    return fmt.format(statistics.median(samples[key])) if key in samples else "n/a"


def compare(by_side: dict[str, Samples], args: argparse.Namespace) -> None:
    """Medians of the baseline checkout and of this one, and new / base."""
    from rich.console import Console
    from rich.table import Table

    base, new = by_side["base"], by_side["new"]
    table = Table(title=f"Baseline ({args.baseline_src}) vs this checkout, medians of {args.runs}")
    for name in ("measure", "base", "new", "new / base"):
        table.add_column(name, justify="left" if name == "measure" else "right")
    rows = ROWS + [
        (f"room CPU per task, {q:,} queued, ms", f"queue {q}", "{:.3f}") for q in args.queued
    ]
    for label, key, fmt in rows:
        ratio = ""
        if key in base and key in new:
            ratio = f"{statistics.median(new[key]) / statistics.median(base[key]):.2f}×"
        table.add_row(label, median_of(base, key, fmt), median_of(new, key, fmt), ratio)
    Console().print(table)


def report(samples: Samples, args: argparse.Namespace, seconds: float) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    title = (
        f"Tasks through one room, agents answering at once ({args.agents} agent process(es), "
        f"{args.inflight} in flight, {args.tasks:,} tasks, {args.runs} runs, "
        f"{os.cpu_count()} CPUs, {seconds:.0f} s)"
    )
    table = Table(title=title)
    for name in ("measure", "median", "min", "max"):
        table.add_column(name, justify="left" if name == "measure" else "right")
    rows = ROWS + [
        (f"room CPU per task, {q:,} queued, ms", f"queue {q}", "{:.3f}") for q in args.queued
    ]
    for label, key, fmt in rows:
        values = samples.get(key)
        if values is None:
            continue
        table.add_row(
            label,
            fmt.format(statistics.median(values)),
            fmt.format(min(values)),
            fmt.format(max(values)),
        )
    console.print(table)

    # Judged on the one-request path where the room has it: it is how tasks.run and
    # room.agents.ask start and wait.
    prefix = "1r " if "1r tasks/s" in samples else ""
    rate = statistics.median(samples[prefix + "tasks/s"])
    cpu = statistics.median(samples[prefix + "cpu"])
    queue = [statistics.median(samples[f"queue {q}"]) for q in args.queued]
    flat = queue[-1] / queue[0]
    verdict = Table(title="Against the DESIGN targets")
    for name in ("measure", "result", "target", "ratio", "status"):
        verdict.add_column(name, justify="left" if name in ("measure", "status") else "right")
    verdict.add_row(
        f"tasks/s (median, {'one request' if prefix else 'start + wait'})",
        f"{rate:,.0f}",
        f"≥ {TARGET_TASKS_PER_S:,}",
        f"{rate / TARGET_TASKS_PER_S:.2f}×",
        "meets" if rate >= TARGET_TASKS_PER_S else "MISSES",
    )
    verdict.add_row(
        f"room CPU per task, ms (median, {'one request' if prefix else 'start + wait'})",
        f"{cpu:.3f}",
        f"≤ {TARGET_CPU_MS}",
        f"{cpu / TARGET_CPU_MS:.2f}×",
        "meets" if cpu <= TARGET_CPU_MS else "MISSES",
    )
    verdict.add_row(
        f"queue cost, {args.queued[-1]:,} / {args.queued[0]:,} queued",
        f"{flat:.2f}×",
        "≈ 1× (flat)",
        "",
        "meets" if flat <= 1.25 else "MISSES",
    )
    console.print(verdict)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_serve"]:
        child_main(argv[1], argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=4000, help="tasks per throughput run")
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--agents", type=int, default=1, help="agent processes")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--queued",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1000, 5000],
        help="queue lengths to compare, comma-separated",
    )
    parser.add_argument(
        "--profile", metavar="FILE", help="run the room under cProfile and write its stats here"
    )
    parser.add_argument(
        "--loop", choices=["asyncio", "uvloop"], default="asyncio", help="the room's event loop"
    )
    parser.add_argument(
        "--baseline-src",
        metavar="DIR",
        help="another checkout to measure alongside this one, run by run (e.g. the base commit)",
    )
    args = parser.parse_args(argv)
    os.environ["TASKROOM_BENCH_LOOP"] = args.loop
    if args.profile:
        os.environ["TASKROOM_BENCH_PROFILE"] = os.path.abspath(args.profile)
    started = time.perf_counter()
    by_side = asyncio.run(run(args))
    report(by_side["new"], args, time.perf_counter() - started)
    if "base" in by_side:
        compare(by_side, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
