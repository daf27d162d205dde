"""The two task stores side by side: SQLite (one file) and PostgreSQL (shared by nodes).

    python bench/stores.py [--dsn postgresql://...] [--tasks 2000] [--workers 50] [--runs 3]

Without ``--dsn`` a throwaway PostgreSQL is started from the machine's packages (as the
tests do; ``make services`` installs them), with ``fsync=off``, so both stores are
measured without waiting on the disk's flush. Every run uses a fresh file or database.
"concurrent" spreads the writes over ``--workers`` coroutines, as a busy room does; "one at
a time" awaits each before the next. Reads are ``get`` of one record, one at a time. The
table shows the median of ``--runs`` runs and PostgreSQL's rate as a share of SQLite's.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from taskroom.host.protocol.tasks import TaskRecord  # noqa: E402
from taskroom.host.server.tasks import SQLiteTaskStore, TaskStore  # noqa: E402
from taskroom.host.server.tasks.postgres_store import PostgresTaskStore  # noqa: E402


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


async def saves(store: TaskStore, n: int, workers: int) -> int:
    """Each task saved three times (pending, running, completed), as the room does."""

    async def worker(w: int) -> None:
        for i in range(w, n, workers):
            for status in ("pending", "running", "completed"):
                await store.save(task(i, status))

    await asyncio.gather(*(worker(w) for w in range(workers)))
    return 3 * n


async def events(store: TaskStore, n: int, workers: int) -> int:
    async def worker(w: int) -> None:
        for i in range(w, n, workers):
            await store.add_event("bench", f"t{w}", {"kind": "text", "delta": f"token {i}"})

    await asyncio.gather(*(worker(w) for w in range(workers)))
    return n


async def reads(store: TaskStore, n: int, workers: int) -> int:
    for i in range(n):
        await store.get("bench", f"t{i % SEEDED}")
    return n


async def seed(store: TaskStore) -> None:
    """Records for the reads to find, written before the clock starts."""
    await store.save_many([task(i, "completed") for i in range(SEEDED)])


SEEDED = 500
Workload = Callable[[TaskStore, int, int], Awaitable[int]]


class Stores:
    def __init__(self, dsn: str | None) -> None:
        self.dsn = dsn
        self.server: Any = None
        self.admin_dsn = dsn

    async def start(self) -> None:
        if self.dsn is None:
            from tests.servers import PostgresServer

            self.server = PostgresServer()
            self.admin_dsn = self.server.dsn

    def stop(self) -> None:
        if self.server is not None:
            self.server.remove()

    async def fresh(self, kind: str, tmp: Path) -> TaskStore:
        if kind == "SQLite":
            return SQLiteTaskStore(tmp / "tasks.sqlite3")
        import asyncpg

        name = f"bench_{time.monotonic_ns()}"
        admin = await asyncpg.connect(self.admin_dsn)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        assert self.admin_dsn is not None
        store = PostgresTaskStore(self.admin_dsn.rsplit("/", 1)[0] + "/" + name)
        await store.open()
        return store


async def measure(stores: Stores, kind: str, work: Workload, n: int, workers: int) -> float:
    """Operations per second of one run on a fresh store."""
    with tempfile.TemporaryDirectory() as tmp:
        store = await stores.fresh(kind, Path(tmp))
        try:
            if work is reads:
                await seed(store)
            started = time.perf_counter()
            ops = await work(store, n, workers)
            return ops / (time.perf_counter() - started)
        finally:
            await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dsn", help="an empty PostgreSQL database to create others from")
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    workloads: list[tuple[str, Workload, int, int]] = [
        ("saves/s, concurrent", saves, args.tasks, args.workers),
        ("saves/s, one at a time", saves, args.tasks // 4, 1),
        ("events/s, concurrent", events, args.tasks * 5, args.workers),
        ("events/s, one at a time", events, args.tasks, 1),
        ("reads/s, one at a time", reads, args.tasks, 1),
    ]
    stores = Stores(args.dsn)
    await stores.start()
    table = Table(title=f"task stores, median of {args.runs} runs")
    table.add_column("workload")
    kinds = ("SQLite", "PostgreSQL")
    for kind in kinds:
        table.add_column(f"{kind}\nops/s", justify="right")
    table.add_column("PostgreSQL\n/ SQLite", justify="right")
    try:
        for label, work, n, workers in workloads:
            rates = [
                statistics.median(
                    [await measure(stores, kind, work, n, workers) for _ in range(args.runs)]
                )
                for kind in kinds
            ]
            table.add_row(label, *(f"{r:,.0f}" for r in rates), f"{rates[1] / rates[0]:.2f}×")
    finally:
        stores.stop()
    Console().print(table)


if __name__ == "__main__":
    asyncio.run(main())
