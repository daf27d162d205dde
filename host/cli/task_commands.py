"""`taskroom invoke` and `taskroom tasks ...`: start, watch, wait for and manage tasks."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from taskroom.host.cli.common import (
    DataDirOpt,
    RoomOpt,
    TokenOpt,
    UrlOpt,
    command_group,
    fail,
    parse_json_option,
    print_json,
    read_json_file,
    stderr,
    with_room,
)
from taskroom.host.constants import DEFAULT_DATA_DIR, DEFAULT_URL
from taskroom.host.protocol.errors import ErrorCode, RoomError

if TYPE_CHECKING:
    from taskroom.host.client.room_client import RoomClient

tasks_app = command_group()


async def watch_task(
    client: RoomClient, agent: str, started: dict[str, Any], timeout: float
) -> list[dict[str, Any]]:
    """Show progress on stderr until every started task finishes; returns final snapshots."""
    from rich.status import Status

    from taskroom.host.protocol.progress import describe_event

    ids = started["task_ids"]
    multi = len(ids) > 1
    printed: set[tuple[str, int]] = set()

    def show(task_id: str, seq: int, data: dict[str, Any]) -> None:
        if task_id in ids and (task_id, seq) not in printed:
            printed.add((task_id, seq))
            prefix = f"[{task_id[:10]}] " if multi else ""
            stderr.print(f"[dim]{escape(prefix + describe_event(data))}[/dim]", highlight=False)

    with Status(f"running {agent}…", console=stderr) as status:
        client.on("task.progress", lambda e: show(e["task_id"], e["seq"], e["data"]))
        client.on(
            "task.updated",
            lambda e: status.update(f"{agent}: {e['status']}") if e["task_id"] in ids else None,
        )
        if started["batch_id"]:
            await client.tasks.subscribe(batch_id=started["batch_id"])
        else:
            await client.tasks.subscribe(ids[0])
        for task_id in ids:  # events recorded before the subscription took hold
            for event in (await client.tasks.get(task_id))["events"]:
                show(task_id, event["seq"], event["data"])
        if started["batch_id"]:
            waited = await client.tasks.wait(batch_id=started["batch_id"], timeout=timeout)
        else:
            waited = await client.tasks.wait(ids[0], timeout=timeout)
    if waited["timed_out"]:
        fail(f"gave up waiting after {timeout:g} s; the task goes on: taskroom tasks wait {ids[0]}")
    return waited["tasks"]


def invoke_command(
    agent: Annotated[str, typer.Argument(help="Agent (task runner) name in the room.")],
    room: RoomOpt,
    prompt: Annotated[str | None, typer.Option(help="The task's prompt.")] = None,
    input: Annotated[
        str | None, typer.Option("--input", help="Full input as a JSON object.")
    ] = None,
    output_schema: Annotated[
        Path | None,
        typer.Option(help="JSON Schema file the answer must fit (dynamic-llm-task-runner)."),
    ] = None,
    tools: Annotated[
        list[str] | None, typer.Option("--tools", help="Room toolkit the agent may use (repeat).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name.")] = None,
    models: Annotated[
        list[str] | None, typer.Option("--models", help="Run once per model, as a batch (repeat).")
    ] = None,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Only read_only tools may be used.")
    ] = False,
    no_wait: Annotated[
        bool,
        typer.Option(
            "--no-wait",
            "--detach",
            help="Print the task id (a batch: its ids as JSON) and leave the task running.",
        ),
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the result.")] = 600.0,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Start a task on AGENT, show its progress, and print the result as JSON.

    The task id is printed on stderr when the task starts. Ctrl-C cancels the task;
    --no-wait (or --detach) leaves it running."""
    arguments = parse_json_option(input, "--input") or {}
    if not isinstance(arguments, dict):
        fail("--input must be a JSON object")
    if prompt is not None:
        arguments["prompt"] = prompt
    if output_schema is not None:
        arguments["output_schema"] = read_json_file(output_schema, "output schema")
    if tools:
        arguments["tools"] = list(tools)
    if model:
        arguments["model"] = model

    async def run(client: RoomClient) -> None:
        try:
            started = await client.tasks.start(agent, arguments, models=models, read_only=read_only)
        except RoomError as exc:
            refused_schema = "'output_schema' was unexpected" in exc.message
            if exc.code == ErrorCode.INVALID_REQUEST and refused_schema:
                hint = (
                    f"; {agent!r} may have a fixed output schema: --output-schema needs a "
                    "runner that takes one, such as dynamic-llm-task-runner"
                )
                raise RoomError(exc.code, exc.message + hint, exc.details) from None
            raise
        single = started["batch_id"] is None and len(started["task_ids"]) == 1
        if no_wait:
            if single:
                typer.echo(started["task_ids"][0])
            else:
                print_json({"batch_id": started["batch_id"], "task_ids": started["task_ids"]})
            return
        announce(agent, started)
        try:
            tasks = await watch_task(client, agent, started, timeout)
        except asyncio.CancelledError:  # Ctrl-C: asyncio.run cancels this coroutine
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            await cancel_started(client, started)
            raise typer.Exit(130) from None
        failed = [t for t in tasks if t["status"] != "completed"]
        for task in failed:
            stderr.print(
                f"[red]task {task['id']} {task['status']}:[/red] "
                f"{escape((task['error'] or {}).get('message') or '')}",
                highlight=False,
            )
        if single:
            if failed:
                raise typer.Exit(1)
            print_json(tasks[0]["result"])
            return
        order = {task_id: i for i, task_id in enumerate(started["task_ids"])}
        tasks.sort(key=lambda t: order.get(t["id"], len(order)))  # in the order of --models
        print_json({"batch_id": started["batch_id"], "tasks": [batch_entry(t) for t in tasks]})
        if failed:
            raise typer.Exit(1)

    with_room(url, room, token, run, data_dir)


def announce(agent: str, started: dict[str, Any]) -> None:
    """Say on stderr which tasks started, so they can be found again whatever happens next."""
    ids = started["task_ids"]
    if started["batch_id"]:
        what = f"batch {started['batch_id']} started on {agent}: tasks {', '.join(ids)}"
    else:
        what = f"task {ids[0]} started on {agent}"
    stderr.print(f"{what} (Ctrl-C cancels)", highlight=False, markup=False, soft_wrap=True)


async def cancel_started(client: RoomClient, started: dict[str, Any]) -> None:
    """Cancel what ``invoke`` started, and say so; the room aborts a running LLM call."""
    if started["batch_id"]:
        await client.tasks.cancel(batch_id=started["batch_id"])
        what = f"batch {started['batch_id']}"
    else:
        await client.tasks.cancel(started["task_ids"][0])
        what = f"task {started['task_ids'][0]}"
    stderr.print(f"interrupted: cancelled {what}", highlight=False, markup=False)


def batch_entry(task: dict[str, Any]) -> dict[str, Any]:
    """One task of a batch in ``invoke``'s output: its id and model, and how it ended."""
    entry = {"task_id": task["id"], "model": task["model"], "status": task["status"]}
    if task["status"] == "completed":
        entry["result"] = task["result"]
    else:
        entry["error"] = task["error"]
    return entry


@tasks_app.command("list")
def tasks_list(
    room: RoomOpt,
    status: Annotated[
        str | None, typer.Option(help="pending, running, completed, failed, cancelled.")
    ] = None,
    agent: Annotated[str | None, typer.Option(help="Only this agent's tasks.")] = None,
    batch_id: Annotated[str | None, typer.Option(help="Only this batch.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 20,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the full task records as JSON.")
    ] = False,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """List your tasks, newest first, as a table (--json for the records)."""
    listed = with_room(
        url,
        room,
        token,
        lambda c: c.tasks.list(status=status, agent=agent, batch_id=batch_id, limit=limit),
        data_dir,
    )
    if as_json:
        print_json(listed)
    else:
        print_task_table(listed["tasks"])


def print_task_table(tasks: list[dict[str, Any]]) -> None:
    """One line per task: id, agent, model, status, when it was created, and a glimpse of the
    result or error. Ids and names are never cut; only the glimpse folds."""
    import time

    from rich.console import Console
    from rich.table import Table

    if not tasks:
        stderr.print("no tasks (you see the tasks your identity started)")
        return
    rows = [
        (
            task["id"],
            task["agent"],
            task.get("model") or "-",
            task["status"],
            time.strftime("%m-%d %H:%M:%S", time.localtime(task["created_at"])),
            glimpse(task),
        )
        for task in tasks
    ]
    headers = ("ID", "AGENT", "MODEL", "STATUS", "CREATED", "RESULT")
    fixed = sum(max(len(h), *(len(r[i]) for r in rows)) + 2 for i, h in enumerate(headers[:-1]))
    out = Console()
    if not out.is_terminal or out.width < fixed + 24:
        out = Console(width=fixed + 48)
    table = Table(box=None, pad_edge=False, header_style="bold")
    for header in headers:
        table.add_column(header, no_wrap=header != "RESULT", overflow="fold")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    out.print(table)


def glimpse(task: dict[str, Any], width: int = 48) -> str:
    """The start of a task's result, or its error message, on one line."""
    import json

    if task.get("error"):
        text = str(task["error"].get("message", ""))
    elif task.get("result") is None:
        text = ""
    else:
        result = task["result"]
        if isinstance(result, dict) and set(result) == {"result"}:
            result = result["result"]
        text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@tasks_app.command("status")
def tasks_status(
    task_id: str,
    room: RoomOpt,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """A task's status with its recent progress."""
    print_json(with_room(url, room, token, lambda c: c.tasks.get(task_id), data_dir))


@tasks_app.command("result")
def tasks_result(
    task_id: str,
    room: RoomOpt,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """A finished task's result (or error)."""
    print_json(with_room(url, room, token, lambda c: c.tasks.result(task_id), data_dir))


@tasks_app.command("wait")
def tasks_wait(
    room: RoomOpt,
    task_id: Annotated[str | None, typer.Argument(help="Task to wait for.")] = None,
    batch_id: Annotated[str | None, typer.Option(help="Wait for a batch instead.")] = None,
    first: Annotated[
        bool, typer.Option("--first", help="Return when the first of a batch finishes.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds (at most 3600).")] = 60.0,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Wait for a task or a batch to finish."""
    if (task_id is None) == (batch_id is None):
        fail("give a TASK_ID or --batch-id")
    print_json(
        with_room(
            url,
            room,
            token,
            lambda c: c.tasks.wait(
                task_id, batch_id=batch_id, mode="first" if first else "all", timeout=timeout
            ),
            data_dir,
        )
    )


@tasks_app.command("cancel")
def tasks_cancel(
    room: RoomOpt,
    task_id: Annotated[str | None, typer.Argument(help="Task to cancel.")] = None,
    batch_id: Annotated[str | None, typer.Option(help="Cancel a whole batch.")] = None,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Cancel a task or a batch; a running LLM call is aborted at once."""
    if (task_id is None) == (batch_id is None):
        fail("give a TASK_ID or --batch-id")
    print_json(
        with_room(url, room, token, lambda c: c.tasks.cancel(task_id, batch_id=batch_id), data_dir)
    )
