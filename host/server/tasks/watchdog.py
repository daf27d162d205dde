"""The inactivity watchdog: a timer per running task, not a polling loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from taskroom.host.server.calls import PendingCall
from taskroom.host.server.tasks.live import LiveTask


class Watchdog:
    """Cancels the call of a task that reported nothing for its inactivity timeout."""

    def __init__(self, cancel: Callable[[PendingCall, str], Coroutine[Any, Any, None]]) -> None:
        self._cancel = cancel

    def touch(self, live: LiveTask) -> None:
        """Note activity and arm the timer if it is not armed yet."""
        live.last_activity = time.monotonic()
        if live.watchdog is None:
            loop = asyncio.get_running_loop()
            live.watchdog = loop.call_later(live.inactivity_timeout, self._check, live)

    def _check(self, live: LiveTask) -> None:
        live.watchdog = None
        if live.call is None or live.record.finished:
            return
        quiet = time.monotonic() - live.last_activity
        loop = asyncio.get_running_loop()
        if quiet < live.inactivity_timeout:
            live.watchdog = loop.call_later(live.inactivity_timeout - quiet, self._check, live)
            return
        live.end_reason = (
            f"no progress from agent {live.record.agent!r} for "
            f"{live.inactivity_timeout:g} s (inactivity watchdog)"
        )
        loop.create_task(self._cancel(live.call, live.end_reason))
