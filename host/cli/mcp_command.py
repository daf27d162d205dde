"""`taskroom mcp`: the room's tasks and agents as an MCP server (stdio or streamable HTTP).

In stdio mode stdout is the MCP channel, so everything human goes to stderr. The MCP SDK,
the room client and ``openai`` are imported only when the command runs, so its help is
as cheap as the rest of the CLI's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from taskroom.host.cli.common import (
    DEFAULT_URL,
    DataDirOpt,
    RoomOpt,
    TokenOpt,
    UrlOpt,
    cannot_listen,
    fail,
    setup_logging,
    stderr,
)
from taskroom.host.constants import DEFAULT_DATA_DIR
from taskroom.host.mcp.defaults import (
    DEFAULT_AGENT,
    DEFAULT_HTTP_HOST,
    DEFAULT_HTTP_PORT,
    DEFAULT_MAX_FILE_BYTES,
    GATEWAY_IDENTITY,
)

if TYPE_CHECKING:
    from taskroom.host.mcp.serve import GatewayOptions


def _gateway_token(token: str | None, room: str, identity: str, data_dir: Path) -> str:
    """The given token, else one minted for ``identity`` from the local secret."""
    from taskroom.host.auth.tokens import TokenError, create_token, load_secret

    if token:
        return token
    try:
        secret = load_secret(data_dir, create=False)
    except TokenError as exc:
        fail(f"no --token / TASKROOM_TOKEN given and no local secret to mint one ({exc})")
    return create_token(secret, room=room, identity=identity, role="user")


def _folder(path: Path, flag: str) -> Path:
    if not path.is_dir():
        fail(f"{flag} {path} is not a folder")
    return path.resolve()


def mcp_command(
    room: RoomOpt,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    http: Annotated[
        bool, typer.Option("--http", help="Serve streamable HTTP instead of stdio.")
    ] = False,
    host: Annotated[str, typer.Option(help="HTTP address to listen on.")] = DEFAULT_HTTP_HOST,
    port: Annotated[int, typer.Option(help="HTTP port to listen on.")] = DEFAULT_HTTP_PORT,
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            help="Folder the built-in workspace runner works in, and run_task reads 'files' "
            "from. Default: the working folder.",
        ),
    ] = None,
    no_runner: Annotated[
        bool,
        typer.Option(
            "--no-runner",
            help="Do not host the built-in workspace runner; run_task then needs an agent "
            "already in the room.",
        ),
    ] = False,
    no_shell: Annotated[
        bool,
        typer.Option("--no-shell", help="Leave the shell tool out of the workspace runner."),
    ] = False,
    shell_timeout: Annotated[
        float | None,
        typer.Option(
            min=0.1, help="Seconds one shell command may run before it is killed. Default: 120."
        ),
    ] = None,
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
            help="Folder run_task may read 'files' from (repeat). Default: the workspace.",
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
    from taskroom.host.mcp.models import ModelCatalog, ModelConfigError
    from taskroom.host.mcp.prompt import FileAccess
    from taskroom.host.mcp.serve import GatewayOptions

    setup_logging(verbose)
    folder = _folder(workspace, "--workspace") if workspace is not None else Path.cwd()
    roots = [_folder(folder / root, "--allow-root") for root in allow_root or []]
    try:  # a config that cannot be used is an error now, before the room is joined
        models = ModelCatalog.load(models_config)
    except ModelConfigError as exc:
        fail(str(exc))
    _serve(
        GatewayOptions(
            url=url,
            room=room,
            token=_gateway_token(token, room, identity, data_dir),
            models=models,
            files=FileAccess(roots, base=folder, max_file_bytes=max_file_bytes),
            default_agent=agent,
            http=http,
            host=host,
            port=port,
            workspace=folder,
            host_runner=not no_runner,
            shell=not no_shell,
            shell_timeout=shell_timeout,
        )
    )


def _check_port(host: str, port: int) -> None:
    """Fail with one line before announcing anything when the HTTP port is taken."""
    import socket

    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            cannot_listen(host, port, exc)


def _serve(options: GatewayOptions) -> None:
    from taskroom.host.mcp.serve import run_gateway
    from taskroom.host.protocol import RoomError

    if options.http:
        _check_port(options.host, options.port)
        where = f"http://{options.host}:{options.port}/mcp"
        stderr.print(f"MCP gateway for room {options.room!r}: {where}", highlight=False)
    try:
        asyncio.run(run_gateway(options))
    except RoomError as exc:
        fail(f"cannot join room {options.room!r} at {options.url}: {exc.message}")
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
