"""Durable tasks: the store, the room's task API and dispatch to agent instances."""

from __future__ import annotations

import logging
import os
import time

from taskroom.host.protocol.tasks import TaskRecord, TaskStatus
from taskroom.host.server.app import RoomServer
from taskroom.host.server.room import Room
from taskroom.host.server.tasks.checkpoints import Checkpoints
from taskroom.host.server.tasks.manager import TaskManager
from taskroom.host.server.tasks.room_schemas import keep_schemas
from taskroom.host.server.tasks.selection import STORE_FILE, store_from_url
from taskroom.host.server.tasks.sqlite_store import SQLiteTaskStore
from taskroom.host.server.tasks.store import OnDamage, StoredSchema, TaskStore, TaskStoreError

logger = logging.getLogger(__name__)

DEFAULT_RETENTION = 7 * 24 * 3600.0

__all__ = [
    "OnDamage",
    "STORE_FILE",
    "SQLiteTaskStore",
    "StoredSchema",
    "TaskManager",
    "TaskRecord",
    "TaskStore",
    "TaskStoreError",
    "install_tasks",
    "store_from_url",
]


def install_tasks(
    server: RoomServer,
    *,
    store: TaskStore | None = None,
    retention: float | None = None,
    on_damage: OnDamage = "refuse",
    recover_at_start: bool = True,
) -> TaskStore:
    """Give every room of ``server`` a task manager over one shared store.

    At start, a task that was running when the room last stopped can no longer finish:
    it is marked failed with that reason. Pending tasks stay queued for their room.
    ``on_damage`` applies to the default SQLite store: see ``OnDamage``. The room's
    schemas are kept in the same store. A cluster node passes ``recover_at_start=False``:
    other nodes' rooms are still running, so each room settles its own interrupted tasks
    when a node takes it.
    """
    if store is None:
        store = store_from_url(None, server.data_dir, on_damage=on_damage)
    if retention is None:
        retention = float(os.environ.get("TASKROOM_TASK_RETENTION", DEFAULT_RETENTION))

    async def recover() -> None:
        await store.open()
        await store.sweep(time.time() - retention)
        if not recover_at_start:
            return
        lost = [r for r in await store.unfinished() if r.status == "running"]
        for record in lost:
            record.status = TaskStatus.FAILED
            record.finished_at = time.time()
            record.error = {
                "code": "unavailable",
                "message": "the room server stopped while this task was running",
            }
        await store.save_many(lost)

    async def setup(_: RoomServer, room: Room) -> None:
        await keep_schemas(room, store)
        manager = TaskManager(room, store)
        await manager.install()
        Checkpoints(room, store, manager.live)
        room.tasks = manager

    server.start_hooks.append(recover)
    server.room_setup.append(setup)
    server.stop_hooks.append(store.close)
    return store
