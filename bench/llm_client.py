"""CPU time the ``openai`` client spends per request, with its httpx and aiohttp transports.

    python bench/llm_client.py [--requests 2000] [--concurrency 1,64] [--runs 3]

The scripted LLM runs in its own process (``taskroom llm serve-test``) and answers at once,
so this process's CPU time (``time.process_time``) is the client's own cost: building the
request, HTTP, parsing the response into the SDK's models. Each transport is measured with
one request at a time and with many in flight; the table shows medians over ``--runs``
runs and the aiohttp / httpx ratio.

A second table measures the request a task runner sends (instructions, the conversation,
four function tools and an output schema) on the aiohttp transport: passed to
``responses.create`` as typed parameters, which the client transforms field by field, and
sent the way taskroom's adapter sends it (those fields as plain JSON in ``extra_body``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench_processes import BIN, free_port, spawn, wait_up
from openai import AsyncOpenAI, DefaultAioHttpClient, DefaultAsyncHttpxClient
from rich.console import Console
from rich.table import Table

TRANSPORTS: dict[str, Callable[[], Any]] = {
    "httpx": DefaultAsyncHttpxClient,
    "aiohttp": DefaultAioHttpClient,
}


async def cpu_per_request(base_url: str, transport: str, requests: int, concurrency: int) -> float:
    """Client CPU ms per ``responses.create`` with ``concurrency`` requests in flight."""
    client = AsyncOpenAI(
        base_url=base_url, api_key="bench", http_client=TRANSPORTS[transport](), max_retries=0
    )
    counter = iter(range(max(concurrency, requests // 10)))

    async def worker() -> None:
        for n in counter:
            await client.responses.create(model="scripted-model", input=f"request {n}")

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))  # warm-up: connections
        counter = iter(range(requests))
        began = time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return (time.process_time() - began) / requests * 1e3
    finally:
        await client.close()


def _tool(n: int) -> dict[str, Any]:
    properties = {
        f"field_{k}": {"type": "string", "description": f"field {k} of tool {n}"} for k in range(6)
    }
    properties["limit"] = {"type": "integer", "minimum": 1, "maximum": 100}
    properties["tags"] = {"type": "array", "items": {"type": "string"}}
    return {
        "type": "function",
        "name": f"tool_{n}",
        "description": f"Tool number {n}.",
        "parameters": {"type": "object", "properties": properties, "required": ["field_0"]},
        "strict": False,
    }


RUNNER_REQUEST: dict[str, Any] = {
    "model": "scripted-model",
    "instructions": "Answer the task. Use the tools when they help.",
    "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "What is in the store?"}]}
    ],
    "tools": [_tool(n) for n in range(4)],
    "text": {
        "format": {
            "type": "json_schema",
            "name": "output",
            "schema": {
                "type": "object",
                "properties": {"answer": {"type": "string"}, "sources": {"type": "array"}},
                "required": ["answer"],
            },
            "strict": False,
        }
    },
}


async def runner_cpu_per_request(base_url: str, as_json: bool, requests: int) -> float:
    """Client CPU ms per runner-like request, 64 in flight: typed parameters, or as the
    adapter sends them (``as_json``)."""
    from taskroom.agents import OpenAIResponsesAdapter

    client = AsyncOpenAI(
        base_url=base_url, api_key="bench", http_client=DefaultAioHttpClient(), max_retries=0
    )
    adapter = OpenAIResponsesAdapter(client=client, max_retries=0)

    async def one() -> None:
        if as_json:
            await adapter._request(client.responses.create, dict(RUNNER_REQUEST))
        else:
            await client.responses.create(**RUNNER_REQUEST)

    counter = iter(range(requests // 10))

    async def worker() -> None:
        for _ in counter:
            await one()

    try:
        await asyncio.gather(*(worker() for _ in range(64)))  # warm-up: connections
        counter = iter(range(requests))
        began = time.process_time()
        await asyncio.gather(*(worker() for _ in range(64)))
        return (time.process_time() - began) / requests * 1e3
    finally:
        await client.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 64]
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    llm = spawn([str(BIN / "taskroom"), "llm", "serve-test", "--port", str(port)])
    samples: dict[tuple[str, int], list[float]] = {}
    runner: dict[bool, list[float]] = {}
    try:
        await wait_up(f"{base_url}/models")
        for _ in range(args.runs):
            for concurrency in args.concurrency:
                for transport in TRANSPORTS:
                    cost = await cpu_per_request(base_url, transport, args.requests, concurrency)
                    samples.setdefault((transport, concurrency), []).append(cost)
            for as_json in (False, True):
                cost = await runner_cpu_per_request(base_url, as_json, args.requests)
                runner.setdefault(as_json, []).append(cost)
    finally:
        llm.terminate()
        llm.wait(10)

    table = Table(
        title=f"openai client CPU per request ({args.requests:,} requests, {args.runs} runs)"
    )
    for name in ("in flight", "httpx ms", "aiohttp ms", "aiohttp / httpx"):
        table.add_column(name, justify="right")
    for concurrency in args.concurrency:
        httpx_ms = statistics.median(samples[("httpx", concurrency)])
        aiohttp_ms = statistics.median(samples[("aiohttp", concurrency)])
        table.add_row(
            str(concurrency),
            f"{httpx_ms:.3f}",
            f"{aiohttp_ms:.3f}",
            f"{aiohttp_ms / httpx_ms:.2f}×",
        )
    console = Console()
    console.print(table)
    typed, as_json = statistics.median(runner[False]), statistics.median(runner[True])
    second = Table(
        title="A task runner's request (4 tools, an output schema), aiohttp, 64 in flight"
    )
    for name in ("sent as", "client CPU ms per request"):
        second.add_column(name, justify="left" if name == "sent as" else "right")
    second.add_row("typed parameters (the client transforms each)", f"{typed:.3f}")
    second.add_row("taskroom's adapter (plain JSON in extra_body)", f"{as_json:.3f}")
    second.add_row("adapter / typed", f"{as_json / typed:.2f}×")
    console.print(second)


if __name__ == "__main__":
    asyncio.run(main())
