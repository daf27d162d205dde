"""A files toolkit confined to one root directory: list, read, glob, grep, write, edit.

Every path an agent names is resolved (symlinks included) and refused unless it stays
under the root, so hosting this toolkit exposes that directory tree and nothing else.
The checks run when a call arrives; they guard against agents naming paths outside the
root, not against another local process swapping files for symlinks mid-call.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import secrets
import stat
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path, PurePath
from typing import Annotated, Any, Literal

import re2
from pydantic import BaseModel, Field

from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.toolkits.tool import tool
from taskroom.toolkits.toolkit import Toolkit

logger = logging.getLogger(__name__)

MAX_LINE_CHARS = 500
"""A grep match longer than this is cut, so one minified file cannot flood the answer."""
GREP_SECONDS = 10.0
"""How long one grep may search: a search over a huge tree stops with what it found.
(Patterns run on RE2, in time linear in the text, so no single pattern can stall it.)"""


class Entry(BaseModel):
    path: str = Field(description="Path relative to the root, with '/' separators.")
    type: Literal["file", "dir", "symlink", "other"]
    size: int | None = Field(default=None, description="Size in bytes, for files.")


class Listing(BaseModel):
    path: str
    entries: list[Entry]
    truncated: bool = Field(description="True when max_entries cut the listing short.")


class FileText(BaseModel):
    path: str
    content: str
    start_line: int
    end_line: int = Field(description="The last line in content (earlier when truncated).")
    total_lines: int
    size: int = Field(description="Size of the whole file in bytes.")
    truncated: bool = False
    notice: str | None = Field(None, description="Why content stops early, and how to go on.")


class GlobMatches(BaseModel):
    matches: list[str]
    truncated: bool
    notice: str | None = Field(None, description="Why the search stopped early.")


class GrepMatches(BaseModel):
    matches: list[str] = Field(description="One 'path:line:text' string per matching line.")
    truncated: bool
    files_searched: int
    files_skipped: int = Field(description="Files skipped as binary, undecodable or too big.")
    notice: str | None = Field(None, description="Why the search stopped early.")


class Written(BaseModel):
    path: str
    bytes: int
    created: bool


class Edited(BaseModel):
    path: str
    bytes: int
    line: int = Field(description="The line where the replaced text started.")


def resolve_within(root: Path, path: str) -> Path:
    """``path`` (relative to ``root``) with symlinks resolved, refused if it leaves ``root``.

    ``root`` must itself be resolved. Absolute paths are accepted when they land inside.
    """
    if "\x00" in path:
        raise RoomError(ErrorCode.INVALID_REQUEST, f"path {path!r} contains a NUL byte")
    try:
        resolved = (root / path).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise RoomError(ErrorCode.INVALID_REQUEST, f"cannot resolve {path!r}: {exc}") from None
    if not resolved.is_relative_to(root):
        raise RoomError(ErrorCode.PERMISSION_DENIED, f"path escapes the root: {path!r}")
    return resolved


def _lines(text: str) -> list[str]:
    """Lines with their endings, split at "\\n" only: ``str.splitlines`` also splits at form
    feeds and Unicode separators, which would put line numbers off from editors and grep."""
    pieces = text.split("\n")
    lines = [piece + "\n" for piece in pieces[:-1]]
    if pieces[-1]:
        lines.append(pieces[-1])
    return lines


def compile_pattern(pattern: str, ignore_case: bool = False) -> Any:
    """``pattern`` compiled with RE2, which matches in time linear in the text, so a
    pattern that would backtrack for ever elsewhere cannot stall the host here."""
    options = re2.Options()
    options.log_errors = False
    options.case_sensitive = not ignore_case
    try:
        return re2.compile(pattern, options=options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RoomError(
            ErrorCode.INVALID_REQUEST,
            f"invalid regex {pattern!r}: {reason} (grep uses RE2 syntax: no lookaround or "
            "backreferences)",
        ) from None


_ANY_DIRS = "(?:[^/]+/)*"


def _glob_part(part: str) -> str:
    """One path component of a glob as a regex: ``*`` and ``?`` never cross a '/'."""
    out, i = [], 0
    while i < len(part):
        char = part[i]
        end = part.find("]", i + 2) if char == "[" else -1
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif end != -1:  # a class such as [a-z] or [!0-9]
            body = part[i + 1 : end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            body = body.replace("\\", "\\\\").replace("^", "\\^").replace("[", "\\[")
            out.append(("[^" if negate else "[") + body + "]")
            i = end
        else:
            out.append(re2.escape(char))
        i += 1
    return "".join(out)


def glob_matcher(parts: Sequence[str]) -> Any:
    """A glob's components as one RE2 regex over '/'-separated relative paths; ``**``
    stands for any number of directories. RE2, so no pattern can make matching slow."""
    pieces = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            pieces.append(_ANY_DIRS + "[^/]+" if last else _ANY_DIRS)
        else:
            pieces.append(_glob_part(part) + ("" if last else "/"))
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile("".join(pieces), options=options)
    except re2.error as exc:
        raise RoomError(ErrorCode.INVALID_REQUEST, f"invalid glob: {exc}") from None


def replace_file(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` all or nothing: into a temporary file beside it, then
    renamed over it, so a failed write (a full disk, a crash) leaves the old content whole.
    An existing file keeps its permissions; a new one gets the umask's, as open() gives."""
    try:
        mode: int | None = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = None
    temp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if mode is not None:
            os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _os_error(exc: OSError, action: str, shown: str) -> RoomError:
    if isinstance(exc, FileNotFoundError):
        return RoomError(ErrorCode.NOT_FOUND, f"{shown} does not exist")
    if isinstance(exc, PermissionError):
        return RoomError(ErrorCode.PERMISSION_DENIED, f"cannot {action} {shown}: permission denied")
    if isinstance(exc, IsADirectoryError):
        return RoomError(ErrorCode.INVALID_REQUEST, f"{shown} is a directory")
    if isinstance(exc, NotADirectoryError):
        return RoomError(ErrorCode.INVALID_REQUEST, f"{shown}: a part of the path is a file")
    return RoomError(ErrorCode.FAILED, f"cannot {action} {shown}: {exc.strerror or exc}")


class _Files:
    """The blocking file work behind each tool; the tools run it in a worker thread."""

    def __init__(
        self,
        root: Path,
        max_read_bytes: int,
        max_write_bytes: int,
        max_read_chars: int,
        grep_seconds: float,
    ) -> None:
        self.root = root
        self.max_read_bytes = max_read_bytes
        self.max_write_bytes = max_write_bytes
        self.max_read_chars = max_read_chars
        self.grep_seconds = grep_seconds

    def inside(self, path: Path) -> bool:
        try:
            return path.resolve().is_relative_to(self.root)
        except (OSError, RuntimeError):
            return False

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def entry(self, item: os.DirEntry[str]) -> Entry:
        path = self.rel(Path(item.path))
        if item.is_symlink():
            return Entry(path=path, type="symlink")
        if item.is_dir(follow_symlinks=False):
            return Entry(path=path, type="dir")
        if item.is_file(follow_symlinks=False):
            try:
                size = item.stat(follow_symlinks=False).st_size
            except OSError:
                size = None
            return Entry(path=path, type="file", size=size)
        return Entry(path=path, type="other")

    def walk(
        self, top: Path, recursive: bool, max_depth: int | None = None
    ) -> Iterator[os.DirEntry[str]]:
        """Entries under ``top`` in name order, depth first; symlinked dirs are not entered.
        ``max_depth`` (1: ``top``'s own entries) bounds a recursive walk.

        An unreadable ``top`` raises; unreadable subdirectories are skipped.
        """
        stack = [(top, 1)]
        while stack:
            current, depth = stack.pop()
            try:
                with os.scandir(current) as it:
                    items = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                if current == top:
                    raise _os_error(exc, "list", self.rel(top)) from None
                logger.debug("skipping unreadable directory %s: %s", current, exc)
                continue
            deeper = recursive and (max_depth is None or depth < max_depth)
            subdirs = []
            for item in items:
                yield item
                if deeper and item.is_dir(follow_symlinks=False):
                    subdirs.append((Path(item.path), depth + 1))
            stack.extend(reversed(subdirs))

    def list(self, path: str, recursive: bool, max_entries: int) -> Listing:
        target = resolve_within(self.root, path)
        if target.is_file():
            raise RoomError(ErrorCode.INVALID_REQUEST, f"{self.rel(target)} is a file; use read")
        entries: list[Entry] = []
        truncated = False
        for item in self.walk(target, recursive):
            if len(entries) == max_entries:
                truncated = True
                break
            entries.append(self.entry(item))
        return Listing(path=self.rel(target), entries=entries, truncated=truncated)

    def read_bytes(self, target: Path) -> bytes:
        """A regular file's bytes, refused over the read cap (checked before reading)."""
        shown = self.rel(target)
        try:
            info = target.stat()
            if stat.S_ISDIR(info.st_mode):
                raise RoomError(ErrorCode.INVALID_REQUEST, f"{shown} is a directory; use list")
            if not stat.S_ISREG(info.st_mode):
                raise RoomError(ErrorCode.INVALID_REQUEST, f"{shown} is not a regular file")
            if info.st_size > self.max_read_bytes:
                raise RoomError(ErrorCode.INVALID_REQUEST, self.too_big(shown, info.st_size))
            with target.open("rb") as f:
                data = f.read(self.max_read_bytes + 1)
        except OSError as exc:
            raise _os_error(exc, "read", shown) from None
        if len(data) > self.max_read_bytes:  # it grew after the stat
            raise RoomError(ErrorCode.INVALID_REQUEST, self.too_big(shown, len(data)))
        return data

    def too_big(self, shown: str, size: int) -> str:
        return (
            f"{shown} is {size:,} bytes, over this toolkit's read cap of "
            f"{self.max_read_bytes:,} bytes"
        )

    def read_text(self, target: Path) -> str:
        data = self.read_bytes(target)
        shown = self.rel(target)
        if b"\x00" in data:
            raise RoomError(ErrorCode.INVALID_REQUEST, f"{shown} is a binary file, not text")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RoomError(
                ErrorCode.INVALID_REQUEST,
                f"{shown} is not UTF-8 text (undecodable byte at offset {exc.start})",
            ) from None

    def read(self, path: str, start_line: int | None, end_line: int | None) -> FileText:
        target = resolve_within(self.root, path)
        text = self.read_text(target)
        lines = _lines(text)
        first = start_line or 1
        last = min(end_line or len(lines), len(lines))
        if end_line is not None and end_line < first:
            raise RoomError(
                ErrorCode.INVALID_REQUEST,
                f"end_line {end_line} is before start_line {first}",
            )
        if start_line is not None and start_line > len(lines):
            raise RoomError(
                ErrorCode.INVALID_REQUEST,
                f"start_line {start_line} is past the end of {self.rel(target)} "
                f"({len(lines)} lines)",
            )
        shown = lines[first - 1 : last]
        kept, chars = 0, 0
        while kept < len(shown) and chars + len(shown[kept]) <= self.max_read_chars:
            chars += len(shown[kept])
            kept += 1
        notice = None
        if kept < len(shown):
            if kept == 0:  # one line over the cap on its own: its start
                content = shown[0][: self.max_read_chars]
                notice = f"line {first} is cut at {self.max_read_chars:,} characters"
            else:
                content = "".join(shown[:kept])
                notice = (
                    f"truncated at {self.max_read_chars:,} characters after line "
                    f"{first + kept - 1}; read on with start_line={first + kept}"
                )
            last = first + max(kept, 1) - 1
        else:
            content = "".join(shown)
        return FileText(
            path=self.rel(target),
            content=content,
            start_line=first,
            end_line=last,
            total_lines=len(lines),
            size=len(text.encode("utf-8")),
            truncated=notice is not None,
            notice=notice,
        )

    def glob(self, pattern: str, max_results: int) -> GlobMatches:
        parts = PurePath(pattern).parts
        if PurePath(pattern).is_absolute() or ".." in parts:
            raise RoomError(ErrorCode.PERMISSION_DENIED, f"path escapes the root: {pattern!r}")
        if not parts:
            raise RoomError(ErrorCode.INVALID_REQUEST, f"invalid glob {pattern!r}: it is empty")
        matcher = glob_matcher(parts)
        depth = None if "**" in parts else len(parts)
        deadline = time.monotonic() + self.grep_seconds
        matches: list[str] = []
        for item in self.walk(self.root, recursive=True, max_depth=depth):
            if time.monotonic() >= deadline:
                notice = f"stopped after {self.grep_seconds:g} s; narrow the pattern"
                return GlobMatches(matches=sorted(matches), truncated=True, notice=notice)
            found = Path(item.path)
            if matcher.fullmatch(self.rel(found)) is None or not self.inside(found):
                continue  # a symlink pointing out of the root is no match either
            if len(matches) == max_results:
                notice = f"stopped at max_results={max_results}"
                return GlobMatches(matches=sorted(matches), truncated=True, notice=notice)
            matches.append(self.rel(found))
        return GlobMatches(matches=sorted(matches), truncated=False, notice=None)

    def grep(
        self, pattern: str, path: str, include: str | None, ignore_case: bool, max_matches: int
    ) -> GrepMatches:
        compiled = compile_pattern(pattern, ignore_case)
        deadline = time.monotonic() + self.grep_seconds
        target = resolve_within(self.root, path)
        files: Iterable[Path]
        if target.is_file():
            files = [target]
        else:
            files = (
                Path(item.path)
                for item in self.walk(target, recursive=True)
                if item.is_file(follow_symlinks=False)
                and (include is None or fnmatch.fnmatch(item.name, include))
            )
        matches: list[str] = []
        searched = skipped = 0
        for file in files:
            if time.monotonic() >= deadline:
                notice = (
                    f"stopped after {self.grep_seconds:g} s, having searched {searched} files; "
                    "narrow path or include to search the rest"
                )
                return GrepMatches(
                    matches=matches,
                    truncated=True,
                    files_searched=searched,
                    files_skipped=skipped,
                    notice=notice,
                )
            try:
                text = self.read_text(file)
            except RoomError:
                skipped += 1
                continue
            searched += 1
            for number, line in enumerate(_lines(text), 1):
                line = line.rstrip("\r\n")
                if compiled.search(line) is None:
                    continue
                if len(matches) == max_matches:
                    return GrepMatches(
                        matches=matches,
                        truncated=True,
                        files_searched=searched,
                        files_skipped=skipped,
                        notice=f"stopped at max_matches={max_matches}",
                    )
                if len(line) > MAX_LINE_CHARS:
                    line = line[:MAX_LINE_CHARS] + "…"
                matches.append(f"{self.rel(file)}:{number}:{line}")
        return GrepMatches(
            matches=matches,
            truncated=False,
            files_searched=searched,
            files_skipped=skipped,
            notice=None,
        )

    def encoded(self, content: str) -> bytes:
        data = content.encode("utf-8")
        if len(data) > self.max_write_bytes:
            raise RoomError(
                ErrorCode.INVALID_REQUEST,
                f"the new content is {len(data):,} bytes, over this toolkit's write cap of "
                f"{self.max_write_bytes:,} bytes",
            )
        return data

    def write(self, path: str, content: str) -> Written:
        data = self.encoded(content)
        target = resolve_within(self.root, path)
        shown = self.rel(target)
        if target.is_dir():
            raise RoomError(ErrorCode.INVALID_REQUEST, f"{shown} is a directory")
        created = not target.exists()
        if not created and not target.is_file():
            raise RoomError(ErrorCode.INVALID_REQUEST, f"{shown} is not a regular file")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            replace_file(target, data)
        except OSError as exc:
            raise _os_error(exc, "write", shown) from None
        logger.info("files: wrote %d bytes to %s", len(data), target)
        return Written(path=shown, bytes=len(data), created=created)

    def edit(self, path: str, old_text: str, new_text: str) -> Edited:
        target = resolve_within(self.root, path)
        shown = self.rel(target)
        text = self.read_text(target)
        count = text.count(old_text)
        if count == 0:
            raise RoomError(ErrorCode.NOT_FOUND, f"old_text was not found in {shown}")
        if count > 1:
            raise RoomError(
                ErrorCode.INVALID_REQUEST,
                f"old_text occurs {count} times in {shown}; include more of the surrounding "
                "text so it matches exactly once",
            )
        at = text.index(old_text)
        data = self.encoded(text[:at] + new_text + text[at + len(old_text) :])
        try:
            replace_file(target, data)
        except OSError as exc:
            raise _os_error(exc, "write", shown) from None
        logger.info("files: edited %s", target)
        return Edited(path=shown, bytes=len(data), line=text.count("\n", 0, at) + 1)


def files_toolkit(
    root: Path | str,
    *,
    max_read_bytes: int = 1_000_000,
    max_write_bytes: int = 1_000_000,
    max_read_chars: int = 50_000,
    grep_seconds: float = GREP_SECONDS,
    name: str = "files",
    lock: asyncio.Lock | None = None,
) -> Toolkit:
    """A toolkit over the files under ``root`` (created if missing).

    list, read, glob and grep are read_only, so read_only tasks may use them; write and
    edit change files and are refused to read_only tasks by the room. A file over
    ``max_read_bytes`` is refused; a read longer than ``max_read_chars`` is cut with a
    notice saying where to read on. ``lock`` serialises write and edit with other writers
    of the same tree.
    """
    base = Path(root).expanduser()
    base.mkdir(parents=True, exist_ok=True)
    fs = _Files(
        base.resolve(strict=True), max_read_bytes, max_write_bytes, max_read_chars, grep_seconds
    )
    writing = lock or asyncio.Lock()  # an edit's read-modify-write must not interleave

    @tool(name="list", read_only=True)
    async def list_files(
        path: str = ".",
        recursive: bool = False,
        max_entries: Annotated[int, Field(ge=1, le=10_000)] = 1_000,
    ) -> Listing:
        """List a directory's entries with their types and sizes.

        Args:
            path: Directory relative to the root.
            recursive: Also list everything below, depth first.
            max_entries: Stop after this many entries (the answer says it was truncated).
        """
        return await asyncio.to_thread(fs.list, path, recursive, max_entries)

    @tool(name="read", read_only=True)
    async def read(
        path: str,
        start_line: Annotated[int | None, Field(ge=1)] = None,
        end_line: Annotated[int | None, Field(ge=1)] = None,
    ) -> FileText:
        """Read a UTF-8 text file, whole or a range of lines.

        Args:
            path: File relative to the root.
            start_line: First line to return (1-based).
            end_line: Last line to return, inclusive.
        """
        return await asyncio.to_thread(fs.read, path, start_line, end_line)

    @tool(name="glob", read_only=True)
    async def glob(
        pattern: Annotated[str, Field(min_length=1)],
        max_results: Annotated[int, Field(ge=1, le=10_000)] = 1_000,
    ) -> GlobMatches:
        """Find paths under the root matching a glob pattern.

        Args:
            pattern: Relative pattern such as '*.md' or 'src/**/*.py'.
            max_results: Stop after this many matches.
        """
        return await asyncio.to_thread(fs.glob, pattern, max_results)

    @tool(name="grep", read_only=True)
    async def grep(
        pattern: Annotated[str, Field(min_length=1)],
        path: str = ".",
        include: str | None = None,
        ignore_case: bool = False,
        max_matches: Annotated[int, Field(ge=1, le=10_000)] = 200,
    ) -> GrepMatches:
        """Search text files for lines matching a regular expression.

        Args:
            pattern: A regular expression (RE2 syntax: like Python's, without lookaround or
                backreferences).
            path: File or directory to search, relative to the root.
            include: Only search files whose name matches this glob, e.g. '*.py'.
            ignore_case: Match without regard to case.
            max_matches: Stop after this many matching lines.
        """
        return await asyncio.to_thread(fs.grep, pattern, path, include, ignore_case, max_matches)

    @tool(name="write", destructive=True, annotations={"idempotent": True})
    async def write(path: str, content: str) -> Written:
        """Create or overwrite a text file, creating missing parent directories.

        Args:
            path: File relative to the root.
            content: The whole new content.
        """
        async with writing:
            return await asyncio.to_thread(fs.write, path, content)

    @tool(name="edit", destructive=True)
    async def edit(
        path: str, old_text: Annotated[str, Field(min_length=1)], new_text: str
    ) -> Edited:
        """Replace one exact, unique occurrence of some text in a file.

        Args:
            path: File relative to the root.
            old_text: Text to replace; it must occur exactly once in the file.
            new_text: The replacement.
        """
        async with writing:
            return await asyncio.to_thread(fs.edit, path, old_text, new_text)

    return Toolkit(
        name=name,
        title="Files",
        description="Read and change the files under one directory.",
        tools=[list_files, read, glob, grep, write, edit],
    )
