"""What the room keeps in memory about one unfinished task, and the ids it hands out."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from taskroom.host.protocol.messages import ParticipantInfo
from taskroom.host.protocol.tasks import TaskRecord
from taskroom.host.server.calls import Answer, CallOrigin, PendingCall
from taskroom.host.server.participant import Principal

DEFAULT_DEADLINE = 3600.0
DEFAULT_INACTIVITY = 600.0


class _RandomBytes:
    """Bytes of the OS CSPRNG, read a block at a time: one system call per couple of
    hundred ids rather than one per id. A forked child starts a block of its own."""

    BLOCK = 4096

    def __init__(self) -> None:
        self._block = b""
        self._at = 0

    def take(self, n: int) -> bytes:
        if self._at + n > len(self._block):
            self._block, self._at = os.urandom(self.BLOCK), 0
        self._at += n
        return self._block[self._at - n : self._at]

    def forget(self) -> None:
        self._block, self._at = b"", 0


_random = _RandomBytes()
os.register_at_fork(after_in_child=_random.forget)


def new_id(prefix: str) -> str:
    """144 bits from the OS CSPRNG: ids cannot be guessed or enumerated."""
    return prefix + base64.urlsafe_b64encode(_random.take(18)).decode()


@dataclass(eq=False)
class LiveTask:
    """What the room keeps in memory while a task is unfinished."""

    record: TaskRecord
    origin: CallOrigin
    inactivity_timeout: float
    pinned_host: str | None = None
    call: PendingCall | None = None
    last_activity: float = field(default_factory=time.monotonic)
    watchdog: asyncio.TimerHandle | None = None
    end_reason: str | None = None
    waiters: list[Callable[[], None]] = field(default_factory=list)
    """Called once when the task finishes (see ``Waits``)."""
    direct: Answer | None = None
    orphaned: bool = False
    """Started before on an instance that is gone (the room moved to this node): it runs
    again only if its runner declares that safe."""


def principal_of(record: TaskRecord) -> Principal:
    """The caller of a task reloaded from the store: its name and id, no grants."""
    info = {k: v for k, v in record.caller.items() if k != "on_behalf_of"}
    return Principal(ParticipantInfo(**info))
