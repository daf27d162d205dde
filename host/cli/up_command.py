"""`taskroom up`: the whole system in one command, for a first run and for local work.

It starts a room server, a service host with the task runners (the two LLM task runners
and the workspace runner over the folder it runs in), calls them into a room, and prints
what a user needs to start tasks, with a token for the local user. With no OPENAI_API_KEY it runs on the
scripted test LLM and says so, so a fresh clone works with no account and no network.
The server, the agents and the LLM client load when the command runs, not for its help.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from taskroom.host.cli.common import (
    DataDirOpt,
    cannot_listen,
    describe_room_error,
    fail,
    setup_logging,
    stderr,
)
from taskroom.host.constants import DEFAULT_DATA_DIR, DEFAULT_PORT, LOCAL_USER

HOST = "127.0.0.1"
RUNNERS = ("llm-task-runner", "dynamic-llm-task-runner", "workspace-task-runner")


def up_command(
    port: Annotated[
        int, typer.Option(help="Room server port (HTTP, WebSocket, Studio).")
    ] = DEFAULT_PORT,
    room: Annotated[str, typer.Option(help="Room to call the runners into.")] = "myroom",
    workspace: Annotated[
        Path, typer.Option(help="Folder the workspace-task-runner works in.")
    ] = Path("."),
    no_shell: Annotated[
        bool,
        typer.Option(
            "--no-shell",
            help="Leave the shell tool out of the workspace-task-runner (it is offered to "
            "tasks that are not read_only otherwise).",
        ),
    ] = False,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    demo: Annotated[
        bool, typer.Option("--demo", help="Invoke the LLM task runners once; print the results.")
    ] = False,
    exit_after_demo: Annotated[
        bool,
        typer.Option("--exit-after-demo", help="Stop after the demo instead of serving."),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs on stderr.")] = False,
) -> None:
    """Start a room with the task runners in ROOM: all of taskroom in one process.

    A room server, a service host with llm-task-runner, dynamic-llm-task-runner and
    workspace-task-runner (over --workspace), all called into ROOM."""
    from taskroom.host.auth.tokens import TokenError
    from taskroom.host.protocol import RoomError
    from taskroom.host.server.tasks import TaskStoreError

    if not workspace.is_dir():
        fail(f"--workspace {workspace} is not a folder")
    setup_logging(verbose)
    try:
        asyncio.run(
            _up(port, room, workspace.resolve(), not no_shell, data_dir, demo, exit_after_demo)
        )
    except KeyboardInterrupt:
        pass
    except (TokenError, TaskStoreError) as exc:
        fail(str(exc))
    except RoomError as exc:
        fail(describe_room_error(exc))
    except OSError as exc:
        fail(f"cannot start: {exc.strerror or exc}")


async def _up(
    port: int,
    room: str,
    workspace: Path,
    shell: bool,
    data_dir: Path,
    demo: bool,
    exit_after_demo: bool,
) -> None:
    from taskroom.agents import DynamicLLMTaskRunner, LLMTaskRunner, OpenAIResponsesAdapter
    from taskroom.agents.workspace_runner import WorkspaceTaskRunner
    from taskroom.host.auth.tokens import create_token, load_secret
    from taskroom.host.client.room_client import RoomClient
    from taskroom.host.server.build import build_room_server
    from taskroom.host.service.service_host import ServiceHost

    secret = load_secret(data_dir)  # the room's secret, created on its first start
    async with contextlib.AsyncExitStack() as stack:
        server = build_room_server(data_dir=data_dir, secret=secret)
        stack.push_async_callback(server.stop)
        try:
            room_url = await server.start(HOST, port)
        except OSError as exc:
            cannot_listen(HOST, port, exc)
        adapter_options = await _llm_settings(stack)

        service = ServiceHost(port=0, webhook_secret=secret)
        service.add_path(
            "/llm-task-runner",
            lambda: LLMTaskRunner(llm_adapter=OpenAIResponsesAdapter(**adapter_options)),
            "llm-task-runner",
        )
        service.add_path(
            "/dynamic-llm-task-runner",
            lambda: DynamicLLMTaskRunner(llm_adapter=OpenAIResponsesAdapter(**adapter_options)),
            "dynamic-llm-task-runner",
        )
        service.add_path(
            "/workspace-task-runner",
            lambda: WorkspaceTaskRunner(
                workspace,
                shell=shell,
                # A real model is reached by name through the provider table; the scripted
                # LLM answers any model name at its one URL.
                llm_adapter=OpenAIResponsesAdapter(**adapter_options) if adapter_options else None,
            ),
            "workspace-task-runner",
        )
        service_url = await service.start()
        stack.push_async_callback(service.stop)

        admin = create_token(secret, room=room, identity="taskroom-up", role="admin")
        async with RoomClient(room_url, room, admin, reconnect=False) as client:
            await client.request("services.register", {"name": "up", "url": service_url})
            for name in RUNNERS:
                await client.request("room.call", {"service": "up", "agent": name}, timeout=90)
        user_token = create_token(
            secret, room=room, identity=LOCAL_USER, role="user", ttl=7 * 24 * 3600
        )
        _print_banner(room_url, room, user_token, workspace, data_dir)
        if demo:
            await _demo(room_url, room, user_token)
        if exit_after_demo:
            return
        stderr.print("[bold]serving[/bold]; press Ctrl-C to stop")
        await _until_signal()


async def _llm_settings(stack: contextlib.AsyncExitStack) -> dict[str, Any]:
    from taskroom.agents.openai_client import default_model
    from taskroom.agents.testing import ScriptedLLMServer

    if os.environ.get("OPENAI_API_KEY"):
        where = os.environ.get("OPENAI_BASE_URL", "the OpenAI API")
        stderr.print(f"LLM: model {default_model()} at {where} (OPENAI_API_KEY is set)")
        return {}
    llm = ScriptedLLMServer(auto=True)
    await llm.start()
    stack.push_async_callback(llm.stop)
    stderr.print(
        "[yellow]No OPENAI_API_KEY is set: the runners use taskroom's scripted test LLM "
        f"(auto mode at {llm.base_url}). Its answers are synthetic, not a real model's.[/yellow] "
        "Set OPENAI_API_KEY (and optionally OPENAI_BASE_URL, TASKROOM_MODEL) to use a real one."
    )
    return {"base_url": llm.base_url, "api_key": "scripted", "model": "scripted-model"}


def _print_banner(room_url: str, room: str, token: str, workspace: Path, data_dir: Path) -> None:
    def line(text: str) -> None:  # long URLs and tokens stay whole, to copy and paste
        stderr.print(text, highlight=False, markup=False, soft_wrap=True)

    stderr.rule("taskroom is up")
    line(f"room        {room_url}/rooms/{room}")
    line(f"agents      {', '.join(RUNNERS)}")
    line(f"workspace   {workspace}")
    line(f"studio      {room_url}/studio?room={room}#token={token}")
    line(f"data        {data_dir}")
    line(f"you are     {LOCAL_USER}: this token, and the CLI here without a token, see your tasks")
    line("invoke a runner from another terminal (the token is valid 7 days):")
    line(f"  export TASKROOM_URL={room_url} TASKROOM_TOKEN={token}")
    line(f"  taskroom invoke llm-task-runner --room {room} --prompt 'Write a haiku about rooms'")


async def _demo(room_url: str, room: str, token: str) -> None:
    from taskroom.agents.demo import DEMO_TASKS
    from taskroom.host.cli.task_commands import watch_task
    from taskroom.host.client.room_client import RoomClient

    async with RoomClient(room_url, room, token, reconnect=False) as client:
        for agent, arguments in DEMO_TASKS.items():
            stderr.rule(f"demo: {agent}")
            started = await client.tasks.start(agent, arguments)
            (task,) = await watch_task(client, agent, started, timeout=300)
            if task["status"] != "completed":
                message = (task["error"] or {}).get("message")
                fail(f"demo task {task['id']} on {agent} {task['status']}: {message}")
            typer.echo(
                json.dumps(
                    {"agent": agent, "task_id": task["id"], "result": task["result"]}, indent=2
                )
            )


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
