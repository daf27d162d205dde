"""`taskroom mcp`: the room's tasks and agents as an MCP server (stdio or streamable HTTP).

In stdio mode stdout is the MCP channel, so everything human goes to stderr.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from taskroom.host.auth.tokens import DEFAULT_DATA_DIR, TokenError, create_token, load_secret
from taskroom.host.cli.common import (
    DEFAULT_URL,
    DataDirOpt,
    RoomOpt,
    TokenOpt,
    UrlOpt,
    fail,
    setup_logging,
    stderr,
)
from taskroom.host.mcp import (
    DEFAULT_AGENT,
    FileAccess,
    GatewayOptions,
    ModelCatalog,
    ModelConfigError,
    run_gateway,
)
from taskroom.host.mcp.prompt import DEFAULT_MAX_FILE_BYTES
from taskroom.host.protocol import RoomError

GATEWAY_IDENTITY = "mcp-gateway"


def _gateway_token(token: str | None, room: str, identity: str, data_dir: Path) -> str:
    """The given token, else one minted for ``identity`` from the local secret."""
    if token:
        return token
    try:
        secret = load_secret(data_dir, create=False)
    except TokenError as exc:
        fail(f"no --token / TASKROOM_TOKEN given and no local secret to mint one ({exc})")
    return create_token(secret, room=room, identity=identity, role="user")


def mcp_command(
    room: RoomOpt,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    http: Annotated[
        bool, typer.Option("--http", help="Serve streamable HTTP instead of stdio.")
    ] = False,
    host: Annotated[str, typer.Option(help="HTTP address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port to listen on.")] = 8767,
    models_config: Annotated[
        Path | None,
        typer.Option(
            "--models-config",
            envvar="TASKROOM_MODELS_CONFIG",
            help="TOML file whose 'classes' table maps model classes to model names.",
        ),
    ] = None,
    allow_root: Annotated[
        list[Path] | None,
        typer.Option(
            "--allow-root",
            help="Folder run_task may read 'files' from (repeat). Default: the working folder.",
        ),
    ] = None,
    max_file_bytes: Annotated[
        int, typer.Option(help="Largest file run_task will read.")
    ] = DEFAULT_MAX_FILE_BYTES,
    agent: Annotated[
        str, typer.Option(help="Agent run_task uses when the call names none.")
    ] = DEFAULT_AGENT,
    identity: Annotated[
        str, typer.Option(help="Identity of a token minted from the local secret.")
    ] = GATEWAY_IDENTITY,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs on stderr.")] = False,
) -> None:
    """Serve the room's tasks and agents to MCP clients (mcp-task's tools, and more)."""
    setup_logging(verbose)
    roots = list(allow_root or [])
    for root in roots:
        if not root.is_dir():
            fail(f"--allow-root {root} is not a folder")
    try:
        models = ModelCatalog.load(models_config)
    except ModelConfigError as exc:
        fail(str(exc))
    options = GatewayOptions(
        url=url,
        room=room,
        token=_gateway_token(token, room, identity, data_dir),
        models=models,
        files=FileAccess(roots, max_file_bytes=max_file_bytes),
        default_agent=agent,
        http=http,
        host=host,
        port=port,
    )
    if http:
        stderr.print(f"MCP gateway for room {room!r}: http://{host}:{port}/mcp", highlight=False)
    try:
        asyncio.run(run_gateway(options))
    except RoomError as exc:
        fail(f"cannot join room {room!r} at {url}: {exc.message}")
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
