"""The workspace agent: an LLM task runner that works over one folder.

It hosts the workspace toolkit (files, apply_patch, shell, todo) in the room, private to
itself, and calls it *through the room* on each task's behalf, so the room's rules apply
to every call: a read_only task is offered only read_only tools, and a call to any other
is refused by the room, not merely left out of the model's list. Models are reached by
name through the provider table, so any model class or provider model works.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from taskroom.agents.adapter import LLMAdapter
from taskroom.agents.llm_task_runner import LLMTaskRunner, prompt_input_schema
from taskroom.agents.providers import RoutedAdapter
from taskroom.agents.task_runner import TaskContext
from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.toolkits.builtin.workspace import DEFAULT_SHELL_TIMEOUT, workspace_toolkit
from taskroom.toolkits.requirements import remote_toolkit
from taskroom.toolkits.room import HostingRoom
from taskroom.toolkits.toolkit import Toolkit

logger = logging.getLogger(__name__)

WORKSPACE_AGENT = "workspace-task-runner"
LISTING_LIMIT = 100

READ_ONLY_MODE = (
    "You are in READ ONLY mode: you can list, read, glob and grep the files and keep a todo "
    "list, but you cannot change any file or run commands."
)
READ_WRITE_MODE = (
    "You can read and search the files, and you can also change them (write, edit, "
    "apply_patch){shell}."
)


def workspace_input_schema() -> dict[str, Any]:
    """A prompt and a model, plus the record of how the model was chosen."""
    schema = prompt_input_schema(supports_tools=False)
    schema["properties"]["model_selection"] = {
        "type": "array",
        "items": {"type": "object"},
        "description": "How each requested model (class) was resolved: requested, model, "
        "reason. Recorded with the task; the runner uses only 'model'.",
    }
    return schema


def _listing(root: Path) -> str:
    entries = sorted(os.scandir(root), key=lambda e: e.name)
    shown = [f"\t{e.name}{'/' if e.is_dir(follow_symlinks=False) else ''}" for e in entries]
    if len(shown) > LISTING_LIMIT:
        shown = [*shown[:LISTING_LIMIT], f"\t... and {len(shown) - LISTING_LIMIT} more"]
    return "\n".join(shown) or "\t(empty)"


class WorkspaceTaskRunner(LLMTaskRunner):
    """A coding and research agent over ``workspace``; ``shell=False`` leaves the shell out."""

    def __init__(
        self,
        workspace: Path | str,
        *,
        llm_adapter: LLMAdapter | None = None,
        shell: bool = True,
        shell_timeout: float = DEFAULT_SHELL_TIMEOUT,
        name: str = WORKSPACE_AGENT,
        public: bool = True,
        allowed_callers: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        self.workspace = Path(workspace).expanduser().resolve(strict=True)
        self.shell = shell
        self.public = public
        self.allowed_callers = list(allowed_callers)
        self.tools = workspace_toolkit(
            self.workspace,
            shell=shell,
            shell_timeout=shell_timeout,
            name=f"{name}.workspace",
            public=False,
        )
        super().__init__(
            llm_adapter=llm_adapter or RoutedAdapter(),
            name=name,
            title="Workspace Task Runner",
            description=f"Works on the files under {self.workspace}: reads, searches, edits and "
            "patches them, runs commands there, and keeps a todo list.",
            input_schema=workspace_input_schema(),
            labels=("llm", "workspace"),
            **{"supports_tools": False, **kwargs},  # its tools are the workspace's own
        )

    def make_toolkit(self) -> Toolkit:
        toolkit = super().make_toolkit()
        toolkit.public = self.public
        toolkit.allowed_callers = self.allowed_callers
        return toolkit

    async def start(self, room: HostingRoom) -> None:
        await room.host_toolkit(self.tools)
        await super().start(room)

    async def stop(self) -> None:
        room = self.room
        await super().stop()
        if room is not None and not room.closed:
            try:
                await room.unhost_toolkit(self.tools.name)
            except RoomError as exc:
                logger.debug("unhosting %s: %s", self.tools.name, exc.message)

    def system_prompt(self, read_only: bool, listing: str) -> str:
        mode = (
            READ_ONLY_MODE
            if read_only
            else READ_WRITE_MODE.format(shell=", and run commands with shell" if self.shell else "")
        )
        return (
            "You are a helpful assistant that completes tasks by working with files. You are "
            f"working in the folder {self.workspace}; every path you give is relative to it "
            f"and cannot leave it. The folder contains:\n{listing}\n\n{mode}\n\n"
            "Plan work of several steps with the todo tools (todo_add, todo_update, "
            "todo_complete, todo_list) and keep the list current as you go."
        )

    async def workspace_tools(self, context: TaskContext) -> Toolkit:
        """The room's proxy of this runner's own workspace toolkit, read_only tools only for
        read_only tasks; each call goes through the room on the task's behalf."""
        room = context.room
        if room is None or room.participant is None:
            raise RoomError(ErrorCode.UNAVAILABLE, "the workspace runner is not in a room")
        found = await room.list_toolkits(participant_id=room.participant.id, name=self.tools.name)
        if not found:
            raise RoomError(
                ErrorCode.UNAVAILABLE, f"toolkit {self.tools.name!r} is not registered in the room"
            )
        wanted = [
            name
            for name, tool in self.tools.tools.items()
            if tool.annotations.read_only or not context.tool_context.read_only
        ]
        return remote_toolkit(room, found[0], wanted, pin_host=True)

    async def ask(self, context: TaskContext, arguments: dict[str, Any]) -> Any:
        listing = await asyncio.to_thread(_listing, self.workspace)
        context.chat.append_rules([self.system_prompt(context.tool_context.read_only, listing)])
        context.toolkits.append(await self.workspace_tools(context))
        return await super().ask(context, arguments)
