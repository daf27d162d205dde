"""Pushes of task changes to the connections that subscribed to them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from taskroom.host.protocol.tasks import TaskRecord, TaskSubscribe
from taskroom.host.server.participant import Participant
from taskroom.host.server.tasks.access import can_access

Notify = Callable[[Iterable[Participant], str, dict[str, Any]], None]


@dataclass
class Subscription:
    all: bool = False
    task_ids: set[str] = field(default_factory=set)
    batch_ids: set[str] = field(default_factory=set)

    def wants(self, record: TaskRecord) -> bool:
        return self.all or record.id in self.task_ids or record.batch_id in self.batch_ids


class Subscriptions:
    """Subscriptions per connection; a push reaches only those who may see the task."""

    def __init__(self, notify: Notify) -> None:
        self._notify = notify
        self.by_connection: dict[Participant, Subscription] = {}

    def push(self, type_: str, record: TaskRecord, data: dict[str, Any]) -> None:
        if self.by_connection:
            self._notify(
                [
                    p
                    for p, sub in self.by_connection.items()
                    if sub.wants(record) and can_access(p, record)
                ],
                type_,
                data,
            )

    def add(self, p: Participant, req: TaskSubscribe) -> None:
        sub = self.by_connection.setdefault(p, Subscription())
        sub.all = sub.all or req.all
        if req.task_id:
            sub.task_ids.add(req.task_id)
        if req.batch_id:
            sub.batch_ids.add(req.batch_id)

    def remove(self, p: Participant, req: TaskSubscribe) -> None:
        sub = self.by_connection.get(p)
        if sub is None:
            return
        if req.all:
            self.by_connection.pop(p, None)
        else:
            sub.task_ids.discard(req.task_id or "")
            sub.batch_ids.discard(req.batch_id or "")

    def drop(self, p: Participant) -> None:
        """Forget a connection that has gone."""
        self.by_connection.pop(p, None)
