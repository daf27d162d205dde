"""The workspace toolkit: one folder's files, patches, a shell and a per-task todo list.

It is what a coding agent needs over a folder, as one toolkit: list, read, glob, grep,
write, edit, apply_patch, shell and todo_*. Every path stays inside the folder (symlinks
resolved); the shell starts there, bounded in time and output. Tools that change the
folder or run commands are not read_only, so the room refuses them to read_only tasks;
the todo list is the task's own scratch state, so read_only tasks may keep one too.
"""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path

from taskroom.toolkits.builtin.files import files_toolkit
from taskroom.toolkits.builtin.patch import patch_tool
from taskroom.toolkits.builtin.shell import shell_toolkit
from taskroom.toolkits.builtin.todo import todo_toolkit
from taskroom.toolkits.tool import Tool
from taskroom.toolkits.toolkit import Toolkit

DEFAULT_SHELL_TIMEOUT = 120.0
DEFAULT_MAX_OUTPUT_BYTES = 100_000
DEFAULT_MAX_READ_CHARS = 50_000


def renamed(tool: Tool, name: str, *, read_only: bool | None = None) -> Tool:
    """A copy of ``tool`` under another name (and, if given, another read_only flag)."""
    clone = copy.copy(tool)
    annotations = tool.annotations
    if read_only is not None:
        annotations = annotations.model_copy(update={"read_only": read_only})
    clone.spec = tool.spec.model_copy(update={"name": name, "annotations": annotations})
    return clone


def workspace_toolkit(
    folder: Path | str,
    *,
    shell: bool = True,
    shell_timeout: float = DEFAULT_SHELL_TIMEOUT,
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    max_read_bytes: int = 10_000_000,
    max_read_chars: int = DEFAULT_MAX_READ_CHARS,
    max_write_bytes: int = 10_000_000,
    name: str = "workspace",
    public: bool = True,
    allowed_callers: tuple[str, ...] = (),
) -> Toolkit:
    """The toolkit over ``folder``, which must exist; ``shell=False`` leaves the shell out."""
    root = Path(folder).expanduser().resolve(strict=True)
    if not root.is_dir():
        raise NotADirectoryError(f"workspace {root} is not a directory")
    writing = asyncio.Lock()
    files = files_toolkit(
        root,
        max_read_bytes=max_read_bytes,
        max_read_chars=max_read_chars,
        max_write_bytes=max_write_bytes,
        lock=writing,
    )
    tools = [*files.tools.values(), patch_tool(root, max_write_bytes=max_write_bytes, lock=writing)]
    if shell:
        run = shell_toolkit(
            root, enabled=True, timeout=shell_timeout, max_output_bytes=max_output_bytes
        ).tools["run"]
        tools.append(renamed(run, "shell"))
    tools += [renamed(t, f"todo_{t.name}", read_only=True) for t in todo_toolkit().tools.values()]
    return Toolkit(
        name=name,
        title="Workspace",
        description=f"The files under {root}: read, search, change and patch them"
        + (", run commands there" if shell else "")
        + ", and keep a todo list for the task.",
        tools=tools,
        public=public,
        allowed_callers=allowed_callers,
        metadata={"workspace": str(root), "shell": shell},
    )
