"""Task store throughput and event-loop lag: the threaded SQLite store vs. SQLite on the loop.

    python bench/task_store.py [--tasks 2000] [--workers 50] [--runs 3]

"on the loop" is what the store did before: plain sqlite3 calls (WAL, synchronous=NORMAL,
one autocommit per statement) made from the coroutine. "threaded" is SQLiteTaskStore: a
writer thread with group commits and a reader thread. Each workload runs on a fresh file;
"concurrent" spreads the writes over --workers coroutines (as a busy room does), "one at a
time" awaits each write before the next. A 5 ms ticker measures the worst loop lag. The
table shows the median of --runs runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from taskroom.host.protocol.tasks import TaskRecord
from taskroom.host.server.tasks import SQLiteTaskStore
from taskroom.host.server.tasks.sqlite_open import SCHEMA


class OnLoopStore:
    """The former store's write path: every statement runs and commits on the loop."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self.seq: dict[tuple[str, str], int] = {}

    async def save(self, task: TaskRecord) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO tasks (room, id, agent, status, batch_id, caller_name,"
            " created_at, finished_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                task.room,
                task.id,
                task.agent,
                task.status,
                task.batch_id,
                task.principal,
                task.created_at,
                task.finished_at,
                task.model_dump_json(),
            ),
        )

    async def add_event(self, room: str, task_id: str, data: dict[str, Any]) -> None:
        key = (room, task_id)
        seq = self.seq.get(key)
        if seq is None:
            row = self.db.execute(
                "SELECT max(seq) FROM task_events WHERE room = ? AND task_id = ?", key
            ).fetchone()
            seq = row[0] or 0
        self.seq[key] = seq = seq + 1
        self.db.execute(
            "INSERT INTO task_events (room, task_id, seq, at, data) VALUES (?, ?, ?, ?, ?)",
            (room, task_id, seq, time.time(), json.dumps(data)),
        )

    async def close(self) -> None:
        self.db.close()


def task(n: int, status: str) -> TaskRecord:
    return TaskRecord(
        id=f"t{n}",
        room="bench",
        agent="llm-task-runner",
        tool="run_llm_task_runner_task",
        arguments={"prompt": f"summarise document {n} " * 10},
        status=status,  # type: ignore[arg-type]
        result={"text": "a paragraph of answer " * 20} if status == "completed" else None,
    )


async def saves(store: Any, n: int, workers: int) -> int:
    """Each task is saved three times (pending, running, completed), as the room does."""

    async def worker(w: int) -> None:
        for i in range(w, n, workers):
            for status in ("pending", "running", "completed"):
                await store.save(task(i, status))

    await asyncio.gather(*(worker(w) for w in range(workers)))
    return 3 * n


async def events(store: Any, n: int, workers: int) -> int:
    """n progress events spread over one task per worker."""

    async def worker(w: int) -> None:
        for i in range(w, n, workers):
            await store.add_event("bench", f"t{w}", {"kind": "text", "delta": f"token {i}"})

    await asyncio.gather(*(worker(w) for w in range(workers)))
    return n


Workload = Callable[[Any, int, int], Awaitable[int]]


async def measure(make: Callable[[Path], Any], work: Workload, n: int, workers: int):
    """Operations per second and worst loop lag (ms) of one run on a fresh file."""
    lags: list[float] = []
    running = True

    async def ticker() -> None:
        while running:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - before - 0.005)

    with tempfile.TemporaryDirectory() as tmp:
        store = make(Path(tmp) / "tasks.sqlite3")
        ticking = asyncio.create_task(ticker())
        await asyncio.sleep(0.02)
        lags.clear()
        started = time.perf_counter()
        ops = await work(store, n, workers)
        elapsed = time.perf_counter() - started
        running = False
        await ticking
        await store.close()
    return ops / elapsed, max(lags, default=elapsed) * 1e3


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    stores = {"on the loop": OnLoopStore, "threaded": SQLiteTaskStore}
    workloads: list[tuple[str, Workload, int, int]] = [
        ("saves/s, concurrent", saves, args.tasks, args.workers),
        ("saves/s, one at a time", saves, args.tasks // 4, 1),
        ("events/s, concurrent", events, args.tasks * 5, args.workers),
        ("events/s, one at a time", events, args.tasks, 1),
    ]
    table = Table(title=f"task store, median of {args.runs} runs")
    table.add_column("workload")
    for name in stores:
        table.add_column(f"{name}\nops/s", justify="right")
    table.add_column("ratio", justify="right")
    for name in stores:
        table.add_column(f"{name}\nmax loop lag", justify="right")
    for label, work, n, workers in workloads:
        rates, lags = [], []
        for make in stores.values():
            runs = [await measure(make, work, n, workers) for _ in range(args.runs)]
            rates.append(statistics.median(r for r, _ in runs))
            lags.append(statistics.median(lag for _, lag in runs))
        table.add_row(
            label,
            *(f"{r:,.0f}" for r in rates),
            f"{rates[1] / rates[0]:.2f}×",
            *(f"{lag:,.1f} ms" for lag in lags),
        )
    Console().print(table)


if __name__ == "__main__":
    asyncio.run(main())
