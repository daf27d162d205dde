"""The ``taskroom`` command line."""

from __future__ import annotations

import typer

from taskroom.host.cli.llm_commands import llm_app
from taskroom.host.cli.mcp_command import mcp_command
from taskroom.host.cli.room_commands import (
    room_app,
    schemas_app,
    token_app,
    toolkits_app,
    tools_app,
)
from taskroom.host.cli.service_commands import call_app, service_app
from taskroom.host.cli.task_commands import invoke_command, tasks_app
from taskroom.host.cli.up_command import up_command

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
app.add_typer(call_app, name="call")
app.add_typer(service_app, name="service")
app.add_typer(tasks_app, name="tasks")
app.add_typer(llm_app, name="llm")
app.command("invoke")(invoke_command)
app.command("up")(up_command)
app.command("mcp")(mcp_command)


def main() -> None:
    app()
