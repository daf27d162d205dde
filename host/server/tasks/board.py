"""The unfinished tasks of a room: who has how many, and which wait for which agent."""

from __future__ import annotations

import collections

from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.server.participant import Principal
from taskroom.host.server.tasks.live import LiveTask

MAX_UNFINISHED_PER_PRINCIPAL = 10_000
"""Unfinished tasks one identity may have in a room at once."""


class TaskBoard:
    """Live tasks by id, a FIFO of pending task ids per agent, and a count per identity."""

    def __init__(self) -> None:
        self.live: dict[str, LiveTask] = {}
        self.queues: dict[str, collections.deque[str]] = {}
        """Agent name → ids of its pending tasks, oldest first."""
        self.unfinished: collections.Counter[str] = collections.Counter()

    def admit(self, principal: Principal) -> None:
        """Count a new task for its identity, or refuse it if it has too many unfinished.
        Counted before its record is stored, so starts in flight together cannot overrun
        the limit; :meth:`unadmit` gives the place back if the start fails after all."""
        if self.unfinished[principal.name] >= MAX_UNFINISHED_PER_PRINCIPAL:
            raise RoomError(
                ErrorCode.UNAVAILABLE,
                f"{principal.name!r} already has {MAX_UNFINISHED_PER_PRINCIPAL} unfinished "
                "tasks in this room; wait for some to finish",
            )
        self.unfinished[principal.name] += 1

    def unadmit(self, name: str) -> None:
        self.unfinished[name] -= 1
        if self.unfinished[name] <= 0:
            del self.unfinished[name]

    def track(self, live: LiveTask, *, queued: bool = True, admitted: bool = False) -> None:
        """Hold a new task; ``queued=False`` for one given an instance at once,
        ``admitted`` for one already counted by :meth:`admit`."""
        self.live[live.record.id] = live
        if not admitted:
            self.unfinished[live.origin.principal.name] += 1
        if queued:
            self.enqueue(live)

    def untrack(self, live: LiveTask) -> None:
        self.live.pop(live.record.id, None)
        self.unadmit(live.origin.principal.name)
        if live.watchdog is not None:
            live.watchdog.cancel()

    def enqueue(self, live: LiveTask, *, first: bool = False) -> None:
        """Queue a pending task for its agent; ``first`` puts a re-queued one at the head."""
        queue = self.queues.setdefault(live.record.agent, collections.deque())
        if first:
            queue.appendleft(live.record.id)
        else:
            queue.append(live.record.id)

    def next_pending(self, agent: str) -> LiveTask | None:
        """The oldest task still pending for ``agent``, dropping stale ids on the way."""
        queue = self.queues.get(agent)
        while queue:
            live = self.live.get(queue[0])
            if live is not None and live.record.status == "pending":
                return live
            queue.popleft()
        self.queues.pop(agent, None)
        return None

    def take(self, agent: str) -> None:
        """Remove the head of ``agent``'s queue: it has been given an instance."""
        queue = self.queues[agent]
        queue.popleft()
        if not queue:
            del self.queues[agent]
