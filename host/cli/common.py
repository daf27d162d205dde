"""What every CLI command shares: room connection options, JSON output, errors.

It imports only typer, rich and dependency-free project modules at module level: the room
client and token signing load when a command runs, so showing a command's help stays cheap.

Every command finds the data folder (the room's secret and task store) by one rule:
``--data-dir``, else ``TASKROOM_DATA_DIR``, else ``.taskroom`` in the working folder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from taskroom.host.constants import DATA_DIR_ENV, DEFAULT_DATA_DIR, DEFAULT_URL, LOCAL_USER
from taskroom.host.protocol.errors import RoomError

if TYPE_CHECKING:
    from taskroom.host.client.room_client import RoomClient

T = TypeVar("T")

stderr = Console(stderr=True)


def normalize_url(url: str) -> str:
    """The room server's base URL from what a user may paste: ``host:port`` (no scheme),
    ``ws://``, or a room's own URL as ``taskroom up`` prints it (``.../rooms/NAME``)."""
    from urllib.parse import urlsplit

    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    if scheme not in ("http", "https") or not parts.hostname:
        raise typer.BadParameter(f"{url!r} is not a room server URL such as {DEFAULT_URL}")
    try:
        parts.port  # noqa: B018  (parsing the port is the check)
    except ValueError as exc:
        raise typer.BadParameter(f"{url!r}: {exc}") from None
    path = parts.path.rstrip("/")
    rooms_at = path.find("/rooms/")
    if rooms_at >= 0:
        path = path[:rooms_at]
    return f"{scheme}://{parts.netloc}{path}"


RoomOpt = Annotated[str, typer.Option("--room", envvar="TASKROOM_ROOM", help="Room name.")]
UrlOpt = Annotated[
    str,
    typer.Option(
        "--url",
        envvar="TASKROOM_URL",
        callback=normalize_url,
        help="Room server URL: http://HOST:PORT, HOST:PORT, or a room's URL .../rooms/NAME.",
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="TASKROOM_TOKEN",
        help="Participant token. Without one, a user token is minted from the room's secret "
        "in the data folder.",
    ),
]
DataDirOpt = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        envvar=DATA_DIR_ENV,
        help="Data folder: the room's secret and task store.",
    ),
]


def command_group() -> typer.Typer:
    """A sub-command group. Its help comes from the command table in ``taskroom.host.cli``;
    help is click's plain format, which spares loading typer's rich help renderer."""
    return typer.Typer(no_args_is_help=True, rich_markup_mode=None)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def print_json(value: Any) -> None:
    """Results go to stdout as JSON, so commands compose with jq and scripts."""
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def fail(message: str, code: int = 1) -> NoReturn:
    stderr.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def existing_secret(data_dir: Path) -> str:
    """The room's signing secret, never a new one: only a room server creates the secret,
    so a token minted here is one the room accepts."""
    from taskroom.host.auth.tokens import TokenError, load_secret

    try:
        return load_secret(data_dir, create=False)
    except TokenError as exc:
        fail(
            f"{exc}. Run this where the room runs (taskroom up / taskroom room serve create "
            f"the secret on first start), or point --data-dir / {DATA_DIR_ENV} at the room's "
            "data folder, or set TASKROOM_SECRET, or run `taskroom init`"
        )


def resolve_token(token: str | None, room: str, data_dir: Path = DEFAULT_DATA_DIR) -> str:
    """The given token, else a user token for the local user minted from the room's secret."""
    if token:
        return token
    from taskroom.host.auth.tokens import create_token

    return create_token(existing_secret(data_dir), room=room, identity=LOCAL_USER, role="user")


def parse_json_option(value: str | None, what: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError as exc:
        fail(f"{what} is not valid JSON: {exc}")


def read_json_file(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        fail(f"cannot read {what} {path}: {exc.strerror or exc}")
    except ValueError as exc:
        fail(f"{what} {path} is not valid JSON: {exc}")


def describe_room_error(exc: RoomError) -> str:
    """A room error on one line, naming the agents the room has when it says which."""
    text = f"{exc.code.value}: {exc.message}"
    agents = exc.details.get("agents")
    if isinstance(agents, list):
        text += f" (agents here: {', '.join(map(str, agents)) or 'none'})"
    return text


def with_room(
    url: str,
    room: str,
    token: str | None,
    fn: Callable[[RoomClient], Awaitable[T]],
    data_dir: Path = DEFAULT_DATA_DIR,
) -> T:
    """Join the room, run ``fn``, leave; room errors become a clean CLI failure."""
    import asyncio

    from taskroom.host.client.room_client import RoomClient

    async def run() -> T:
        async with RoomClient(
            url, room, resolve_token(token, room, data_dir), reconnect=False
        ) as client:
            return await fn(client)

    try:
        return asyncio.run(run())
    except RoomError as exc:
        fail(describe_room_error(exc))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def cannot_listen(host: str, port: int, exc: OSError) -> NoReturn:
    """Fail on one line when a server cannot bind, naming the address and the usual cause."""
    import errno

    if exc.errno == errno.EADDRINUSE:
        reason = "the port is already in use (choose another with --port)"
    else:
        reason = exc.strerror or str(exc)
    fail(f"cannot listen on {host}:{port}: {reason}")
