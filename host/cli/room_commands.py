"""`taskroom room`, `token`, `init`, `toolkits`, `tools` and `schemas` commands."""

from __future__ import annotations

import asyncio
import enum
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from taskroom.host.cli.common import (
    DataDirOpt,
    RoomOpt,
    TokenOpt,
    UrlOpt,
    cannot_listen,
    command_group,
    existing_secret,
    fail,
    parse_json_option,
    print_json,
    read_json_file,
    setup_logging,
    stderr,
    with_room,
)
from taskroom.host.constants import DEFAULT_DATA_DIR, DEFAULT_PORT, DEFAULT_URL, ROLES

if TYPE_CHECKING:
    from taskroom.host.client.room_client import RoomClient


class OnDamageChoice(enum.StrEnum):
    """The choices of ``--on-damage`` (the store's ``OnDamage``)."""

    REFUSE = "refuse"
    FRESH = "fresh"
    SKIP = "skip"


room_app = command_group()
token_app = command_group()
toolkits_app = command_group()
tools_app = command_group()
schemas_app = command_group()


@room_app.command("serve")
def room_serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port for HTTP and WebSocket.")] = DEFAULT_PORT,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    public_url: Annotated[
        str | None,
        typer.Option(help="URL agents are told to join (when binding 0.0.0.0 or behind a proxy)."),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            envvar="TASKROOM_STORE",
            help="Task store: postgresql://user@host:port/db (shared by nodes); "
            "default: SQLite in the data folder.",
        ),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            envvar="TASKROOM_CLUSTER",
            help="redis:// URL: serve as one node of a cluster (rooms owned through Redis leases).",
        ),
    ] = None,
    node_url: Annotated[
        str | None,
        typer.Option(
            envvar="TASKROOM_NODE_URL",
            help="With --cluster: the URL other nodes and clients reach this node at.",
        ),
    ] = None,
    on_damage: Annotated[
        OnDamageChoice,
        typer.Option(
            "--on-damage",
            help="An empty or damaged tasks database: refuse to start (default), move it "
            "aside and start fresh, or skip the rows that cannot be read.",
        ),
    ] = OnDamageChoice.REFUSE,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Serve rooms over WebSocket at /rooms/{room}, health at /healthz.

    On first start it creates the data folder's secret, which tokens are signed with."""
    from taskroom.host.auth.tokens import TokenError
    from taskroom.host.server.build import build_room_server
    from taskroom.host.server.cluster.errors import ClusterError
    from taskroom.host.server.tasks import TaskStoreError

    setup_logging(verbose)
    try:
        server = build_room_server(
            data_dir=data_dir,
            public_url=public_url,
            on_damage=on_damage.value,
            store=store,
            cluster=cluster,
            node_url=node_url,
        )
    except (TokenError, OSError, TaskStoreError, ClusterError) as exc:
        fail(str(exc))

    def started(url: str) -> None:
        stderr.print(f"room server on {url} (data in {data_dir})", highlight=False)

    try:
        asyncio.run(server.serve_forever(host, port, started=started))
    except KeyboardInterrupt:
        pass
    except (TaskStoreError, ClusterError) as exc:
        fail(str(exc))
    except OSError as exc:
        cannot_listen(host, port, exc)


def init_command(data_dir: DataDirOpt = DEFAULT_DATA_DIR) -> None:
    """Create the data folder's secret.

    A room server creates it on its first start; `init` does it ahead, so tokens can be
    minted before the room first runs."""
    from taskroom.host.auth.tokens import SECRET_ENV, SECRET_FILE, TokenError, load_secret

    if os.environ.get(SECRET_ENV):
        fail(f"{SECRET_ENV} is set: tokens are signed with it, not with a secret file")
    path = data_dir / SECRET_FILE
    existed = path.exists()
    try:
        load_secret(data_dir)
    except (TokenError, OSError) as exc:
        fail(str(exc))
    stderr.print(f"{'secret already in' if existed else 'created secret'} {path}", highlight=False)


@token_app.command("generate")
def token_generate(
    room: Annotated[str, typer.Option("--room", help="Room the token admits to ('*' for all).")],
    identity: Annotated[str, typer.Option("--identity", help="Participant name.")],
    role: Annotated[str, typer.Option("--role", help=f"One of {', '.join(ROLES)}.")] = "user",
    grant: Annotated[
        list[str] | None, typer.Option("--grant", help="Grant (repeatable); default: the role's.")
    ] = None,
    ttl: Annotated[float, typer.Option(help="Lifetime in seconds.")] = 24 * 3600,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Print a signed token on stdout (and nothing else)."""
    from taskroom.host.auth.tokens import create_token

    if role not in ROLES:
        fail(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    secret = existing_secret(data_dir)
    typer.echo(create_token(secret, room=room, identity=identity, role=role, grants=grant, ttl=ttl))


@toolkits_app.command("list")
def toolkits_list(
    room: RoomOpt,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    participant_id: Annotated[str | None, typer.Option(help="Only this host's toolkits.")] = None,
    name: Annotated[str | None, typer.Option(help="Only toolkits with this name.")] = None,
) -> None:
    """List the toolkits visible to you, with their tools and schemas."""

    async def run(client: RoomClient):
        found = await client.list_toolkits(participant_id=participant_id, name=name)
        return [i.model_dump(mode="json") for i in found]

    print_json(with_room(url, room, token, run, data_dir))


@tools_app.command("invoke")
def tools_invoke(
    toolkit: str,
    tool: str,
    room: RoomOpt,
    args: Annotated[str, typer.Option("--args", help="Arguments as a JSON object.")] = "{}",
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    timeout: Annotated[float | None, typer.Option(help="Deadline in seconds.")] = None,
    participant_id: Annotated[str | None, typer.Option(help="Call this host.")] = None,
) -> None:
    """Call TOOLKIT.TOOL and print its result; progress goes to stderr."""
    arguments = parse_json_option(args, "--args")
    if not isinstance(arguments, dict):
        fail("--args must be a JSON object")

    async def run(client: RoomClient):
        return await client.invoke_tool(
            toolkit,
            tool,
            arguments,
            timeout=timeout,
            participant_id=participant_id,
            on_progress=lambda event: stderr.print(f"[dim]progress[/dim] {event}"),
        )

    print_json(with_room(url, room, token, run, data_dir))


@schemas_app.command("list")
def schemas_list(
    room: RoomOpt,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Print every schema in the room, by name."""
    print_json(with_room(url, room, token, lambda c: c.list_schemas(), data_dir))


@schemas_app.command("get")
def schemas_get(
    name: str,
    room: RoomOpt,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Print one schema."""
    print_json(with_room(url, room, token, lambda c: c.get_schema(name), data_dir))


@schemas_app.command("put")
def schemas_put(
    name: str,
    file: Annotated[Path, typer.Argument(help="JSON Schema file.")],
    room: RoomOpt,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Create or replace a schema from a file; it is checked to be a valid JSON Schema."""
    schema = read_json_file(file, "schema file")

    async def run(client: RoomClient):
        return {"name": name, "action": await client.put_schema(name, schema)}

    print_json(with_room(url, room, token, run, data_dir))


@schemas_app.command("rm")
def schemas_rm(
    name: str,
    room: RoomOpt,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Remove a schema."""

    async def run(client: RoomClient):
        await client.remove_schema(name)
        return {"name": name, "action": "removed"}

    print_json(with_room(url, room, token, run, data_dir))
