"""`taskroom llm serve-test`: the scripted OpenAI-compatible server, for demos and tests."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from taskroom.host.cli.common import command_group, setup_logging, stderr

llm_app = command_group()


@llm_app.command("serve-test")
def serve_test(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8799,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    latency: Annotated[float, typer.Option(help="Seconds before each answer.")] = 0.0,
) -> None:
    """Serve the scripted OpenAI-compatible LLM in auto mode (no real model involved)."""
    from taskroom.agents.testing import serve

    setup_logging()
    stderr.print(f"scripted LLM on http://{host}:{port}/v1 (auto mode, latency {latency:g} s)")
    try:
        asyncio.run(serve(host, port, auto=True, latency=latency))
    except KeyboardInterrupt:
        pass
