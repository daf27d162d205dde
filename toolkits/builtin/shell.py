"""A shell toolkit: run one command in a working directory, bounded in time and output.

It is off unless built with ``enabled=True``: a disabled toolkit still lists its ``run``
tool, so agents (and people browsing the room) learn it exists, but every call is
refused with ``permission_denied``. Enabled, it is *not* a sandbox: the starting
directory is confined to ``workdir``, yet a command can ``cd`` anywhere the host user can.
Enable it only for trusted agents, or on a host that is itself isolated (a container).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field

from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.toolkits.builtin.files import resolve_within
from taskroom.toolkits.tool import tool
from taskroom.toolkits.toolkit import Toolkit

logger = logging.getLogger(__name__)

BASIC_ENV = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM")
"""Host variables a command sees by default; the rest (API keys, tokens) stay with the host."""

_CHUNK = 64 * 1024


class ShellResult(BaseModel):
    exit_code: int = Field(description="The command's exit status; negative: killed by signal.")
    stdout: str
    stderr: str


class _Capture:
    """Keeps the first ``cap`` bytes of a stream and counts the rest, so a chatty
    command cannot exhaust the host's memory."""

    def __init__(self, name: str, cap: int) -> None:
        self.name = name
        self.cap = cap
        self.kept = bytearray()
        self.total = 0

    async def drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(_CHUNK):
            self.total += len(chunk)
            room = self.cap - len(self.kept)
            if room > 0:
                self.kept += chunk[:room]

    def text(self) -> str:
        out = self.kept.decode("utf-8", errors="replace")
        dropped = self.total - len(self.kept)
        if dropped:
            out += f"\n[{self.name} truncated: {dropped:,} more bytes not shown]"
        return out


def _kill_group(process: asyncio.subprocess.Process) -> None:
    """Kill the command and everything it started (it leads its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def shell_toolkit(
    workdir: Path | str,
    *,
    enabled: bool = False,
    timeout: float = 30,
    max_output_bytes: int = 100_000,
    env: Mapping[str, str] | None = None,
    name: str = "shell",
) -> Toolkit:
    """A toolkit with one tool, ``run``, which is refused unless ``enabled``.

    ``workdir`` (created if missing) is where commands start. ``timeout`` bounds each command; at the deadline (or if the call is cancelled) its
    whole process group is killed. ``max_output_bytes`` caps stdout and stderr each.
    ``env`` is the environment commands get; by default only :data:`BASIC_ENV` is
    copied from the host.
    """
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    base = Path(workdir).expanduser()
    base.mkdir(parents=True, exist_ok=True)
    base = base.resolve(strict=True)
    environment = (
        dict(env) if env is not None else {k: os.environ[k] for k in BASIC_ENV if k in os.environ}
    )
    state = "" if enabled else " Disabled on this host: calls are refused."

    @tool(
        name="run",
        description=f"Run a shell command and return its exit code and output.{state}",
        destructive=True,
    )
    async def run(command: Annotated[str, Field(min_length=1)], cwd: str = ".") -> ShellResult:
        """Run a shell command.

        Args:
            command: The command line, run by /bin/sh.
            cwd: Directory to start in, relative to the working directory.
        """
        if not enabled:
            raise RoomError(ErrorCode.PERMISSION_DENIED, "the shell toolkit is disabled")
        directory = resolve_within(base, cwd)
        if not directory.is_dir():
            raise RoomError(ErrorCode.INVALID_REQUEST, f"cwd {cwd!r} is not a directory")
        logger.info("shell: running %r in %s", command, directory)
        try:
            process = await asyncio.create_subprocess_shell(
                command,
                cwd=directory,
                env=environment,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise RoomError(ErrorCode.FAILED, f"cannot start the command: {exc}") from None
        assert process.stdout is not None and process.stderr is not None  # piped above
        stdout = _Capture("stdout", max_output_bytes)
        stderr = _Capture("stderr", max_output_bytes)
        try:
            async with asyncio.timeout(timeout):
                _, _, exit_code = await asyncio.gather(
                    stdout.drain(process.stdout), stderr.drain(process.stderr), process.wait()
                )
        except TimeoutError:
            _kill_group(process)
            await process.wait()
            raise RoomError(
                ErrorCode.TIMEOUT,
                f"the command did not finish within {timeout:g} s and was killed",
                {"stdout": stdout.text(), "stderr": stderr.text()},
            ) from None
        except BaseException:  # cancelled: nothing the command started may outlive the call
            _kill_group(process)
            raise
        return ShellResult(
            exit_code=exit_code,
            stdout=stdout.text(),
            stderr=stderr.text(),
        )

    return Toolkit(
        name=name,
        title="Shell",
        description="Run shell commands in a working directory." + state,
        tools=[run],
        metadata={"enabled": enabled},
    )
