"""The ``taskroom`` command line."""

from __future__ import annotations

import typer

from taskroom.host.cli.room_commands import (
    room_app,
    schemas_app,
    token_app,
    toolkits_app,
    tools_app,
)

app = typer.Typer(
    help="taskroom: rooms, toolkits, task runners and durable tasks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(room_app, name="room")
app.add_typer(token_app, name="token")
app.add_typer(toolkits_app, name="toolkits")
app.add_typer(tools_app, name="tools")
app.add_typer(schemas_app, name="schemas")


def main() -> None:
    app()
