"""What the room adds to one task, against the same task in-process in the Agents SDK.

    python bench/task_overhead.py [--tasks 300] [--runs 3]

The scripted LLM answers at once (auto mode: one tool call, then the answer), so the
time is all framework. Rows:

* "Agents SDK in-process": the OpenAI Agents SDK's ``Runner.run`` with the same tool, the
  same model endpoint and the SDK's default client (the ``bench`` extra installs it);
  also with the aiohttp transport taskroom uses, for a like-for-like client.
* "taskroom in-process": LLMTaskRunner.run_task called directly with a local toolkit.
* "through the room": the same runner's task started and waited for with ``tasks.run``
  (one ``tasks.start`` that answers when the task ends), the runner in its own process
  and the room in another.

Tasks run one after another; the table shows medians over ``--runs`` runs of the median
and p90 per task, and the ratio DESIGN sets: through the room / Agents SDK ≤ 0.75×.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench_processes import BIN, SECRET, cpu_seconds, free_port, spawn, wait_up
from openai import DefaultAioHttpClient
from rich.console import Console
from rich.table import Table

from taskroom.agents import LLMTaskRunner, OpenAIResponsesAdapter
from taskroom.agents.testing import ScriptedLLMServer
from taskroom.host.auth.tokens import create_token
from taskroom.host.client.room_client import RoomClient
from taskroom.host.protocol.messages import ParticipantInfo
from taskroom.toolkits import ToolContext, Toolkit, tool

ROOM = "overhead"
TARGET_RATIO = 0.75

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


def lookup(key: str) -> str:
    """Look a key up."""
    return "value of " + key


LOOKUP = tool(read_only=True)(lookup)


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e3, ordered[int(len(ordered) * 0.9)] * 1e3


async def in_process(base_url: str, n: int) -> list[float]:
    runner = LLMTaskRunner(
        llm_adapter=OpenAIResponsesAdapter(base_url=base_url, api_key="bench"),
        toolkits=[Toolkit(name="kv", tools=[LOOKUP])],
    )
    me = ParticipantInfo(id="local", name="bench", role="user")
    samples = []
    for i in range(n):
        began = time.perf_counter()
        await runner.run_task(ToolContext(caller=me), {"prompt": f"task {i}"})
        samples.append(time.perf_counter() - began)
    await runner.llm_adapter.aclose()
    return samples


async def agents_sdk(base_url: str, n: int, http_client: Any = None) -> list[float]:
    """The same task in the OpenAI Agents SDK: one tool, one call of it, one answer."""
    from openai import AsyncOpenAI

    from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)
    client = AsyncOpenAI(base_url=base_url, api_key="bench", http_client=http_client)
    agent = Agent(
        name="bench",
        instructions="Answer the task.",
        tools=[function_tool(lookup)],
        model=OpenAIResponsesModel(model="scripted-model", openai_client=client),
    )
    samples = []
    for i in range(n):
        began = time.perf_counter()
        result = await Runner.run(agent, f"task {i}")
        samples.append(time.perf_counter() - began)
        assert result.final_output, result
    await client.close()
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
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    paths: dict[str, Callable[[], Awaitable[list[float]]]] = {}
    cpu_ms: dict[str, list[float]] = {}
    samples: dict[str, list[tuple[float, float]]] = {}
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
        paths = {
            "Agents SDK in-process (httpx, its default)": lambda: agents_sdk(
                llm.base_url, args.tasks
            ),
            "Agents SDK in-process (aiohttp)": lambda: agents_sdk(
                llm.base_url, args.tasks, DefaultAioHttpClient()
            ),
            "taskroom in-process": lambda: in_process(llm.base_url, args.tasks),
            "taskroom through the room": lambda: through_room(url, args.tasks),
        }
        try:
            await in_process(llm.base_url, 20)  # warm-up
            await agents_sdk(llm.base_url, 20)
            await through_room(url, 20)
            for _ in range(args.runs):
                for name, measure in paths.items():
                    room0, agent0 = cpu_seconds(room.pid), cpu_seconds(agent.pid)
                    samples.setdefault(name, []).append(summary(await measure()))
                    if name == "taskroom through the room":
                        for who, pid, before in (
                            ("room", room.pid, room0),
                            ("agent", agent.pid, agent0),
                        ):
                            cpu_ms.setdefault(who, []).append(
                                (cpu_seconds(pid) - before) * 1e3 / args.tasks
                            )
        finally:
            agent.terminate()
            room.terminate()
            agent.wait(10)
            room.wait(10)
    table = Table(
        title=f"{args.tasks} tasks one after another, LLM answering at once "
        f"(2 LLM calls + 1 tool call each), {args.runs} runs"
    )
    table.add_column("path")
    table.add_column("median ms", justify="right")
    table.add_column("p90 ms", justify="right")
    medians = {}
    for name, runs in samples.items():
        medians[name] = statistics.median(m for m, _ in runs)
        table.add_row(name, f"{medians[name]:.2f}", f"{statistics.median(p for _, p in runs):.2f}")
    console = Console()
    console.print(table)
    console.print(
        "through the room, CPU per task: "
        + ", ".join(f"{who} {statistics.median(v):.2f} ms" for who, v in cpu_ms.items())
    )
    room_ms = medians["taskroom through the room"]
    for name in list(paths)[:2]:
        ratio = room_ms / medians[name]
        console.print(
            f"through the room / {name}: {ratio:.2f}x (DESIGN target ≤ {TARGET_RATIO}x: "
            f"{'meets' if ratio <= TARGET_RATIO else 'MISSES'})"
        )


if __name__ == "__main__":
    asyncio.run(main())
