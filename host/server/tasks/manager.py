"""The room's task API: durable records, dispatch to agent instances, waits and pushes.

A task is one run of an agent's task tool. Start answers at once with an unguessable id
once the record is stored; the room then asks its call router for a free instance
(queueing per agent while all are busy), records progress, and settles waiters and
subscribers when the run ends. Every call goes through the router, which checks
visibility again, so a queued or re-queued task can never reach an instance its caller
cannot see.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskroom.host.protocol import ErrorCode, Frame, RoomError
from taskroom.host.protocol.messages import ParticipantInfo, ToolkitSpec
from taskroom.host.protocol.tasks import (
    TaskList,
    TaskOrBatch,
    TaskRecord,
    TaskRef,
    TaskStart,
    TaskStatus,
    TaskSubscribe,
    TaskWait,
)
from taskroom.host.server.calls import Answer, CallOrigin, CallTarget, Instance, PendingCall
from taskroom.host.server.participant import Participant, Principal
from taskroom.host.server.router import CallRouter, agent_tool
from taskroom.host.server.tasks.store import TaskStore, TaskStoreError
from taskroom.toolkits.toolkit import schema_validator, validation_error

if TYPE_CHECKING:
    from taskroom.host.server.room import Room

logger = logging.getLogger(__name__)

DEFAULT_DEADLINE = 3600.0
DEFAULT_INACTIVITY = 600.0
MAX_REQUEUES = 3
RECENT_EVENTS = 10
MAX_WAITS_PER_CONNECTION = 1000
"""Concurrent ``tasks.wait`` requests one connection may have open."""
MAX_UNFINISHED_PER_PRINCIPAL = 10_000
"""Unfinished tasks one identity may have in a room at once."""


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


@dataclass
class Subscription:
    all: bool = False
    task_ids: set[str] = field(default_factory=set)
    batch_ids: set[str] = field(default_factory=set)

    def wants(self, record: TaskRecord) -> bool:
        return self.all or record.id in self.task_ids or record.batch_id in self.batch_ids


def _principal_of(record: TaskRecord) -> Principal:
    """The caller of a task reloaded from the store: its name and id, no grants."""
    info = {k: v for k, v in record.caller.items() if k != "on_behalf_of"}
    return Principal(ParticipantInfo(**info))


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
        self.notify: Callable[[Iterable[Participant], str, dict[str, Any]], None] = room.notify
        self.store = store
        self.default_deadline = default_deadline
        self.inactivity_timeout = inactivity_timeout
        self.live: dict[str, LiveTask] = {}
        self.queues: dict[str, collections.deque[str]] = {}
        """Agent name → ids of its pending tasks, oldest first."""
        self.unfinished: collections.Counter[str] = collections.Counter()
        self.subscriptions: dict[Participant, Subscription] = {}
        self.waits: dict[Participant, set[asyncio.Task[Any]]] = {}
        self._room = room

    async def install(self) -> None:
        """Add the task requests to the room and queue the pending tasks the store holds."""
        for type_, fn, background in (
            ("tasks.start", self._start, False),
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
            if record.attempts:
                record.status = TaskStatus.PENDING
                orphans.append(record)
            if record.status == "pending":
                origin = CallOrigin(principal=_principal_of(record), read_only=record.read_only)
                live = LiveTask(
                    record, origin, self.inactivity_timeout, orphaned=bool(record.attempts)
                )
                self._track(live)
        if orphans:
            await self.store.save_many(orphans)

    async def close(self) -> None:
        for live in self.live.values():
            if live.watchdog is not None:
                live.watchdog.cancel()

    # --- access -------------------------------------------------------------------------

    @staticmethod
    def _can_access(p: Participant, record: TaskRecord) -> bool:
        if p.allows("tasks.all") or p.allows("*"):
            return True
        behalf = record.caller.get("on_behalf_of") or {}
        return p.name in (record.caller.get("name"), behalf.get("name"))

    async def _load(self, p: Participant, task_id: str) -> TaskRecord:
        live = self.live.get(task_id)
        record = live.record if live else await self.store.get(self.room_name, task_id)
        if record is None or not self._can_access(p, record):
            raise RoomError(ErrorCode.NOT_FOUND, f"no task {task_id!r} in room {self.room_name!r}")
        return record

    async def _batch(self, p: Participant, batch_id: str) -> list[TaskRecord]:
        records = [
            r
            for r in await self.store.list(self.room_name, batch_id=batch_id, limit=500)
            if self._can_access(p, r)
        ]
        if not records:
            raise RoomError(
                ErrorCode.NOT_FOUND, f"no batch {batch_id!r} in room {self.room_name!r}"
            )
        return [self.live[r.id].record if r.id in self.live else r for r in records]

    async def _targets(self, p: Participant, req: TaskOrBatch) -> list[TaskRecord]:
        if req.task_id:
            return [await self._load(p, req.task_id)]
        return await self._batch(p, req.batch_id or "")

    # --- snapshots and pushes --------------------------------------------------------------

    async def snapshot(self, record: TaskRecord, *, events: int = RECENT_EVENTS) -> dict[str, Any]:
        data = record.model_dump(mode="json")
        data["events"] = (
            [
                e.model_dump(mode="json")
                for e in await self.store.events(self.room_name, record.id, limit=events)
            ]
            if events
            else []
        )
        data["poll_interval"] = (
            None if record.finished else (1.0 if record.status == "running" else 2.0)
        )
        return data

    def _push(self, type_: str, record: TaskRecord, data: dict[str, Any]) -> None:
        if self.subscriptions:
            self.notify(
                [
                    p
                    for p, sub in self.subscriptions.items()
                    if sub.wants(record) and self._can_access(p, record)
                ],
                type_,
                data,
            )

    async def _changed(self, record: TaskRecord) -> None:
        await self.store.save(record)
        self._push(
            "task.updated",
            record,
            {
                "task_id": record.id,
                "batch_id": record.batch_id,
                "agent": record.agent,
                "status": record.status,
                "error": record.error,
                "result": record.result if record.finished else None,
            },
        )

    # --- start and dispatch ----------------------------------------------------------------

    async def _create(
        self,
        origin: CallOrigin,
        spec: ToolkitSpec,
        arguments: dict[str, Any],
        *,
        model: str | None = None,
        batch_id: str | None = None,
        read_only: bool = False,
        deadline: float | None = None,
        inactivity_timeout: float | None = None,
        pinned_host: str | None = None,
    ) -> LiveTask:
        """Validate, store, and only then queue: a refused start leaves nothing behind."""
        tool = agent_tool(spec) or ""
        tool_spec = next((t for t in spec.tools if t.name == tool), None)
        if tool_spec is None:
            raise RoomError(ErrorCode.NOT_FOUND, f"agent {spec.name!r} has no tool {tool!r}")
        problem = validation_error(arguments, schema_validator(tool_spec.input_schema))
        if problem:
            raise RoomError(
                ErrorCode.INVALID_REQUEST, f"invalid input for agent {spec.name!r}: {problem}"
            )
        principal = origin.principal
        if self.unfinished[principal.name] >= MAX_UNFINISHED_PER_PRINCIPAL:
            raise RoomError(
                ErrorCode.UNAVAILABLE,
                f"{principal.name!r} already has {MAX_UNFINISHED_PER_PRINCIPAL} unfinished "
                "tasks in this room; wait for some to finish",
            )
        caller_data = principal.info.model_dump()
        if origin.on_behalf_of is not None:
            caller_data["on_behalf_of"] = origin.on_behalf_of.model_dump()
        read_only = read_only or origin.read_only
        record = TaskRecord(
            id=new_id("t_"),
            room=self.room_name,
            agent=spec.name,
            tool=tool,
            arguments=arguments,
            model=model or arguments.get("model"),
            batch_id=batch_id,
            caller=caller_data,
            parent_task_id=origin.task_id,
            read_only=read_only,
            deadline=deadline or self.default_deadline,
        )
        try:
            await self.store.save(record)
        except TaskStoreError as exc:
            raise RoomError(ErrorCode.FAILED, f"the task could not be stored: {exc}") from None
        task_origin = CallOrigin(
            principal=principal,
            on_behalf_of=origin.on_behalf_of,
            chain=origin.chain,
            task_id=record.id,
            read_only=read_only,
        )
        live = LiveTask(
            record,
            task_origin,
            inactivity_timeout or self.inactivity_timeout,
            pinned_host=pinned_host,
        )
        self._track(live)
        return live

    def _track(self, live: LiveTask) -> None:
        self.live[live.record.id] = live
        self.unfinished[live.origin.principal.name] += 1
        self.queues.setdefault(live.record.agent, collections.deque()).append(live.record.id)

    def _untrack(self, live: LiveTask) -> None:
        self.live.pop(live.record.id, None)
        name = live.origin.principal.name
        self.unfinished[name] -= 1
        if self.unfinished[name] <= 0:
            del self.unfinished[name]
        if live.watchdog is not None:
            live.watchdog.cancel()

    async def _start(self, p: Participant, req: TaskStart, frame: Frame) -> dict[str, Any]:
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
                await self._create(
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
        await self._dispatch(spec.name)
        return {
            "task_ids": [t.record.id for t in created],
            "batch_id": batch_id,
            "tasks": [await self.snapshot(t.record, events=0) for t in created],
        }

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
        live = await self._create(
            origin, spec, arguments, deadline=deadline, pinned_host=target.participant_id
        )
        live.direct = answer
        await self._dispatch(spec.name)

    async def _dispatch(self, agent: str) -> None:
        """Start queued tasks of ``agent`` while the router has free instances for them."""
        queue = self.queues.get(agent)
        while queue:
            live = self.live.get(queue[0])
            if live is None or live.record.status != "pending":
                queue.popleft()
                continue
            instance = self.router.free_agent(
                live.origin.principal,
                agent,
                pinned=live.pinned_host,
                read_only=live.record.read_only,
            )
            if instance is None:
                return
            queue.popleft()
            if live.orphaned:
                live.orphaned = False
                if not self.router.requeue_safe(agent) or live.record.attempts >= MAX_REQUEUES:
                    await self._done(live, False, self._orphan_error(live.record))
                    continue
            await self._run(live, instance)
        self.queues.pop(agent, None)

    async def _run(self, live: LiveTask, instance: Instance) -> None:
        record = live.record
        record.status = TaskStatus.RUNNING
        record.started_at = time.time()
        record.instance = instance.host.id
        record.attempts += 1
        self._touch(live)

        async def reply(ok: bool, data: dict[str, Any]) -> None:
            await self._done(live, ok, data)

        async def progress(data: dict[str, Any]) -> None:
            await self._progress(live, data)

        try:
            live.call = await self.router.start(
                live.origin,
                CallTarget(record.agent, record.tool),
                record.arguments,
                Answer(
                    reply,
                    progress,
                    live.direct.caller if live.direct else None,
                    live.direct.ref if live.direct else None,
                ),
                timeout=record.deadline,
                instance=instance,
            )
        except RoomError as exc:
            await self._done(live, False, exc.to_data())
            return
        try:
            await self._changed(record)
        except TaskStoreError as exc:
            logger.error("task %s: cannot record its start: %s", record.id, exc)

    def _orphan_error(self, record: TaskRecord) -> dict[str, Any]:
        why = (
            f"its runner {record.agent!r} is not re-queue-safe"
            if record.attempts < MAX_REQUEUES
            else f"it already ran {record.attempts} times"
        )
        return RoomError(
            ErrorCode.UNAVAILABLE,
            f"the agent instance running this task is gone (its room server stopped); "
            f"it was not run again: {why}",
        ).to_data()

    def _touch(self, live: LiveTask) -> None:
        """Note activity and arm the inactivity watchdog (a timer, not a polling loop)."""
        live.last_activity = time.monotonic()
        if live.watchdog is None:
            loop = asyncio.get_running_loop()
            live.watchdog = loop.call_later(live.inactivity_timeout, self._check_quiet, live)

    def _check_quiet(self, live: LiveTask) -> None:
        live.watchdog = None
        if live.call is None or live.record.finished:
            return
        quiet = time.monotonic() - live.last_activity
        if quiet < live.inactivity_timeout:
            loop = asyncio.get_running_loop()
            live.watchdog = loop.call_later(
                live.inactivity_timeout - quiet, self._check_quiet, live
            )
            return
        live.end_reason = (
            f"no progress from agent {live.record.agent!r} for "
            f"{live.inactivity_timeout:g} s (inactivity watchdog)"
        )
        asyncio.get_running_loop().create_task(self.router.cancel(live.call, live.end_reason))

    async def _progress(self, live: LiveTask, data: dict[str, Any]) -> None:
        self._touch(live)
        record = live.record
        try:
            event = await self.store.add_event(self.room_name, record.id, data)
        except TaskStoreError as exc:
            logger.warning("task %s: progress event not stored: %s", record.id, exc)
            return
        self._push(
            "task.progress",
            record,
            {"task_id": record.id, "batch_id": record.batch_id, "seq": event.seq, "data": data},
        )
        if live.direct is not None:
            await live.direct.progress(data)

    async def _done(self, live: LiveTask, ok: bool, data: dict[str, Any]) -> None:
        record = live.record
        live.call = None
        if ok:
            record.status = TaskStatus.COMPLETED
            record.result = data.get("result")
            usage = data.get("usage")
            record.usage = usage if isinstance(usage, dict) else {}
        else:
            error = RoomError.from_data(data)
            if live.end_reason:
                record.status = TaskStatus.FAILED
                record.error = {"code": ErrorCode.TIMEOUT.value, "message": live.end_reason}
            elif error.code == ErrorCode.CANCELLED:
                record.status = TaskStatus.CANCELLED
                record.error = error.to_data()
            elif (
                error.code == ErrorCode.UNAVAILABLE
                and self.router.requeue_safe(record.agent)
                and record.attempts < MAX_REQUEUES
            ):
                record.status = TaskStatus.PENDING
                await self._save_quietly(record)
                self.queues.setdefault(record.agent, collections.deque()).appendleft(record.id)
                await self._dispatch(record.agent)
                return
            else:
                record.status = TaskStatus.FAILED
                record.error = error.to_data()
        record.finished_at = time.time()
        try:
            await self._changed(record)
        except TaskStoreError as exc:
            # The answer cannot be stored as it is (e.g. text sqlite refuses): record why
            # instead, so the task ends for everyone rather than staying "running".
            record.status = TaskStatus.FAILED
            record.result = None
            record.error = {
                "code": ErrorCode.FAILED.value,
                "message": f"the agent's answer could not be stored: {exc}",
            }
            await self._save_quietly(record)
        self._untrack(live)
        for waiter in live.waiters:
            if not waiter.done():
                waiter.set_result(None)
        if live.direct is not None:
            if record.status == "completed":
                answer = {"result": record.result, "task_id": record.id, "usage": record.usage}
                await live.direct.reply(True, answer)
            else:
                err = dict(record.error or {})
                err["details"] = {**(err.get("details") or {}), "task_id": record.id}
                await live.direct.reply(False, err)
        await self._dispatch(record.agent)

    async def _save_quietly(self, record: TaskRecord) -> None:
        try:
            await self._changed(record)
        except TaskStoreError as exc:
            logger.error("task %s: cannot be stored: %s", record.id, exc)

    # --- room events ------------------------------------------------------------------------

    async def instance_registered(self, spec: ToolkitSpec) -> None:
        if agent_tool(spec) and spec.name in self.queues:
            await self._dispatch(spec.name)

    async def participant_left(self, p: Participant) -> None:
        """Drop the subscriptions and waits of a connection that has gone."""
        self.subscriptions.pop(p, None)
        for wait in self.waits.pop(p, ()):
            wait.cancel()

    # --- requests ------------------------------------------------------------------------------

    async def _get(self, p: Participant, req: TaskRef, frame: Frame) -> dict[str, Any]:
        return await self.snapshot(await self._load(p, req.task_id))

    async def _result(self, p: Participant, req: TaskRef, frame: Frame) -> dict[str, Any]:
        record = await self._load(p, req.task_id)
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
        records = await self._targets(p, req)
        mine = self.waits.setdefault(p, set())
        if len(mine) >= MAX_WAITS_PER_CONNECTION:
            raise RoomError(
                ErrorCode.UNAVAILABLE,
                f"this connection already has {MAX_WAITS_PER_CONNECTION} waits open",
            )
        futures = []
        for record in records:
            live = self.live.get(record.id)
            if live is not None:
                fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                live.waiters.append(fut)
                futures.append((live, fut))
        finished_now = len(records) - len(futures)
        timed_out = False
        me = asyncio.current_task()
        if me is not None:
            mine.add(me)  # cancelled if this connection leaves: waits die with it
        try:
            if futures and not (req.mode == "first" and finished_now):
                when = asyncio.FIRST_COMPLETED if req.mode == "first" else asyncio.ALL_COMPLETED
                _, pending = await asyncio.wait(
                    [f for _, f in futures], timeout=req.timeout, return_when=when
                )
                timed_out = bool(pending) and (req.mode == "all" or len(pending) == len(futures))
        finally:
            if me is not None:
                mine.discard(me)
            if not mine:
                self.waits.pop(p, None)
            for live, fut in futures:
                fut.cancel()
                with contextlib.suppress(ValueError):
                    live.waiters.remove(fut)
        current = [
            self.live[r.id].record if r.id in self.live else await self._load(p, r.id)
            for r in records
        ]
        return {
            "timed_out": timed_out,
            "done": all(r.finished for r in current),
            "tasks": [await self.snapshot(r, events=0) for r in current],
        }

    async def _cancel(self, p: Participant, req: TaskOrBatch, frame: Frame) -> dict[str, Any]:
        records = await self._targets(p, req)
        if req.task_id and records[0].finished:
            raise RoomError(
                ErrorCode.CONFLICT,
                f"task {req.task_id!r} already finished ({records[0].status}); nothing to cancel",
                {"status": records[0].status},
            )
        cancelled = []
        reason = f"cancelled by {p.name}"
        for record in records:
            live = self.live.get(record.id)
            if live is None:
                continue
            cancelled.append(record.id)
            if live.call is not None:
                await self.router.cancel(live.call, reason)
            else:
                await self._done(live, False, RoomError(ErrorCode.CANCELLED, reason).to_data())
        return {"cancelled": cancelled}

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
            "tasks": [await self.snapshot(r, events=0) for r in records],
            "next_before": records[-1].created_at if more else None,
        }

    async def _subscribe(self, p: Participant, req: TaskSubscribe, frame: Frame) -> dict[str, Any]:
        if req.task_id:
            await self._load(p, req.task_id)
        sub = self.subscriptions.setdefault(p, Subscription())
        sub.all = sub.all or req.all
        if req.task_id:
            sub.task_ids.add(req.task_id)
        if req.batch_id:
            sub.batch_ids.add(req.batch_id)
        return {"subscribed": True}

    async def _unsubscribe(
        self, p: Participant, req: TaskSubscribe, frame: Frame
    ) -> dict[str, Any]:
        sub = self.subscriptions.get(p)
        if sub is not None:
            if req.all:
                self.subscriptions.pop(p, None)
            else:
                sub.task_ids.discard(req.task_id or "")
                sub.batch_ids.discard(req.batch_id or "")
        return {"subscribed": False}
