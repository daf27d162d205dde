"""`taskroom call agent` and `taskroom service run`: calling agents into rooms by webhook."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from taskroom.host.auth.tokens import DEFAULT_DATA_DIR
from taskroom.host.cli.common import (
    DEFAULT_URL,
    DataDirOpt,
    RoomOpt,
    TokenOpt,
    command_group,
    fail,
    parse_json_option,
    print_json,
    resolve_token,
    setup_logging,
    stderr,
    with_room,
)

if TYPE_CHECKING:
    from taskroom.host.service.service_host import ServiceHost

call_app = command_group()
service_app = command_group()

RoomUrlOpt = Annotated[
    str,
    typer.Option(
        "--room-url",
        envvar="TASKROOM_URL",
        help="Room server base URL (named --room-url here because --url is the agent's).",
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
        int | None, typer.Option(help="Port to serve on (default: the file's).")
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
    """Serve FILE's agents and call each into ROOM; on Ctrl-C or SIGTERM they all leave."""
    from taskroom.host.protocol import RoomError

    setup_logging(verbose)
    service = load_service(file)
    if port is not None:
        service.port = port
    room_token = resolve_token(token, room, data_dir)
    try:
        asyncio.run(_serve(service, name or file.stem, register, room_url, room, room_token))
    except RoomError as exc:
        fail(f"{exc.code.value}: {exc.message}")
    except OSError as exc:
        fail(f"cannot serve on {service.host}:{service.port}: {exc.strerror or exc}")


def load_service(file: Path) -> ServiceHost:
    """Import ``file`` and return its one module-level ServiceHost."""
    from taskroom.host.service.service_host import ServiceHost

    if not file.is_file():
        fail(f"no such file: {file}")
    module_name = "taskroom_service_" + re.sub(r"\W", "_", file.stem)
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        fail(f"cannot load {file} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        fail(f"cannot load {file}: {type(exc).__name__}: {exc}")
    found: dict[int, tuple[str, ServiceHost]] = {}
    for attr, value in vars(module).items():
        if isinstance(value, ServiceHost):
            found.setdefault(id(value), (attr, value))
    if not found:
        fail(f"{file} defines no ServiceHost; add e.g. `service = ServiceHost()` at module level")
    if len(found) > 1:
        names = ", ".join(attr for attr, _ in found.values())
        fail(f"{file} defines several ServiceHosts ({names}); keep one per file")
    [(_, service)] = found.values()
    if not service.paths:
        fail(f"{file}'s ServiceHost has no paths; add one with @service.path(...)")
    return service


async def _serve(
    service: ServiceHost, name: str, register: bool, room_url: str, room: str, token: str
) -> None:
    from taskroom.host.client.room_client import RoomClient

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    base_url = await service.start()
    stderr.print(f"service on {base_url}", highlight=False, soft_wrap=True)
    try:
        async with RoomClient(room_url, room, token, reconnect=False) as client:
            if register:
                await client.request("services.register", {"name": name, "url": base_url})
            for service_path in service.paths.values():
                joined: dict[str, Any] = await client.request(
                    "room.call", {"service": name, "agent": service_path.identity}
                )
                stderr.print(
                    f"{joined.get('identity')} joined room {room} as "
                    f"{joined.get('participant_id')} (from {base_url}{service_path.path})",
                    highlight=False,
                    soft_wrap=True,
                )
        await stop.wait()
        stderr.print("stopping: every agent leaves its room", highlight=False, soft_wrap=True)
    finally:
        await service.stop()
