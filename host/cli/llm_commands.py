"""`taskroom llm serve-test`: the scripted OpenAI-compatible server, for demos and tests."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from taskroom.host.cli.common import cannot_listen, command_group, setup_logging, stderr

llm_app = command_group()


@llm_app.command("serve-test")
def serve_test(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8799,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    latency: Annotated[float, typer.Option(help="Seconds before each answer.")] = 0.0,
) -> None:
    """Serve the scripted OpenAI-compatible LLM in auto mode (no real model involved)."""
    from taskroom.agents.testing import ScriptedLLMServer

    setup_logging()

    async def serve() -> None:
        server = ScriptedLLMServer(auto=True, latency=latency)
        try:
            await server.start(host, port)
            stderr.print(
                f"scripted LLM on {server.base_url} (auto mode, latency {latency:g} s)",
                highlight=False,
            )
            await asyncio.Event().wait()
        finally:
            await server.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        cannot_listen(host, port, exc)
