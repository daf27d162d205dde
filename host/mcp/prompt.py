"""The prompt ``run_task`` sends: context, files, task and desired output as sections.

Files are read by the gateway, so it confines them to allowed roots and caps their size:
a caller must not be able to make the gateway send any file it can read, however large,
to a model. The result of a task is stored apart from this prompt, so the caller's
"desired output" text can never be mistaken for the answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from taskroom.host.mcp.defaults import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_TOTAL_BYTES
from taskroom.host.protocol.errors import TaskroomError

SUMMARY_CHARS = 100

_TASK_HEADER = "## Task\n\n"
_OUTPUT_HEADER = "\n\n## Desired output\n\n"


class FileRefused(TaskroomError):
    """A file the gateway will not read; the message says which and why."""


@dataclass(frozen=True)
class LoadedFile:
    shown_as: str
    text: str


class FileAccess:
    """Reads caller-named files, only under ``roots`` and within the size caps."""

    def __init__(
        self,
        roots: Sequence[Path],
        *,
        base: Path | None = None,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    ) -> None:
        self.base = (base or Path.cwd()).resolve()
        self.roots = [(self.base / r).resolve() for r in roots] or [self.base]
        self.max_file_bytes = max_file_bytes
        self.max_total_bytes = max_total_bytes

    def read(self, paths: Sequence[str]) -> list[LoadedFile]:
        """Every file, or FileRefused for the first that is outside the roots, too big or binary."""
        loaded: list[LoadedFile] = []
        total = 0
        for raw in paths:
            path = (self.base / raw).resolve()  # symlinks resolved: no escape through a link
            if not any(path.is_relative_to(root) for root in self.roots):
                raise FileRefused(
                    f"file {raw!r} is outside the folders this gateway may read "
                    f"({', '.join(str(r) for r in self.roots)}); start it with --allow-root DIR "
                    "to allow another folder"
                )
            if not path.is_file():
                raise FileRefused(f"file {raw!r} does not exist or is not a regular file")
            size = path.stat().st_size
            if size > self.max_file_bytes:
                raise FileRefused(
                    f"file {raw!r} is {size} bytes, over the cap of {self.max_file_bytes} bytes "
                    "per file; pass an excerpt in 'context' instead"
                )
            total += size
            if total > self.max_total_bytes:
                raise FileRefused(
                    f"the files add up to more than {self.max_total_bytes} bytes; send fewer"
                )
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise FileRefused(f"file {raw!r} is not UTF-8 text") from None
            except OSError as exc:
                raise FileRefused(f"cannot read file {raw!r}: {exc.strerror or exc}") from None
            loaded.append(LoadedFile(raw, text))
        return loaded


def build_prompt(
    task: str,
    *,
    context: str | None = None,
    files: Sequence[LoadedFile] = (),
    output: str | None = None,
) -> str:
    """The task alone when that is all there is; otherwise headed sections, task last but one."""
    task = task.strip()
    if not (context or files or output):
        return task
    sections = []
    if context:
        sections.append(f"## Context\n\n{context.strip()}")
    if files:
        shown = [f"### {f.shown_as}\n\n{_fenced(f.text)}" for f in files]
        sections.append("## Files\n\n" + "\n\n".join(shown))
    sections.append(_TASK_HEADER + task)
    if output:
        sections.append(_OUTPUT_HEADER.strip("\n") + "\n\n" + output.strip())
    return "\n\n".join(sections)


def task_summary(prompt: str) -> str:
    """The task part of a prompt built here (else the prompt), cut for listings."""
    start = prompt.rfind(_TASK_HEADER)
    text = prompt
    if start >= 0:
        text = prompt[start + len(_TASK_HEADER) :]
        end = text.rfind(_OUTPUT_HEADER)
        text = text[:end] if end >= 0 else text
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def _fenced(text: str) -> str:
    """A code fence longer than any backtick run inside, so file text cannot close it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text.rstrip()}\n{fence}"
