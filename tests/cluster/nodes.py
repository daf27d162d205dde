"""Room-server nodes of a test cluster: subprocesses sharing one PostgreSQL and one Redis,
and in-process task runners that count how often each task ran."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path
from typing import Any

from taskroom.agents import TaskRunner
from taskroom.agents.task_runner import TaskContext
from tests.processes import BIN, Process, free_port, wait_http

SECRET = "cluster-secret-" + "x" * 32


class Node:
    """``taskroom room serve --cluster`` on a free loopback port."""

    def __init__(self, tmp: Path, name: str, redis_url: str, store: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"{name}.log"
        self.process = Process(
            [
                str(BIN / "taskroom"),
                "room",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(tmp / name),
                "--store",
                store,
                "--cluster",
                redis_url,
                "--node-url",
                self.url,
                "--verbose",
            ],
            env={"TASKROOM_SECRET": SECRET},
            log=self.log,
        )
        wait_http(f"{self.url}/healthz")

    def kill(self) -> None:
        self.process.kill()

    def stop(self) -> None:
        self.process.stop()


class CountingRunner(TaskRunner):
    """Answers ``{"n": n}`` after ``delay`` seconds; counts the runs of each ``n``."""

    def __init__(self, name: str, *, requeue_safe: bool, delay: float, concurrency: int) -> None:
        super().__init__(
            name=name,
            input_schema={
                "type": "object",
                "properties": {"n": {"type": "integer"}},
                "required": ["n"],
            },
            output_schema={"type": "object", "properties": {"n": {"type": "integer"}}},
            max_concurrency=concurrency,
        )
        self.requeue_safe = requeue_safe
        self.delay = delay
        self.runs: collections.Counter[int] = collections.Counter()

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "requeue_safe": self.requeue_safe}

    async def ask(self, context: TaskContext, arguments: dict[str, Any]) -> Any:
        self.runs[arguments["n"]] += 1
        await asyncio.sleep(self.delay)
        return {"n": arguments["n"]}
