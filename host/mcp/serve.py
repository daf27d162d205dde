"""Running the gateway: join the room first, then serve MCP over stdio or streamable HTTP.

Joining first means a gateway that cannot reach its room fails at start with the reason,
rather than offering tools that can only fail.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from mcp.server import NotificationOptions
from mcp.server.stdio import stdio_server
from starlette.applications import Starlette
from starlette.routing import Route

from taskroom.agents.workspace_runner import WorkspaceTaskRunner
from taskroom.host.client.room_client import RoomClient
from taskroom.host.mcp.defaults import DEFAULT_AGENT, DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT
from taskroom.host.mcp.gateway import McpGateway
from taskroom.host.mcp.models import ModelCatalog
from taskroom.host.mcp.prompt import FileAccess
from taskroom.toolkits.builtin.workspace import DEFAULT_SHELL_TIMEOUT

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"


@dataclass
class GatewayOptions:
    """Everything ``taskroom mcp`` decides before serving."""

    url: str
    room: str
    token: str
    models: ModelCatalog = field(default_factory=ModelCatalog.load)
    files: FileAccess = field(default_factory=lambda: FileAccess([]))
    default_agent: str = DEFAULT_AGENT
    http: bool = False
    host: str = DEFAULT_HTTP_HOST
    port: int = DEFAULT_HTTP_PORT
    workspace: Path | None = None
    """The folder of the workspace runner the gateway hosts; None: its working folder."""
    host_runner: bool = True
    """Host ``workspace-task-runner`` in the room, visible only to the gateway's clients."""
    shell: bool = True
    """Offer the runner's shell tool (to non-read_only tasks only)."""
    shell_timeout: float | None = None
    """Seconds one shell command may run; None: the workspace toolkit's default."""


def http_app(gateway: McpGateway, host: str = "127.0.0.1") -> Starlette:
    """Streamable HTTP at ``/mcp`` plus ``/healthz`` (DNS-rebinding checks on loopback)."""
    return gateway.server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        host=host,
        custom_starlette_routes=[Route("/healthz", gateway.healthz)],
    )


async def serve_stdio(gateway: McpGateway) -> None:
    """Serve one client on stdin/stdout until it closes stdin."""
    options = gateway.server.create_initialization_options(NotificationOptions(tools_changed=True))
    async with stdio_server() as (read_stream, write_stream):
        await gateway.server.run(read_stream, write_stream, options)


async def serve_http(gateway: McpGateway, host: str, port: int) -> None:
    """Serve any number of clients over streamable HTTP until SIGINT/SIGTERM."""
    config = uvicorn.Config(
        http_app(gateway, host), host=host, port=port, log_level="warning", lifespan="on"
    )
    await uvicorn.Server(config).serve()


async def run_gateway(options: GatewayOptions) -> None:
    """Join the room (RoomError if it cannot), host the workspace runner, serve, and leave."""
    room = RoomClient(options.url, options.room, options.token)
    await room.connect()
    runner: WorkspaceTaskRunner | None = None
    gateway: McpGateway | None = None
    try:
        who = room.participant.name if room.participant else "?"
        if options.host_runner:
            runner = WorkspaceTaskRunner(
                options.workspace or Path.cwd(),
                shell=options.shell,
                public=False,
                allowed_callers=[who],
                shell_timeout=options.shell_timeout or DEFAULT_SHELL_TIMEOUT,
            )
            await runner.start(room)
            logger.info("hosting %s over %s", runner.name, runner.workspace)
        gateway = McpGateway(
            room,
            models=options.models,
            files=options.files,
            default_agent=options.default_agent,
            runner=runner,
        )
        if options.http:
            logger.info(
                "joined %s as %s; MCP on http://%s:%d%s",
                options.room,
                who,
                options.host,
                options.port,
                MCP_PATH,
            )
            await serve_http(gateway, options.host, options.port)
        else:
            logger.info("joined %s as %s; MCP on stdio", options.room, who)
            await serve_stdio(gateway)
    finally:
        if gateway is not None:
            await gateway.close()
        if runner is not None:
            await runner.stop()
        await room.close()
