"""`taskroom call agent` and `taskroom service run`: calling agents into rooms by webhook."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from taskroom.host.cli.common import (
    DEFAULT_URL,
    DataDirOpt,
    RoomOpt,
    TokenOpt,
    command_group,
    fail,
    normalize_url,
    parse_json_option,
    print_json,
    setup_logging,
    stderr,
    with_room,
)
from taskroom.host.constants import DEFAULT_DATA_DIR, LOCAL_USER

call_app = command_group()
service_app = command_group()

SERVICE_START_TIMEOUT = 30.0
"""Seconds the service file has to answer at its well-known URL."""
CHILD_STOP_TIMEOUT = 10.0
"""Seconds the service process has to stop its agents before it is killed."""

RoomUrlOpt = Annotated[
    str,
    typer.Option(
        "--room-url",
        envvar="TASKROOM_URL",
        callback=normalize_url,
        help="Room server URL: http://HOST:PORT, HOST:PORT, or a room's URL .../rooms/NAME "
        "(named --room-url here because --url is the agent's).",
    ),
]


@call_app.command("agent")
def call_agent(
    room: RoomOpt,
    service: Annotated[
        str, typer.Option("--service", help="The service's name in the room server's registry.")
    ],
    agent: Annotated[
        str, typer.Option("--agent", help="Identity of the agent, as its service declares it.")
    ],
    arguments: Annotated[
        str | None, typer.Option("--arguments", help="JSON object handed to the agent.")
    ] = None,
    room_url: RoomUrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Ask the room to call AGENT of a registered SERVICE in; prints its participant id."""
    args = parse_json_option(arguments, "--arguments") or {}
    if not isinstance(args, dict):
        fail("--arguments must be a JSON object")
    request = {"service": service, "agent": agent, "arguments": args}
    print_json(
        with_room(room_url, room, token, lambda c: c.request("room.call", request), data_dir)
    )


@service_app.command("run")
def service_run(
    file: Annotated[Path, typer.Argument(help="Python file with one module-level ServiceHost.")],
    room: RoomOpt,
    port: Annotated[
        int | None, typer.Option(help="Port the service serves on (default: a free one).")
    ] = None,
    room_url: RoomUrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    name: Annotated[
        str | None,
        typer.Option(help="The service's name in the room server's registry (default: FILE's)."),
    ] = None,
    register: Annotated[
        bool,
        typer.Option(
            help="Register the service first (needs the services.admin grant); with "
            "--no-register the room server must already list it under --name."
        ),
    ] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run FILE as its own process and call each of its agents into ROOM.

    The file's ServiceHost serves on 127.0.0.1 (TASKROOM_SERVICE_HOST/PORT are set for
    it) with the room's webhook secret (TASKROOM_WEBHOOK_SECRET, else the secret from
    --data-dir). Ctrl-C or SIGTERM stops both; every agent leaves the room.
    """
    from taskroom.host.protocol import RoomError

    setup_logging(verbose)
    if not file.is_file():
        fail(f"no such file: {file}")
    secret = _webhook_secret(data_dir)
    room_token = token or _launcher_token(room, data_dir)
    port = port or _free_port()
    try:
        code = asyncio.run(
            _serve(file, port, secret, name or file.stem, register, room_url, room, room_token)
        )
    except RoomError as exc:
        fail(f"{exc.code.value}: {exc.message}")
    if code:
        raise typer.Exit(code)


def _webhook_secret(data_dir: Path) -> str:
    """The secret the room signs webhooks with: TASKROOM_WEBHOOK_SECRET, else its own secret
    (TASKROOM_SECRET, else the data folder's), as the room server decides it."""
    from taskroom.host.auth.tokens import TokenError, load_secret
    from taskroom.host.auth.webhooks import WEBHOOK_SECRET_ENV

    value = os.environ.get(WEBHOOK_SECRET_ENV)
    if value:
        return value
    try:
        return load_secret(data_dir, create=False)
    except TokenError as exc:
        fail(
            f"no webhook secret for the service: set {WEBHOOK_SECRET_ENV} to the room's, or "
            f"point --data-dir at the room's data folder ({exc})"
        )


def _launcher_token(room: str, data_dir: Path) -> str:
    """A token from the local secret that may also register services (the holder of the
    room's secret could mint any token anyway)."""
    from taskroom.host.auth.tokens import (
        DEFAULT_GRANTS,
        SERVICES_ADMIN_GRANT,
        TokenError,
        create_token,
        load_secret,
    )

    try:
        secret = load_secret(data_dir, create=False)
    except TokenError as exc:
        fail(f"no --token / TASKROOM_TOKEN given and no local secret to mint one ({exc})")
    grants = [*DEFAULT_GRANTS["user"], SERVICES_ADMIN_GRANT]
    return create_token(secret, room=room, identity=LOCAL_USER, role="user", grants=grants)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _serve(
    file: Path,
    port: int,
    secret: str,
    name: str,
    register: bool,
    room_url: str,
    room: str,
    token: str,
) -> int:
    """Start the child, call its agents in, and wait for a signal or the child's end.

    Returns the exit code: 0 after a signal, else the child's (non-zero) code.
    """
    from taskroom.host.auth.webhooks import WEBHOOK_SECRET_ENV
    from taskroom.host.service.service_host import HOST_ENV, PORT_ENV

    env = {**os.environ, HOST_ENV: "127.0.0.1", PORT_ENV: str(port), WEBHOOK_SECRET_ENV: secret}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "taskroom.host.service.run_file", str(file), env=env
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    exited = asyncio.ensure_future(child.wait())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        base_url = f"http://127.0.0.1:{port}"
        agents = await _wait_for_service(base_url, file, exited, stopping)
        if agents is None:
            return 0 if stop.is_set() else (child.returncode or 1)
        stderr.print(f"service {file} on {base_url}", highlight=False, soft_wrap=True)
        await _call_in(agents, base_url, name, register, room_url, room, token)
        await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if exited.done() and not stop.is_set():
            stderr.print(f"{file} exited with code {child.returncode}", highlight=False)
            return child.returncode or 1
        stderr.print("stopping: every agent leaves its room", highlight=False, soft_wrap=True)
        return 0
    finally:
        stopping.cancel()
        await _end_child(child, exited)


async def _wait_for_service(
    base_url: str, file: Path, exited: asyncio.Future[int], stopping: asyncio.Future[Any]
) -> list[dict[str, Any]] | None:
    """The agents the child's service declares, once it answers; None if it exited (or we
    were stopped) first."""
    import aiohttp

    from taskroom.host.service.service_host import WELL_KNOWN_PATH

    deadline = asyncio.get_running_loop().time() + SERVICE_START_TIMEOUT
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0)) as http:
        while not exited.done() and not stopping.done():
            try:
                async with http.get(base_url + WELL_KNOWN_PATH) as resp:
                    if resp.status == 200:
                        agents: list[dict[str, Any]] = (await resp.json())["agents"]
                        return agents
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
                pass
            if asyncio.get_running_loop().time() > deadline:
                fail(
                    f"{file} did not serve {WELL_KNOWN_PATH} at {base_url} within "
                    f"{SERVICE_START_TIMEOUT:g} s; let its ServiceHost take the port from "
                    "TASKROOM_SERVICE_PORT (do not pass port=)"
                )
            await asyncio.sleep(0.1)
    if exited.done() and not stopping.done():
        stderr.print(
            f"[red]error:[/red] {file} exited with code {exited.result()} before serving",
            highlight=False,
            soft_wrap=True,
        )
    return None


async def _call_in(
    agents: list[dict[str, Any]],
    base_url: str,
    name: str,
    register: bool,
    room_url: str,
    room: str,
    token: str,
) -> None:
    """Register the service, then call each path in: toolkits first, so agents that
    require them find them at start."""
    from taskroom.host.client.room_client import RoomClient

    ordered = sorted(agents, key=lambda a: a.get("kind") != "toolkit")
    async with RoomClient(room_url, room, token, reconnect=False) as client:
        if register:
            await client.request("services.register", {"name": name, "url": base_url})
        for agent in ordered:
            joined: dict[str, Any] = await client.request(
                "room.call", {"service": name, "agent": agent["identity"]}
            )
            stderr.print(
                f"{joined.get('identity')} joined room {room} as "
                f"{joined.get('participant_id')} (from {base_url}{agent.get('path')})",
                highlight=False,
                soft_wrap=True,
            )


async def _end_child(child: asyncio.subprocess.Process, exited: asyncio.Future[int]) -> None:
    """SIGTERM the child so its agents leave their rooms; SIGKILL if it takes too long."""
    if not exited.done():
        with contextlib.suppress(ProcessLookupError):
            child.terminate()
        try:
            await asyncio.wait_for(asyncio.shield(exited), CHILD_STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await exited
