"""Round trip of a small tool call through a room, against a raw WebSocket echo.

    python bench/room_rtt.py [--calls N] [--seconds S] [--runs N] [--baseline-src DIR]
                             [--profile FILE]

Three processes for the room path, so none of them steals the others' event loop:
the room server, a participant hosting an ``echo`` toolkit, and the caller (a
RoomClient). The baseline is an aiohttp WebSocket echo server in its own process, driven
from this process by a client on the same ``websockets`` library that frames, sends,
matches replies by id and decodes JSON the way RoomClient does. Each path is measured at
concurrency 1 and 16 (16 calls in flight on one connection). Everything is on loopback.

Each process's CPU time per call is reported beside the latencies (room, tool host,
caller): on a machine with fewer free cores than busy processes, their sum bounds the
calls per second, whatever the room alone costs.

``--calls`` caps the calls per measurement, ``--seconds`` the total measuring time
(split evenly over the four measurements); start-up and warm-up come on top, a few
seconds. ``--runs`` repeats everything and reports medians over the runs.

``--baseline-src DIR`` also measures the room, the tool host and the caller from another
checkout of the project, the commit before a change say, in the same runs, and adds its
rows and the ratios new / base. ``--profile FILE`` runs this checkout's room under
cProfile and writes its stats to FILE, the tool host's to FILE.host and the caller's to
FILE.caller.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench_processes import ScriptChild, cpu_seconds, run_child, source_env

HOST = "127.0.0.1"
SCRIPT = os.path.abspath(__file__)
ROOM = "bench"
TARGET_RATIO = 2.5
TARGET_CALLS_PER_S = 5_000
WARMUP_CALLS = 300
PAYLOAD = {"text": "hello, room"}


# --- the processes the benchmark starts ----------------------------------------------------


def _ready(port: int | str) -> None:
    print(f"READY {port}", flush=True)


async def serve_room(secret: str) -> None:
    from taskroom.host.server import RoomServer

    with tempfile.TemporaryDirectory(prefix="taskroom-bench-") as data_dir:
        server = RoomServer(data_dir=data_dir, secret=secret, heartbeat=60.0)
        url = await server.start(HOST, 0)
        _ready(url.rsplit(":", 1)[1])
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()


async def serve_host(port: str, secret: str) -> None:
    from taskroom.host.auth.tokens import create_token
    from taskroom.host.client.room_client import RoomClient
    from taskroom.toolkits import Toolkit, tool

    @tool(read_only=True)
    async def echo(text: str) -> str:
        """Return the text unchanged.

        Args:
            text: What to echo.
        """
        return text

    token = create_token(secret, room=ROOM, identity="bench-host", role="tool")
    async with RoomClient(f"http://{HOST}:{port}", ROOM, token) as client:
        await client.host_toolkit(Toolkit(name="bench", tools=[echo]))
        _ready(port)
        await asyncio.Event().wait()


async def serve_echo() -> None:
    from aiohttp import WSMsgType, web

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/echo", handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    sockets = site._server.sockets if site._server else []  # noqa: SLF001
    _ready(sockets[0].getsockname()[1])
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


async def drive_caller(
    port: str, secret: str, room_pid: str, host_pid: str, max_calls: str, seconds: str
) -> None:
    """The caller: call the echo tool through the room at 1 and 16 in flight, then print
    the measurements as one ``RESULTS <json>`` line."""
    from taskroom.host.auth.tokens import create_token
    from taskroom.host.client.room_client import RoomClient

    def cpu() -> tuple[float, float, float]:
        return cpu_seconds(int(room_pid)), cpu_seconds(int(host_pid)), time.process_time()

    token = create_token(secret, room=ROOM, identity="bench-caller", role="user")
    async with RoomClient(f"http://{HOST}:{port}", ROOM, token) as caller:
        assert await caller.invoke_tool("bench", "echo", PAYLOAD) == PAYLOAD["text"]
        _ready(port)
        results = [
            await measure(
                "",
                lambda: caller.invoke_tool("bench", "echo", PAYLOAD),
                concurrency,
                int(max_calls),
                float(seconds),
                cpu,
            )
            for concurrency in (1, 16)
        ]
    print("RESULTS " + json.dumps([dataclasses.asdict(r) for r in results]), flush=True)


def child_main(role: str, args: list[str]) -> None:
    """Run one child (profiling and the event loop: see ``run_child``)."""
    logging.basicConfig(level=logging.WARNING)
    servers: dict[str, Callable[..., Awaitable[None]]] = {
        "room": serve_room,
        "host": serve_host,
        "caller": drive_caller,
        "echo": serve_echo,
    }
    run_child(servers[role](*args), room=role == "room", profile=role != "echo")


class Child(ScriptChild):
    """A server process started from this file; it prints ``READY <port>`` when up."""

    script = SCRIPT


# --- the caller -----------------------------------------------------------------------------


class EchoClient:
    """The baseline: same library, framing and id matching as RoomClient, no room."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> EchoClient:
        from websockets.asyncio.client import connect

        self._ws = await connect(self.url, compression=None, max_size=16 * 1024 * 1024)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    async def _read(self) -> None:
        async for raw in self._ws:
            frame = json.loads(raw)
            fut = self._pending.pop(frame.get("id"), None)
            if fut is not None and not fut.done():
                fut.set_result(frame.get("data") or {})

    async def call(self, data: dict[str, Any]) -> dict[str, Any]:
        rid = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        frame = {"type": "echo", "data": data, "id": rid}
        await self._ws.send(json.dumps(frame, separators=(",", ":")))
        return await fut


@dataclass
class Result:
    path: str
    concurrency: int
    latencies: list[float]
    elapsed: float
    server_cpu: float
    """CPU seconds the server process (the room, or the echo server) spent meanwhile."""
    host_cpu: float
    """CPU seconds the tool host spent meanwhile (none on the echo path)."""
    caller_cpu: float
    """CPU seconds the calling process spent meanwhile."""

    @property
    def calls(self) -> int:
        return len(self.latencies)

    @property
    def median_us(self) -> float:
        return statistics.median(self.latencies) * 1e6

    @property
    def p99_us(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1e6

    @property
    def server_cpu_us(self) -> float:
        return self.server_cpu / self.calls * 1e6 if self.calls else 0.0

    @property
    def host_cpu_us(self) -> float:
        return self.host_cpu / self.calls * 1e6 if self.calls else 0.0

    @property
    def caller_cpu_us(self) -> float:
        return self.caller_cpu / self.calls * 1e6 if self.calls else 0.0

    @property
    def per_second(self) -> float:
        return self.calls / self.elapsed if self.elapsed > 0 else 0.0


async def measure(
    path: str,
    call: Callable[[], Awaitable[Any]],
    concurrency: int,
    max_calls: int,
    seconds: float,
    cpu: Callable[[], tuple[float, float, float]],
) -> Result:
    """Run ``call`` from ``concurrency`` workers until ``max_calls`` or ``seconds``;
    ``cpu`` reads the server's, the tool host's and the caller's CPU seconds so far."""
    for _ in range(WARMUP_CALLS // concurrency or 1):
        await asyncio.gather(*(call() for _ in range(concurrency)))
    latencies: list[float] = []
    issued = itertools.count()
    cpu0 = cpu()
    started = time.perf_counter()
    deadline = started + seconds
    clock = time.perf_counter

    async def worker() -> None:
        while next(issued) < max_calls and clock() < deadline:
            t0 = clock()
            await call()
            latencies.append(clock() - t0)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    spent = [b - a for a, b in zip(cpu0, cpu(), strict=True)]
    return Result(path, concurrency, latencies, elapsed, *spent)


ROOM_PATH = "room tool call"
BASE_PATH = "room tool call, base"


async def measure_room(
    path: str, env: dict[str, str], max_calls: int, seconds: float, profile: str | None = None
) -> list[Result]:
    """A room, a tool host and a caller importing taskroom as ``env`` says, called at 1
    and 16 in flight; with ``profile``, each child runs under cProfile (see ``main``)."""

    def child_env(suffix: str) -> dict[str, str]:
        return {**env, "TASKROOM_BENCH_PROFILE": profile + suffix} if profile else env

    secret = secrets.token_urlsafe(32)
    room = Child("room", secret, env=child_env(""))
    host: Child | None = None
    caller: Child | None = None
    try:
        room_port = await room.start()
        host = Child("host", room_port, secret, env=child_env(".host"))
        await host.start()
        assert room.proc is not None and host.proc is not None
        caller = Child(
            "caller",
            room_port,
            secret,
            str(room.proc.pid),
            str(host.proc.pid),
            str(max_calls),
            str(seconds),
            env=child_env(".caller"),
        )
        await caller.start()
        assert caller.proc is not None and caller.proc.stdout is not None
        output = await asyncio.wait_for(caller.proc.stdout.read(), 4 * seconds + 60)
        await caller.proc.wait()
    finally:
        for child in (caller, host, room):
            if child is not None:
                await child.stop()
    for line in output.decode().splitlines():
        if line.startswith("RESULTS "):
            return [Result(**{**r, "path": path}) for r in json.loads(line.split(" ", 1)[1])]
    raise RuntimeError(f"the caller reported no results (exit {caller.proc.returncode})")


async def run(
    max_calls: int, seconds: float, baseline: dict[str, str] | None, profile: str | None
) -> list[Result]:
    """One run: the echo, then the room (and the baseline's room, if any)."""
    rooms = 2 if baseline is None else 3
    per_measurement = seconds / (2 * rooms)
    echo = Child("echo")
    results: list[Result] = []

    def cpu() -> tuple[float, float, float]:
        return echo.cpu_seconds(), 0.0, time.process_time()

    try:
        echo_port = await echo.start()
        async with EchoClient(f"ws://{HOST}:{echo_port}/echo") as client:
            for concurrency in (1, 16):
                results.append(
                    await measure(
                        "raw echo",
                        lambda: client.call(PAYLOAD),
                        concurrency,
                        max_calls,
                        per_measurement,
                        cpu,
                    )
                )
    finally:
        await echo.stop()
    if baseline is not None:
        results += await measure_room(BASE_PATH, baseline, max_calls, per_measurement)
    results += await measure_room(ROOM_PATH, {}, max_calls, per_measurement, profile)
    return results


@dataclass
class Row:
    """One path at one concurrency: medians over the runs."""

    path: str
    concurrency: int
    calls: int
    median_us: float
    p99_us: float
    per_second: float
    server_cpu_us: float
    host_cpu_us: float
    caller_cpu_us: float

    @property
    def total_cpu_us(self) -> float:
        return self.server_cpu_us + self.host_cpu_us + self.caller_cpu_us


def combine(runs: list[list[Result]]) -> list[Row]:
    by: dict[tuple[str, int], list[Result]] = {}
    for results in runs:
        for r in results:
            by.setdefault((r.path, r.concurrency), []).append(r)
    med = statistics.median
    return [
        Row(
            path,
            c,
            sum(r.calls for r in rs),
            med(r.median_us for r in rs),
            med(r.p99_us for r in rs),
            med(r.per_second for r in rs),
            med(r.server_cpu_us for r in rs),
            med(r.host_cpu_us for r in rs),
            med(r.caller_cpu_us for r in rs),
        )
        for (path, c), rs in by.items()
    ]


# --- the report -----------------------------------------------------------------------------


def report(results: list[Row], total_seconds: float, runs: int) -> None:
    by = {(r.path, r.concurrency): r for r in results}
    rows = [
        [
            r.path,
            str(r.concurrency),
            f"{r.calls:,}",
            f"{r.median_us:,.0f}",
            f"{r.p99_us:,.0f}",
            f"{r.per_second:,.0f}",
            f"{r.server_cpu_us:,.0f}",
            f"{r.host_cpu_us:,.0f}" if r.host_cpu_us else "-",
            f"{r.caller_cpu_us:,.0f}",
            f"{r.total_cpu_us:,.0f}",
        ]
        for r in results
    ]
    header = [
        "path",
        "in flight",
        "calls",
        "median µs",
        "p99 µs",
        "calls/s",
        "server CPU µs/call",
        "host CPU µs/call",
        "caller CPU µs/call",
        "all CPU µs/call",
    ]

    ratio1 = by[(ROOM_PATH, 1)].median_us / by[("raw echo", 1)].median_us
    ratio16 = by[(ROOM_PATH, 16)].median_us / by[("raw echo", 16)].median_us
    room_rate = max(by[(ROOM_PATH, c)].per_second for c in (1, 16))
    summary = [
        [
            "room / echo median, concurrency 1",
            f"{ratio1:.2f}×",
            f"≤ {TARGET_RATIO}×",
            "meets" if ratio1 <= TARGET_RATIO else "MISSES",
        ],
        [
            "room / echo median, concurrency 16",
            f"{ratio16:.2f}×",
            f"≤ {TARGET_RATIO}×",
            "meets" if ratio16 <= TARGET_RATIO else "MISSES",
        ],
        [
            "tool calls/s through the room (best)",
            f"{room_rate:,.0f}",
            f"≥ {TARGET_CALLS_PER_S:,}",
            "meets" if room_rate >= TARGET_CALLS_PER_S else "MISSES",
        ],
    ]
    cpu_ratio = statistics.median(
        by[(ROOM_PATH, c)].server_cpu_us / by[("raw echo", c)].server_cpu_us for c in (1, 16)
    )
    cores = os.cpu_count() or 1
    bound = cores * 1e6 / by[(ROOM_PATH, 16)].total_cpu_us
    summary += [
        [
            "room CPU / echo server CPU per call",
            f"{cpu_ratio:.2f}×",
            "(load-independent view)",
            "",
        ],
        [
            f"calls/s the three processes' CPU allows on {cores} cores, 16 in flight",
            f"{bound:,.0f}",
            "(all CPU per call)",
            "",
        ],
    ]
    for c in (1, 16) if (BASE_PATH, 1) in by else ():
        base, new = by[(BASE_PATH, c)], by[(ROOM_PATH, c)]
        summary += [
            [
                f"room / echo median, base, concurrency {c}",
                f"{base.median_us / by[('raw echo', c)].median_us:.2f}×",
                "(the baseline checkout)",
                "",
            ],
            [
                f"new / base: median, concurrency {c}",
                f"{new.median_us / base.median_us:.2f}×",
                "(below 1 is better)",
                "",
            ],
            [
                f"new / base: CPU per call of room, host, caller, all, concurrency {c}",
                ", ".join(
                    f"{getattr(new, f) / getattr(base, f):.2f}×"
                    for f in ("server_cpu_us", "host_cpu_us", "caller_cpu_us", "total_cpu_us")
                ),
                "(below 1 is better)",
                "",
            ],
        ]
    summary_header = ["measure", "result", "DESIGN target", "status"]
    title = (
        f"Round trip of a small tool call through the room vs a raw WebSocket echo "
        f"(loopback, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"medians of {runs} run(s), {total_seconds:.0f} s)"
    )
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        _plain(header, rows)
        print()
        _plain(summary_header, summary)
        return
    console = Console(width=max(Console().width, 150))
    table = Table(title=title)
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    verdict = Table(title="Against the DESIGN targets")
    for i, name in enumerate(summary_header):
        verdict.add_column(name, justify="left" if i in (0, 3) else "right")
    for row in summary:
        verdict.add_row(*row)
    console.print(verdict)


def _plain(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    for row in [header, ["-" * w for w in widths], *rows]:
        print(
            "  ".join(
                str(c).rjust(w) if i else str(c).ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=False))
            )
        )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_serve"]:
        child_main(argv[1], argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000, help="max calls per measurement")
    parser.add_argument(
        "--seconds", type=float, default=40.0, help="total measuring time, over 4 measurements"
    )
    parser.add_argument(
        "--loop", choices=["asyncio", "uvloop"], default="asyncio", help="the room's event loop"
    )
    parser.add_argument("--runs", type=int, default=1, help="repeat everything; report medians")
    parser.add_argument(
        "--baseline-src",
        metavar="DIR",
        help="another checkout whose room to measure in the same runs (e.g. the base commit)",
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="run this checkout's room under cProfile, stats here (FILE.host, FILE.caller too)",
    )
    args = parser.parse_args(argv)
    os.environ["TASKROOM_BENCH_LOOP"] = args.loop
    profile = os.path.abspath(args.profile) if args.profile else None
    baseline = None
    if args.baseline_src:
        baseline = source_env(args.baseline_src)
    started = time.perf_counter()
    runs = [asyncio.run(run(args.calls, args.seconds, baseline, profile)) for _ in range(args.runs)]
    report(combine(runs), time.perf_counter() - started, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
