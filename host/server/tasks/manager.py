"""The room's task API: the ``tasks.*`` requests, over the parts that do the work.

A task is one run of an agent's task tool. Start answers with an unguessable id once the
record is stored, or with ``wait`` once the task has finished; :class:`TaskLifecycle`
runs it on a free instance. Starts are handled in tasks of their own, so a connection's
next frame does not wait for a start's write and the starts of one loop turn share a
commit.
:class:`TaskBoard` holds the live tasks and the queue per agent, :class:`TaskReader`
decides who sees what, :class:`Waits` and :class:`Subscriptions` tell clients when
tasks change.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from taskroom.host.protocol import ErrorCode, Frame, RoomError
from taskroom.host.protocol.messages import ToolkitSpec
from taskroom.host.protocol.tasks import (
    TaskCancel,
    TaskList,
    TaskOrBatch,
    TaskRecord,
    TaskRef,
    TaskStart,
    TaskStatus,
    TaskSubscribe,
    TaskWait,
)
from taskroom.host.server.calls import Answer, CallOrigin, CallTarget
from taskroom.host.server.participant import Participant
from taskroom.host.server.router import CallRouter, agent_tool
from taskroom.host.server.tasks.access import TaskReader
from taskroom.host.server.tasks.board import TaskBoard
from taskroom.host.server.tasks.lifecycle import TaskLifecycle
from taskroom.host.server.tasks.live import (
    DEFAULT_DEADLINE,
    DEFAULT_INACTIVITY,
    LiveTask,
    new_id,
    principal_of,
)
from taskroom.host.server.tasks.store import TaskStore
from taskroom.host.server.tasks.subscriptions import Subscriptions
from taskroom.host.server.tasks.waits import Waits

if TYPE_CHECKING:
    from taskroom.host.server.room import Room


class TaskManager:
    """Tasks of one room."""

    def __init__(
        self,
        room: Room,
        store: TaskStore,
        *,
        default_deadline: float = DEFAULT_DEADLINE,
        inactivity_timeout: float = DEFAULT_INACTIVITY,
    ) -> None:
        self.room_name = room.name
        self.router: CallRouter = room.router
        self.store = store
        self.board = TaskBoard()
        self.live = self.board.live
        self.reader = TaskReader(room.name, store, self.live)
        self.waits = Waits(self.live)
        self.subscriptions = Subscriptions(room.notify)
        self.lifecycle = TaskLifecycle(
            room.name,
            self.router,
            store,
            self.board,
            self.subscriptions,
            default_deadline=default_deadline,
            inactivity_timeout=inactivity_timeout,
        )
        self._room = room

    async def install(self) -> None:
        """Add the task requests to the room and queue the pending tasks the store holds."""
        for type_, fn, background in (
            ("tasks.start", self._start, True),
            ("tasks.get", self._get, False),
            ("tasks.result", self._result, False),
            ("tasks.wait", self._wait, True),
            ("tasks.cancel", self._cancel, False),
            ("tasks.list", self._list, False),
            ("tasks.subscribe", self._subscribe, False),
            ("tasks.unsubscribe", self._unsubscribe, False),
        ):
            self._room.handle(type_, fn, background=background)
        self._room.close_hooks.append(self.close)
        orphans = []
        for record in await self.store.unfinished(self.room_name):
            if record.attempts:  # it ran before, on an instance the room no longer has
                record.status = TaskStatus.PENDING
                orphans.append(record)
            if record.status == "pending":
                origin = CallOrigin(principal=principal_of(record), read_only=record.read_only)
                live = LiveTask(record, origin, self.lifecycle.inactivity_timeout)
                live.orphaned = bool(record.attempts)
                self.board.track(live)
        if orphans:
            await self.store.save_many(orphans)

    async def close(self) -> None:
        for live in self.live.values():
            if live.watchdog is not None:
                live.watchdog.cancel()

    # --- room events ------------------------------------------------------------------------

    async def instance_registered(self, spec: ToolkitSpec) -> None:
        if agent_tool(spec) and spec.name in self.board.queues:
            await self.lifecycle.dispatch(spec.name)

    async def participant_left(self, p: Participant) -> None:
        """Drop the subscriptions and waits of a connection that has gone."""
        self.subscriptions.drop(p)
        self.waits.drop(p)

    async def start_direct(
        self,
        origin: CallOrigin,
        target: CallTarget,
        arguments: dict[str, Any],
        answer: Answer,
        deadline: float | None,
    ) -> None:
        """Record a direct call of an agent's task tool as a task, answered as a tool call."""
        spec = self.router.agent(origin.principal, target.toolkit)
        await self.lifecycle.create(
            origin,
            spec,
            arguments,
            deadline=deadline,
            pinned_host=target.participant_id,
            direct=answer,
        )
        await self.lifecycle.dispatch(spec.name)

    # --- requests ------------------------------------------------------------------------------

    async def _start(self, p: Participant, req: TaskStart, frame: Frame) -> dict[str, Any]:
        if req.wait is None or frame.id is None:
            return await self._answer_started(await self._create(p, req))
        with self.waits.start(p, frame.id) as waiting:
            records = await self._create(p, req)
            waiting.task_ids = [r.id for r in records]
            if waiting.cancelled_by is not None:
                await self._cancel_ids(waiting.task_ids, waiting.cancelled_by)
            if not p.online:
                return await self._answer_started(records)  # it goes nowhere; tasks run on
            return await self._until_finished(p, records, "all", req.wait, placed=True)

    async def _answer_started(self, records: list[TaskRecord]) -> dict[str, Any]:
        return {
            "task_ids": [r.id for r in records],
            "batch_id": records[0].batch_id,
            "tasks": [await self.reader.snapshot(r, events=0) for r in records],
        }

    async def _create(self, p: Participant, req: TaskStart) -> list[TaskRecord]:
        """Create the task (or the batch's tasks) and start what can start."""
        origin = self.router.origin_for(p)
        spec = self.router.agent(p.principal, req.agent)
        models: list[str | None] = list(req.models) if req.models else [None]
        read_only = req.read_only or origin.read_only
        if len(models) > 1 and not read_only:
            raise RoomError(
                ErrorCode.INVALID_REQUEST,
                "a batch over several models must be read_only (several agents writing the "
                "same files at once would conflict)",
            )
        batch_id = new_id("b_") if len(models) > 1 else None
        created = []
        for model in models:
            arguments = dict(req.arguments)
            if model is not None:
                arguments["model"] = model
            created.append(
                await self.lifecycle.create(
                    origin,
                    spec,
                    arguments,
                    model=model,
                    batch_id=batch_id,
                    read_only=read_only,
                    deadline=req.deadline,
                    inactivity_timeout=req.inactivity_timeout,
                )
            )
        await self.lifecycle.dispatch(spec.name)
        return [t.record for t in created]

    async def _get(self, p: Participant, req: TaskRef, frame: Frame) -> dict[str, Any]:
        return await self.reader.snapshot(await self.reader.load(p, req.task_id))

    async def _result(self, p: Participant, req: TaskRef, frame: Frame) -> dict[str, Any]:
        record = await self.reader.load(p, req.task_id)
        if not record.finished:
            raise RoomError(
                ErrorCode.CONFLICT,
                f"task {req.task_id!r} is still {record.status}; wait for it or poll its status",
                {"status": record.status},
            )
        return {
            "task_id": record.id,
            "status": record.status,
            "result": record.result,
            "error": record.error,
            "usage": record.usage,
        }

    async def _wait(self, p: Participant, req: TaskWait, frame: Frame) -> dict[str, Any]:
        records = await self.reader.targets(p, req)
        return await self._until_finished(p, records, req.mode, req.timeout)

    async def _until_finished(
        self,
        p: Participant,
        records: list[TaskRecord],
        mode: str,
        timeout: float,
        *,
        placed: bool = False,
    ) -> dict[str, Any]:
        """Wait for the tasks, then answer with their snapshots as they are then. A live
        task's record is the one object its life updates, so it needs no reload."""
        timed_out = await self.waits.wait(p, records, mode, timeout, placed=placed)
        current = [self.reader.current(r) for r in records]
        return {
            "task_ids": [r.id for r in current],
            "batch_id": current[0].batch_id if current else None,
            "timed_out": timed_out,
            "done": all(r.finished for r in current),
            "tasks": [await self.reader.snapshot(r, events=0) for r in current],
        }

    async def _cancel(self, p: Participant, req: TaskCancel, frame: Frame) -> dict[str, Any]:
        reason = f"cancelled by {p.name}"
        if req.start_request is not None:
            key = (p, req.start_request)
            if key not in self.waits.starts:
                # A start read together with this cancel may not have begun yet: it was
                # scheduled first, so one turn of the loop lets it hold its place.
                await asyncio.sleep(0)
            waiting = self.waits.starts.get(key)
            if waiting is None:
                raise RoomError(
                    ErrorCode.NOT_FOUND,
                    f"no tasks.start request {req.start_request!r} of yours is waiting",
                )
            if not waiting.task_ids:  # still being stored: cancelled once it is
                waiting.cancelled_by = reason
            return {"cancelled": await self._cancel_ids(waiting.task_ids, reason)}
        records = await self.reader.targets(
            p, TaskOrBatch(task_id=req.task_id, batch_id=req.batch_id)
        )
        if req.task_id and records[0].finished:
            raise RoomError(
                ErrorCode.CONFLICT,
                f"task {req.task_id!r} already finished ({records[0].status}); nothing to cancel",
                {"status": records[0].status},
            )
        return {"cancelled": await self._cancel_ids([r.id for r in records], reason)}

    async def _cancel_ids(self, task_ids: list[str], reason: str) -> list[str]:
        """Cancel those of the tasks still unfinished; the ids of those cancelled."""
        cancelled = []
        for task_id in task_ids:
            live = self.live.get(task_id)
            if live is None or (live.call is not None and live.call.done):
                continue  # gone, or answered and being recorded: too late to cancel
            cancelled.append(task_id)
            if live.call is not None:
                await self.router.cancel(live.call, reason)
            else:
                error = RoomError(ErrorCode.CANCELLED, reason).to_data()
                await self.lifecycle.done(live, False, error)
        return cancelled

    async def _list(self, p: Participant, req: TaskList, frame: Frame) -> dict[str, Any]:
        caller = req.caller
        if not (p.allows("tasks.all") or p.allows("*")):
            caller = p.name
        records = await self.store.list(
            self.room_name,
            status=req.status,
            agent=req.agent,
            batch_id=req.batch_id,
            caller=caller,
            before=req.before,
            limit=req.limit + 1,
        )
        more = len(records) > req.limit
        records = records[: req.limit]
        return {
            "tasks": [await self.reader.snapshot(r, events=0) for r in records],
            "next_before": records[-1].created_at if more else None,
        }

    async def _subscribe(self, p: Participant, req: TaskSubscribe, frame: Frame) -> dict[str, Any]:
        if req.task_id:
            await self.reader.load(p, req.task_id)
        self.subscriptions.add(p, req)
        return {"subscribed": True}

    async def _unsubscribe(
        self, p: Participant, req: TaskSubscribe, frame: Frame
    ) -> dict[str, Any]:
        self.subscriptions.remove(p, req)
        return {"subscribed": False}
