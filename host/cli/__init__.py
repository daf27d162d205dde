"""The ``taskroom`` command line.

Commands are listed here with their one-line help and imported only when one runs (or
shows its own help), so ``taskroom --help`` costs typer and rich, not the room client,
the server, ``openai`` or ``mcp``.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any, NamedTuple

import typer
from typer.core import TyperCommand, TyperGroup


class CommandEntry(NamedTuple):
    """Where a top-level command lives (``module:attribute`` in this package), and its help."""

    target: str
    help: str


COMMANDS: dict[str, CommandEntry] = {
    "room": CommandEntry("room_commands:room_app", "Run a room server."),
    "init": CommandEntry("room_commands:init_command", "Create the data folder's secret."),
    "token": CommandEntry("room_commands:token_app", "Mint participant tokens."),
    "toolkits": CommandEntry("room_commands:toolkits_app", "Toolkits registered in a room."),
    "tools": CommandEntry("room_commands:tools_app", "Call tools through a room."),
    "schemas": CommandEntry("room_commands:schemas_app", "JSON schemas held by a room."),
    "call": CommandEntry("service_commands:call_app", "Call agents into rooms."),
    "service": CommandEntry(
        "service_commands:service_app", "Host agents that rooms call in by webhook."
    ),
    "tasks": CommandEntry("task_commands:tasks_app", "List, inspect, wait for and cancel tasks."),
    "llm": CommandEntry("llm_commands:llm_app", "LLM helpers."),
    "invoke": CommandEntry(
        "task_commands:invoke_command",
        "Start a task on AGENT, show its progress, and print the result as JSON.",
    ),
    "up": CommandEntry(
        "up_command:up_command",
        "Start a room with the task runners in ROOM: all of taskroom in one process.",
    ),
    "mcp": CommandEntry(
        "mcp_command:mcp_command",
        "Serve the room's tasks and agents to MCP clients (mcp-task's tools, and more).",
    ),
}
"""Every top-level command; groups take their help from here, commands from their docstring."""


def load_command(name: str) -> TyperCommand | TyperGroup:
    """Import command ``name`` and build its click command (a group for a sub-app)."""
    entry = COMMANDS[name]
    module_name, attribute = entry.target.split(":")
    target = getattr(importlib.import_module(f"{__name__}.{module_name}"), attribute)
    if isinstance(target, typer.Typer):
        command: Any = typer.main.get_group(target)
        command.help = entry.help
    else:
        single = typer.Typer(add_completion=False, rich_markup_mode=None)
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """The root group: lists :data:`COMMANDS` from their entries and loads one on use.

    Until loaded, a command is a placeholder holding its name and help, which is all that
    listing commands (``--help``) and suggesting near names need.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name, entry in COMMANDS.items():
            self.add_command(TyperCommand(name, help=entry.help))
        self._loaded: set[str] = set()
        self._listing = False

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if self._listing or cmd_name not in COMMANDS or cmd_name in self._loaded:
            return super().get_command(ctx, cmd_name)
        self.add_command(load_command(cmd_name), cmd_name)
        self._loaded.add(cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    cls=LazyGroup,
    rich_markup_mode=None,
    help="taskroom: rooms, toolkits, task runners and durable tasks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(requested: bool) -> None:
    if requested:
        from importlib.metadata import version

        typer.echo(f"taskroom {version('taskroom')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    # A callback makes typer build a group even though every command is added lazily.
    pass


def main() -> None:
    app()
