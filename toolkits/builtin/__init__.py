"""Toolkits any participant can host: files under a root, a per-task todo list, a shell,
and the workspace toolkit that combines them with apply_patch for one folder."""

from taskroom.toolkits.builtin.files import files_toolkit
from taskroom.toolkits.builtin.patch import apply_patch_text
from taskroom.toolkits.builtin.shell import shell_toolkit
from taskroom.toolkits.builtin.todo import todo_toolkit
from taskroom.toolkits.builtin.workspace import workspace_toolkit

__all__ = [
    "apply_patch_text",
    "files_toolkit",
    "shell_toolkit",
    "todo_toolkit",
    "workspace_toolkit",
]
