"""Work the room starts and does not await: held until it ends, its failure logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

logger = logging.getLogger(__name__)


class BackgroundTasks:
    """Tasks started so the frame that caused them is not held up (recording an answer,
    expiring a call). The event loop keeps only weak references to tasks, so they are
    held here until done; an exception is logged, not lost."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._running: set[asyncio.Future[Any]] = set()

    def spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._running.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Future[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("%s failed", self.what, exc_info=task.exception())
