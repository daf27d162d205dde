"""CPU time the ``openai`` client spends per request, with its httpx and aiohttp transports.

    python bench/llm_client.py [--requests 2000] [--concurrency 1,64] [--runs 3]

The scripted LLM runs in its own process (``taskroom llm serve-test``) and answers at once,
so this process's CPU time (``time.process_time``) is the client's own cost: building the
request, HTTP, parsing the response into the SDK's models. Each transport is measured with
one request at a time and with many in flight; the table shows medians over ``--runs``
runs and the aiohttp / httpx ratio.
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
    try:
        await wait_up(f"{base_url}/models")
        for _ in range(args.runs):
            for concurrency in args.concurrency:
                for transport in TRANSPORTS:
                    cost = await cpu_per_request(base_url, transport, args.requests, concurrency)
                    samples.setdefault((transport, concurrency), []).append(cost)
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
    Console().print(table)


if __name__ == "__main__":
    asyncio.run(main())
