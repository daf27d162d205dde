"""``apply_patch``: the V4A patch format models are trained to write, applied all or nothing.

A patch names files to add, delete or update (optionally moving them); an update is a list
of hunks, each some context lines with lines removed (``-``) and added (``+``). Every hunk
is located and every path checked before anything is written, so a patch that does not
apply changes no file; then the files are replaced one by one through temporary files.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.toolkits.builtin.files import replace_file, resolve_within
from taskroom.toolkits.tool import Tool, tool

logger = logging.getLogger(__name__)

BEGIN, END = "*** Begin Patch", "*** End Patch"
ADD, DELETE, UPDATE, MOVE = (
    "*** Add File: ",
    "*** Delete File: ",
    "*** Update File: ",
    "*** Move to: ",
)
END_OF_FILE = "*** End of File"


class PatchError(RoomError):
    """A patch that cannot be parsed or applied; nothing was changed."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.INVALID_REQUEST, f"the patch was not applied: {message}")


@dataclass
class Hunk:
    anchor: str | None
    """The text after ``@@``: a line to find before the hunk's context, when given."""
    old: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)


@dataclass
class FileChange:
    action: Literal["add", "delete", "update"]
    path: str
    content: str = ""
    """For ``add``: the new file's text."""
    move_to: str | None = None
    hunks: list[Hunk] = field(default_factory=list)


class PatchedFile(BaseModel):
    path: str
    action: Literal["added", "deleted", "updated", "moved"]
    moved_from: str | None = None


class PatchResult(BaseModel):
    files: list[PatchedFile]


def parse_patch(text: str) -> list[FileChange]:
    lines = text.strip().split("\n")
    if not lines or lines[0].strip() != BEGIN:
        raise PatchError(f"it must start with {BEGIN!r}")
    if lines[-1].strip() != END:
        raise PatchError(f"it must end with {END!r}")
    changes: list[FileChange] = []
    body = lines[1:-1]
    i = 0
    while i < len(body):
        line = body[i]
        if line.startswith(ADD):
            change = FileChange("add", _path(line, ADD))
            i += 1
            added = []
            while i < len(body) and not body[i].startswith("*** "):
                if not body[i].startswith("+"):
                    raise PatchError(f"line {i + 2}: a line of an added file must start with '+'")
                added.append(body[i][1:])
                i += 1
            change.content = "\n".join(added) + "\n" if added else ""
        elif line.startswith(DELETE):
            change = FileChange("delete", _path(line, DELETE))
            i += 1
        elif line.startswith(UPDATE):
            change = FileChange("update", _path(line, UPDATE))
            i += 1
            if i < len(body) and body[i].startswith(MOVE):
                change.move_to = _path(body[i], MOVE)
                i += 1
            i = _hunks(body, i, change)
        else:
            raise PatchError(
                f"line {i + 2}: expected a file header ('*** Update File: ...'), got {line!r}"
            )
        if any(c.path == change.path for c in changes):
            raise PatchError(f"{change.path} appears twice")
        changes.append(change)
    if not changes:
        raise PatchError("it names no file")
    return changes


def _path(line: str, header: str) -> str:
    path = line[len(header) :].strip()
    if not path:
        raise PatchError(f"{header.strip()!r} without a path")
    return path


def _hunks(body: list[str], i: int, change: FileChange) -> int:
    hunk: Hunk | None = None
    while i < len(body) and (not body[i].startswith("*** ") or body[i] == END_OF_FILE):
        line = body[i]
        i += 1
        if line == END_OF_FILE:
            continue
        if line.startswith("@@"):
            hunk = Hunk(line[2:].strip() or None)
            change.hunks.append(hunk)
            continue
        if hunk is None:
            hunk = Hunk(None)
            change.hunks.append(hunk)
        op, rest = (line[0], line[1:]) if line else (" ", "")
        if op == " ":
            hunk.old.append(rest)
            hunk.new.append(rest)
        elif op == "-":
            hunk.old.append(rest)
        elif op == "+":
            hunk.new.append(rest)
        else:
            raise PatchError(
                f"in {change.path}: a hunk line must start with ' ', '-' or '+', got {line!r}"
            )
    if not any(h.old != h.new for h in change.hunks) and change.move_to is None:
        raise PatchError(f"the update of {change.path} changes nothing")
    return i


_MATCHERS = (lambda s: s, str.rstrip, str.strip)
"""Exact first, then ignoring trailing, then surrounding whitespace (models drift there)."""


def _find(lines: list[str], wanted: list[str], start: int) -> int:
    for norm in _MATCHERS:
        target = [norm(w) for w in wanted]
        for at in range(start, len(lines) - len(wanted) + 1):
            if [norm(x) for x in lines[at : at + len(wanted)]] == target:
                return at
    return -1


def apply_hunks(text: str, hunks: list[Hunk], shown: str) -> str:
    """``text`` with every hunk applied in order; PatchError naming the first that does not fit."""
    lines = text.split("\n")
    cursor = 0
    for number, hunk in enumerate(hunks, 1):
        if hunk.anchor is not None:
            at = _find(lines, [hunk.anchor], cursor)
            if at < 0:
                raise PatchError(f"hunk {number} of {shown}: line {hunk.anchor!r} not found")
            cursor = at + 1 if hunk.old[:1] != [lines[at]] else at
        if not hunk.old:
            end = len(lines) - 1 if lines and lines[-1] == "" else len(lines)
            lines[end:end] = hunk.new
            cursor = end + len(hunk.new)
            continue
        at = _find(lines, hunk.old, cursor)
        if at < 0:
            context = "\n".join(hunk.old[:3])
            raise PatchError(
                f"hunk {number} of {shown} does not match the file; its first lines:\n{context}"
            )
        lines[at : at + len(hunk.old)] = hunk.new
        cursor = at + len(hunk.new)
    return "\n".join(lines)


class _Plan:
    """What a parsed patch will write and remove, checked in full before any change."""

    def __init__(self, root: Path, max_write_bytes: int) -> None:
        self.root = root
        self.max_write_bytes = max_write_bytes
        self.writes: dict[Path, bytes] = {}
        self.removes: list[Path] = []
        self.report: list[PatchedFile] = []

    def target(self, path: str) -> Path:
        target = resolve_within(self.root, path)
        if target.is_dir():
            raise PatchError(f"{path} is a directory")
        return target

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def encoded(self, text: str, shown: str) -> bytes:
        data = text.encode("utf-8")
        if len(data) > self.max_write_bytes:
            raise PatchError(f"{shown} would be {len(data):,} bytes, over the write cap")
        return data

    def read(self, target: Path) -> str:
        shown = self.rel(target)
        if not target.is_file():
            raise PatchError(f"{shown} does not exist")
        try:
            return target.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise PatchError(f"{shown} is not UTF-8 text") from None
        except OSError as exc:
            raise PatchError(f"cannot read {shown}: {exc.strerror or exc}") from None

    def add(self, change: FileChange) -> None:
        target = self.target(change.path)
        if target.exists():
            raise PatchError(f"{self.rel(target)} already exists; update it instead")
        self.writes[target] = self.encoded(change.content, change.path)
        self.report.append(PatchedFile(path=self.rel(target), action="added"))

    def delete(self, change: FileChange) -> None:
        target = self.target(change.path)
        self.read(target)
        self.removes.append(target)
        self.report.append(PatchedFile(path=self.rel(target), action="deleted"))

    def update(self, change: FileChange) -> None:
        source = self.target(change.path)
        shown = self.rel(source)
        text = apply_hunks(self.read(source), change.hunks, shown)
        if change.move_to is None:
            self.writes[source] = self.encoded(text, shown)
            self.report.append(PatchedFile(path=shown, action="updated"))
            return
        dest = self.target(change.move_to)
        if dest.exists():
            raise PatchError(f"cannot move {shown} to {self.rel(dest)}: it already exists")
        self.writes[dest] = self.encoded(text, change.move_to)
        self.removes.append(source)
        self.report.append(PatchedFile(path=self.rel(dest), action="moved", moved_from=shown))

    def commit(self) -> None:
        for target, data in self.writes.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            replace_file(target, data)
        for target in self.removes:
            target.unlink()


def apply_patch_text(root: Path, patch: str, max_write_bytes: int) -> PatchResult:
    """Apply ``patch`` under ``root`` (resolved), all files or none."""
    plan = _Plan(root, max_write_bytes)
    for change in parse_patch(patch):
        getattr(plan, change.action)(change)
    try:
        plan.commit()
    except OSError as exc:
        raise RoomError(ErrorCode.FAILED, f"writing the patched files failed: {exc}") from None
    logger.info("apply_patch: %s", ", ".join(f"{f.action} {f.path}" for f in plan.report))
    return PatchResult(files=plan.report)


def patch_tool(root: Path, *, max_write_bytes: int = 1_000_000, lock: asyncio.Lock) -> Tool:
    """The ``apply_patch`` tool over ``root`` (resolved); ``lock`` serialises it with other writers."""

    @tool(name="apply_patch", destructive=True)
    async def apply_patch(patch: Annotated[str, Field(min_length=1)]) -> PatchResult:
        """Add, delete, update or move files with one patch in the V4A format.

        Args:
            patch: '*** Begin Patch', then per file '*** Add File: p' (lines with '+'),
                '*** Delete File: p', or '*** Update File: p' (optionally '*** Move to: q')
                with hunks: '@@ <a line to find first>' then context lines (' '), removed
                lines ('-') and added lines ('+'); last '*** End Patch'. All or nothing.
        """
        async with lock:
            return await asyncio.to_thread(apply_patch_text, root, patch, max_write_bytes)

    return apply_patch
