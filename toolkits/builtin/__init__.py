"""Toolkits any participant can host: files under a root, a per-task todo list, a shell."""

from taskroom.toolkits.builtin.files import files_toolkit
from taskroom.toolkits.builtin.shell import shell_toolkit
from taskroom.toolkits.builtin.todo import todo_toolkit

__all__ = ["files_toolkit", "shell_toolkit", "todo_toolkit"]
