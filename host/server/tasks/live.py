"""What the room keeps in memory about one unfinished task, and the ids it hands out."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field

from taskroom.host.protocol.messages import ParticipantInfo
from taskroom.host.protocol.tasks import TaskRecord
from taskroom.host.server.calls import Answer, CallOrigin, PendingCall
from taskroom.host.server.participant import Principal

DEFAULT_DEADLINE = 3600.0
DEFAULT_INACTIVITY = 600.0


def new_id(prefix: str) -> str:
    """128+ bits from the OS CSPRNG: ids cannot be guessed or enumerated."""
    return prefix + secrets.token_urlsafe(18)


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
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    direct: Answer | None = None
    orphaned: bool = False
    """Started before on an instance that is gone (the room moved to this node): it runs
    again only if its runner declares that safe."""


def principal_of(record: TaskRecord) -> Principal:
    """The caller of a task reloaded from the store: its name and id, no grants."""
    info = {k: v for k, v in record.caller.items() if k != "on_behalf_of"}
    return Principal(ParticipantInfo(**info))
