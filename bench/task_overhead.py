"""What the room adds to one task: the same LLM loop in-process and through a room.

    python bench/task_overhead.py [--tasks 300]

The scripted LLM answers at once (auto mode: one tool call, then the answer), so the
time is all framework. "in-process" runs LLMTaskRunner.run_task directly with a local
toolkit; "through the room" starts the same runner's task with ``tasks.start`` and waits
for it, with the runner in its own process and the room in another. Tasks run one after
another; the table shows the median and p90 per task and their ratio. (DESIGN compares
against the OpenAI Agents SDK's in-process loop; that package is not a dependency here,
so the in-process baseline is taskroom's own loop, which does the same HTTP calls.)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time

from bench_processes import BIN, SECRET, free_port, spawn, wait_up
from rich.console import Console
from rich.table import Table

from taskroom.agents import LLMTaskRunner, OpenAIResponsesAdapter
from taskroom.agents.testing import ScriptedLLMServer
from taskroom.host.auth.tokens import create_token
from taskroom.host.client.room_client import RoomClient
from taskroom.host.protocol.messages import ParticipantInfo
from taskroom.toolkits import ToolContext, Toolkit, tool

ROOM = "overhead"

AGENT = """
import asyncio, sys
from taskroom.agents import LLMTaskRunner, OpenAIResponsesAdapter
from taskroom.host.client.room_client import RoomClient
from taskroom.toolkits import Toolkit, tool

@tool(read_only=True)
def lookup(key: str) -> str:
    '''Look a key up.'''
    return "value of " + key

async def main(url, room, token, base_url):
    runner = LLMTaskRunner(llm_adapter=OpenAIResponsesAdapter(base_url=base_url, api_key="bench"),
                           toolkits=[Toolkit(name="kv", tools=[lookup])])
    async with RoomClient(url, room, token) as client:
        await runner.start(client)
        await asyncio.Event().wait()

asyncio.run(main(*sys.argv[1:5]))
"""


@tool(read_only=True)
def lookup(key: str) -> str:
    """Look a key up."""
    return "value of " + key


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e3, ordered[int(len(ordered) * 0.9)] * 1e3


async def in_process(base_url: str, n: int) -> list[float]:
    runner = LLMTaskRunner(
        llm_adapter=OpenAIResponsesAdapter(base_url=base_url, api_key="bench"),
        toolkits=[Toolkit(name="kv", tools=[lookup])],
    )
    me = ParticipantInfo(id="local", name="bench", role="user")
    samples = []
    for i in range(n):
        began = time.perf_counter()
        await runner.run_task(ToolContext(caller=me), {"prompt": f"task {i}"})
        samples.append(time.perf_counter() - began)
    await runner.llm_adapter.aclose()
    return samples


async def through_room(url: str, n: int) -> list[float]:
    token = create_token(SECRET, room=ROOM, identity="bench", role="user")
    samples = []
    async with RoomClient(url, ROOM, token) as client:
        while not await client.list_toolkits(name="llm-task-runner"):
            await asyncio.sleep(0.1)
        for i in range(n):
            began = time.perf_counter()
            task = await client.tasks.run("llm-task-runner", {"prompt": f"task {i}"})
            samples.append(time.perf_counter() - began)
            assert task["status"] == "completed", task
    return samples


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with ScriptedLLMServer(auto=True) as llm:
        room = spawn(
            [
                str(BIN / "taskroom"),
                "room",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                tempfile.mkdtemp(),
            ],
            {"TASKROOM_SECRET": SECRET},
        )
        await wait_up(f"{url}/healthz")
        token = create_token(SECRET, room=ROOM, identity="llm-task-runner", role="agent")
        agent = spawn([sys.executable, "-c", AGENT, url, ROOM, token, llm.base_url])
        try:
            await in_process(llm.base_url, 20)  # warm-up
            local = await in_process(llm.base_url, args.tasks)
            await asyncio.sleep(1.0)
            remote = await through_room(url, args.tasks)
        finally:
            agent.terminate()
            room.terminate()
            agent.wait(10)
            room.wait(10)
    table = Table(
        title=f"{args.tasks} tasks one after another, LLM answering at once (2 LLM calls + 1 tool call each)"
    )
    table.add_column("path")
    table.add_column("median ms", justify="right")
    table.add_column("p90 ms", justify="right")
    for name, samples in (("in-process loop", local), ("through the room", remote)):
        median, p90 = summary(samples)
        table.add_row(name, f"{median:.2f}", f"{p90:.2f}")
    console = Console()
    console.print(table)
    ratio = statistics.median(remote) / statistics.median(local)
    console.print(
        f"room / in-process median: {ratio:.2f}x (DESIGN target vs an in-process loop: ≤ 1.5x)"
    )


if __name__ == "__main__":
    asyncio.run(main())
