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
    url: Annotated[
        str,
        typer.Option(
            "--url",
            help="The agent's URL: its service's base URL plus the agent's path, e.g. "
            "http://127.0.0.1:8766/llm-task-runner. (The room server is --room-url.)",
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="Identity the agent joins as.")],
    arguments: Annotated[
        str | None, typer.Option("--arguments", help="JSON object handed to the agent.")
    ] = None,
    role: Annotated[str, typer.Option(help="Role of the agent's token: agent or tool.")] = "agent",
    room_url: RoomUrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Ask the room to call the agent at --url in; prints its participant id once it joined.

    Here --url is the AGENT's URL; the room server's is --room-url (TASKROOM_URL).
    """
    args = parse_json_option(arguments, "--arguments") or {}
    if not isinstance(args, dict):
        fail("--arguments must be a JSON object")
    request = {"name": name, "url": url, "arguments": args, "role": role}
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
        asyncio.run(_serve(service, room_url, room, room_token))
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


async def _serve(service: ServiceHost, room_url: str, room: str, token: str) -> None:
    from taskroom.host.client.room_client import RoomClient

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    base_url = await service.start()
    stderr.print(f"service on {base_url}", highlight=False, soft_wrap=True)
    try:
        async with RoomClient(room_url, room, token, reconnect=False) as client:
            for service_path in service.paths.values():
                joined: dict[str, Any] = await client.request(
                    "room.call",
                    {"name": service_path.identity, "url": base_url + service_path.path},
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
