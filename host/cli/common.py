"""What every CLI command shares: room connection options, JSON output, errors.

It imports only typer and rich at module level: the room client and token signing load
when a command runs, so showing a command's help stays cheap.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

if TYPE_CHECKING:
    from taskroom.host.client.room_client import RoomClient

T = TypeVar("T")

stderr = Console(stderr=True)

DEFAULT_URL = "http://127.0.0.1:8765"

RoomOpt = Annotated[str, typer.Option("--room", envvar="TASKROOM_ROOM", help="Room name.")]
UrlOpt = Annotated[
    str,
    typer.Option("--url", envvar="TASKROOM_URL", help="Room server base URL."),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="TASKROOM_TOKEN",
        help="Participant token. Without one, a user token is minted from the local secret.",
    ),
]
DataDirOpt = Annotated[
    Path,
    typer.Option("--data-dir", envvar="TASKROOM_DATA_DIR", help="Folder holding the secret."),
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


def resolve_token(token: str | None, room: str, data_dir: Path | None = None) -> str:
    """The given token, else a user token minted from the secret in ``data_dir``."""
    if token:
        return token
    from taskroom.host.auth.tokens import TokenError, create_token, load_secret

    try:
        secret = load_secret(data_dir, create=False)
    except TokenError as exc:
        fail(f"no --token / TASKROOM_TOKEN given and no local secret to mint one ({exc})")
    return create_token(secret, room=room, identity=os.environ.get("USER", "cli"), role="user")


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


def with_room(
    url: str,
    room: str,
    token: str | None,
    fn: Callable[[RoomClient], Awaitable[T]],
    data_dir: Path | None = None,
) -> T:
    """Join the room, run ``fn``, leave; room errors become a clean CLI failure."""
    import asyncio

    from taskroom.host.client.room_client import RoomClient
    from taskroom.host.protocol import RoomError

    async def run() -> T:
        async with RoomClient(
            url, room, resolve_token(token, room, data_dir), reconnect=False
        ) as client:
            return await fn(client)

    try:
        return asyncio.run(run())
    except RoomError as exc:
        fail(f"{exc.code.value}: {exc.message}")
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
