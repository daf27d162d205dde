"""`taskroom invoke` and `taskroom tasks ...`: start, watch, wait for and manage tasks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from taskroom.host.cli.common import (
    DEFAULT_URL,
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
            stderr.print(f"[dim]{prefix}{describe_event(data)}[/dim]", highlight=False)

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
        Path | None, typer.Option(help="JSON Schema file for a dynamic runner's output.")
    ] = None,
    tools: Annotated[
        list[str] | None, typer.Option("--tools", help="Room toolkit the agent may use (repeat).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name.")] = None,
    models: Annotated[
        list[str] | None, typer.Option("--models", help="Run once per model, as a batch (repeat).")
    ] = None,
    read_only: Annotated[bool, typer.Option(help="Only read_only tools may be used.")] = False,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Print the task id and return.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the result.")] = 600.0,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Start a task on AGENT, show its progress, and print the result as JSON."""
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

    async def run(client: RoomClient) -> Any:
        started = await client.tasks.start(agent, arguments, models=models, read_only=read_only)
        if no_wait:
            return {"task_ids": started["task_ids"], "batch_id": started["batch_id"]}
        tasks = await watch_task(client, agent, started, timeout)
        failed = [t for t in tasks if t["status"] != "completed"]
        for task in failed:
            stderr.print(
                f"[red]task {task['id']} {task['status']}:[/red] {(task['error'] or {}).get('message')}"
            )
        if len(tasks) == 1:
            if failed:
                raise typer.Exit(1)
            return tasks[0]["result"]
        return {
            t["model"] or t["id"]: t["result"] if t["status"] == "completed" else t["error"]
            for t in tasks
        }

    print_json(with_room(url, room, token, run))


@tasks_app.command("list")
def tasks_list(
    room: RoomOpt,
    status: Annotated[
        str | None, typer.Option(help="pending, running, completed, failed, cancelled.")
    ] = None,
    agent: Annotated[str | None, typer.Option(help="Only this agent's tasks.")] = None,
    batch_id: Annotated[str | None, typer.Option(help="Only this batch.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 20,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """List tasks, newest first."""
    print_json(
        with_room(
            url,
            room,
            token,
            lambda c: c.tasks.list(status=status, agent=agent, batch_id=batch_id, limit=limit),
        )
    )


@tasks_app.command("status")
def tasks_status(
    task_id: str, room: RoomOpt, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None
) -> None:
    """A task's status with its recent progress."""
    print_json(with_room(url, room, token, lambda c: c.tasks.get(task_id)))


@tasks_app.command("result")
def tasks_result(
    task_id: str, room: RoomOpt, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None
) -> None:
    """A finished task's result (or error)."""
    print_json(with_room(url, room, token, lambda c: c.tasks.result(task_id)))


@tasks_app.command("wait")
def tasks_wait(
    room: RoomOpt,
    task_id: Annotated[str | None, typer.Argument(help="Task to wait for.")] = None,
    batch_id: Annotated[str | None, typer.Option(help="Wait for a batch instead.")] = None,
    first: Annotated[bool, typer.Option(help="Return when the first of a batch finishes.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds (at most 3600).")] = 60.0,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
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
        )
    )


@tasks_app.command("cancel")
def tasks_cancel(
    room: RoomOpt,
    task_id: Annotated[str | None, typer.Argument(help="Task to cancel.")] = None,
    batch_id: Annotated[str | None, typer.Option(help="Cancel a whole batch.")] = None,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Cancel a task or a batch; a running LLM call is aborted at once."""
    if (task_id is None) == (batch_id is None):
        fail("give a TASK_ID or --batch-id")
    print_json(with_room(url, room, token, lambda c: c.tasks.cancel(task_id, batch_id=batch_id)))
