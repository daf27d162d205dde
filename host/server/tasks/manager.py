"""The room's task API: durable records, dispatch to agent instances, waits and pushes.

A task is one run of an agent's ``run_<name>_task`` tool. Start answers at once with an
unguessable id; the room then picks the least-loaded instance (queueing while all are
busy), records progress, and settles waiters and subscribers when the run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from taskroom.host import protocol
from taskroom.host.protocol import ErrorCode, Frame, RoomError
from taskroom.host.protocol.messages import ParticipantInfo, ToolkitSpec, ToolsInvoke
from taskroom.host.protocol.tasks import (
    TaskList,
    TaskOrBatch,
    TaskRecord,
    TaskRef,
    TaskStart,
    TaskSubscribe,
    TaskWait,
)
from taskroom.host.server.calls import PendingCall
from taskroom.host.server.participant import Participant
from taskroom.host.server.room import CallOrigin, Room
from taskroom.host.server.tasks.store import TaskStore
from taskroom.toolkits.toolkit import schema_validator, validation_error

logger = logging.getLogger(__name__)

DEFAULT_DEADLINE = 3600.0
DEFAULT_INACTIVITY = 600.0
WATCHDOG_PERIOD = 0.5
MAX_REQUEUES = 3
RECENT_EVENTS = 10


def new_id(prefix: str) -> str:
    """128+ bits from the OS CSPRNG: ids cannot be guessed or enumerated."""
    return prefix + secrets.token_urlsafe(18)


@dataclass(eq=False)
class LiveTask:
    """What the room keeps in memory while a task is unfinished."""

    record: TaskRecord
    inactivity_timeout: float
    on_behalf_of: ParticipantInfo | None = None
    chain: list[str] = field(default_factory=list)
    pinned_host: str | None = None
    call: PendingCall | None = None
    last_activity: float = field(default_factory=time.monotonic)
    end_reason: str | None = None
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    direct: tuple[Participant, str | int] | None = None


@dataclass
class Subscription:
    all: bool = False
    task_ids: set[str] = field(default_factory=set)
    batch_ids: set[str] = field(default_factory=set)

    def wants(self, record: TaskRecord) -> bool:
        return self.all or record.id in self.task_ids or record.batch_id in self.batch_ids


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
        self.room = room
        self.store = store
        self.default_deadline = default_deadline
        self.inactivity_timeout = inactivity_timeout
        self.live: dict[str, LiveTask] = {}
        self.queue: list[str] = []
        self.subscriptions: dict[str, Subscription] = {}
        self._watchdog: asyncio.Task[None] | None = None

    async def install(self) -> None:
        room = self.room
        handlers = {
            "tasks.start": (TaskStart, self._start, False, "tasks.start"),
            "tasks.get": (TaskRef, self._get, False, None),
            "tasks.result": (TaskRef, self._result, False, None),
            "tasks.wait": (TaskWait, self._wait, True, None),
            "tasks.cancel": (TaskOrBatch, self._cancel, False, None),
            "tasks.list": (TaskList, self._list, False, None),
            "tasks.subscribe": (TaskSubscribe, self._subscribe, False, None),
            "tasks.unsubscribe": (TaskSubscribe, self._unsubscribe, False, None),
        }
        for type_, (model, fn, background, grant) in handlers.items():
            room.handle(type_, model, fn, background=background, grant=grant)
        room.invoke_hooks.append(self._intercept)
        room.register_hooks.append(self._on_register)
        room.leave_hooks.append(self._on_leave)
        room.close_hooks.append(self.close)
        for record in await self.store.unfinished(room.name):
            if record.status == "pending":
                self.live[record.id] = LiveTask(record, self.inactivity_timeout)
                self.queue.append(record.id)

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog

    # --- access -----------------------------------------------------------------------

    def _can_access(self, p: Participant, record: TaskRecord) -> bool:
        if p.allows("tasks.all") or p.allows("*"):
            return True
        behalf = record.caller.get("on_behalf_of") or {}
        return p.name in (record.caller.get("name"), behalf.get("name"))

    async def _load(self, p: Participant, task_id: str) -> TaskRecord:
        live = self.live.get(task_id)
        record = live.record if live else await self.store.get(self.room.name, task_id)
        if record is None or not self._can_access(p, record):
            raise RoomError(ErrorCode.NOT_FOUND, f"no task {task_id!r} in room {self.room.name!r}")
        return record

    async def _batch(self, p: Participant, batch_id: str) -> list[TaskRecord]:
        records = [
            r
            for r in await self.store.list(self.room.name, batch_id=batch_id, limit=500)
            if self._can_access(p, r)
        ]
        if not records:
            raise RoomError(
                ErrorCode.NOT_FOUND, f"no batch {batch_id!r} in room {self.room.name!r}"
            )
        return [self.live[r.id].record if r.id in self.live else r for r in records]

    # --- snapshots and pushes ----------------------------------------------------------

    async def snapshot(self, record: TaskRecord, *, events: int = RECENT_EVENTS) -> dict[str, Any]:
        data = record.model_dump(mode="json")
        data["events"] = [
            e.model_dump(mode="json")
            for e in await self.store.events(self.room.name, record.id, limit=events)
        ]
        data["poll_interval"] = (
            None if record.finished else (1.0 if record.status == "running" else 2.0)
        )
        return data

    async def _push(self, type_: str, record: TaskRecord, data: dict[str, Any]) -> None:
        if not self.subscriptions:
            return
        text = protocol.encode(type_, data)
        for pid, sub in list(self.subscriptions.items()):
            p = self.room.participants.get(pid)
            if p is not None and sub.wants(record) and self._can_access(p, record):
                await p.send(text)

    async def _changed(self, record: TaskRecord) -> None:
        await self.store.save(record)
        await self._push(
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

    # --- start and dispatch -----------------------------------------------------------------

    def _agent_specs(self, agent: str) -> list[tuple[Participant, ToolkitSpec]]:
        hosts = self.room.toolkits.get(agent, {})
        return [
            (self.room.participants[hid], spec)
            for hid, spec in hosts.items()
            if hid in self.room.participants and spec.metadata.get("agent")
        ]

    def agent_names(self) -> list[str]:
        return sorted(
            name
            for name, hosts in self.room.toolkits.items()
            if any(spec.metadata.get("agent") for spec in hosts.values())
        )

    def _agent_spec(self, p: Participant, agent: str) -> ToolkitSpec:
        for host, spec in self._agent_specs(agent):
            if self.room.can_see(p, host.id, spec):
                return spec
        raise RoomError(
            ErrorCode.NOT_FOUND,
            f"agent {agent!r} is not in room {self.room.name!r}",
            {"agents": self.agent_names()},
        )

    async def _create(
        self,
        caller: ParticipantInfo,
        spec: ToolkitSpec,
        arguments: dict[str, Any],
        *,
        model: str | None = None,
        batch_id: str | None = None,
        read_only: bool = False,
        deadline: float | None = None,
        inactivity_timeout: float | None = None,
        origin: CallOrigin | None = None,
    ) -> LiveTask:
        tool = spec.metadata.get("tool") or f"run_{spec.name}_task"
        tool_spec = next((t for t in spec.tools if t.name == tool), None)
        if tool_spec is None:
            raise RoomError(ErrorCode.NOT_FOUND, f"agent {spec.name!r} has no tool {tool!r}")
        problem = validation_error(arguments, schema_validator(tool_spec.input_schema))
        if problem:
            raise RoomError(
                ErrorCode.INVALID_REQUEST, f"invalid input for agent {spec.name!r}: {problem}"
            )
        origin = origin or CallOrigin()
        caller_data = caller.model_dump()
        if origin.on_behalf_of is not None:
            caller_data["on_behalf_of"] = origin.on_behalf_of.model_dump()
        record = TaskRecord(
            id=new_id("t_"),
            room=self.room.name,
            agent=spec.name,
            tool=tool,
            arguments=arguments,
            model=model or arguments.get("model"),
            batch_id=batch_id,
            caller=caller_data,
            parent_task_id=origin.task_id,
            read_only=read_only or origin.read_only,
            deadline=deadline or self.default_deadline,
        )
        live = LiveTask(
            record,
            inactivity_timeout or self.inactivity_timeout,
            on_behalf_of=origin.on_behalf_of,
            chain=origin.chain,
        )
        self.live[record.id] = live
        await self.store.save(record)
        self.queue.append(record.id)
        return live

    async def _start(self, p: Participant, req: TaskStart, frame: Frame) -> dict[str, Any]:
        spec = self._agent_spec(p, req.agent)
        models = req.models or [None]
        if len(models) > 1 and not req.read_only:
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
                    p.info,
                    spec,
                    arguments,
                    model=model,
                    batch_id=batch_id,
                    read_only=req.read_only,
                    deadline=req.deadline,
                    inactivity_timeout=req.inactivity_timeout,
                )
            )
        self._ensure_watchdog()
        await self._dispatch()
        return {
            "task_ids": [t.record.id for t in created],
            "batch_id": batch_id,
            "tasks": [await self.snapshot(t.record, events=0) for t in created],
        }

    async def _intercept(
        self, p: Participant, req: ToolsInvoke, frame: Frame, origin: CallOrigin
    ) -> bool:
        """Record a direct ``run_<name>_task`` call as a task, answering it as a tool call."""
        specs = self._agent_specs(req.toolkit)
        if not specs or req.tool != (specs[0][1].metadata.get("tool") or ""):
            return False
        spec = self._agent_spec(p, req.toolkit)
        live = await self._create(
            p.info,
            spec,
            req.arguments,
            deadline=req.timeout,
            origin=origin,
        )
        live.direct = (p, frame.id) if frame.id is not None else None
        live.pinned_host = req.participant_id
        self._ensure_watchdog()
        await self._dispatch()
        return True

    def _free_host(self, live: LiveTask) -> Participant | None:
        best: tuple[int, Participant] | None = None
        for host, spec in self._agent_specs(live.record.agent):
            if live.pinned_host and host.id != live.pinned_host:
                continue
            load = self.room.load.get((host.id, spec.name), 0)
            if load >= int(spec.metadata.get("max_concurrency") or 16):
                continue
            if best is None or load < best[0]:
                best = (load, host)
        return best[1] if best else None

    async def _dispatch(self) -> None:
        for task_id in list(self.queue):
            live = self.live.get(task_id)
            if live is None:
                self.queue.remove(task_id)
                continue
            host = self._free_host(live)
            if host is None:
                continue
            self.queue.remove(task_id)
            await self._run(live, host)

    async def _run(self, live: LiveTask, host: Participant) -> None:
        record = live.record
        record.status = "running"
        record.started_at = time.time()
        record.instance = host.id
        record.attempts += 1
        live.last_activity = time.monotonic()
        await self._changed(record)

        async def reply(ok: bool, data: dict[str, Any]) -> None:
            await self._done(live, ok, data)

        async def progress(data: dict[str, Any]) -> None:
            await self._progress(live, data)

        try:
            live.call = await self.room.start_call(
                caller=ParticipantInfo(
                    **{k: v for k, v in record.caller.items() if k != "on_behalf_of"}
                ),
                toolkit=record.agent,
                tool=record.tool,
                arguments=record.arguments,
                host=host,
                timeout=record.deadline,
                on_behalf_of=live.on_behalf_of,
                task_id=record.id,
                read_only=record.read_only,
                chain=live.chain,
                check_read_only=False,
                reply=reply,
                progress=progress,
                caller_participant=live.direct[0] if live.direct else None,
                caller_ref=live.direct[1] if live.direct else None,
            )
        except RoomError as exc:
            await self._done(live, False, exc.to_data())

    async def _progress(self, live: LiveTask, data: dict[str, Any]) -> None:
        live.last_activity = time.monotonic()
        record = live.record
        event = await self.store.add_event(self.room.name, record.id, data)
        await self._push(
            "task.progress",
            record,
            {"task_id": record.id, "batch_id": record.batch_id, "seq": event.seq, "data": data},
        )
        if live.direct is not None:
            p, ref = live.direct
            await p.send(protocol.encode("tool.progress", {"call_id": ref, "data": data}))

    async def _done(self, live: LiveTask, ok: bool, data: dict[str, Any]) -> None:
        record = live.record
        live.call = None
        if ok:
            record.status = "completed"
            record.result = data.get("result")
            record.usage = data.get("usage") or {}
        else:
            error = RoomError.from_data(data)
            if live.end_reason:
                record.status = "failed"
                record.error = {"code": ErrorCode.TIMEOUT.value, "message": live.end_reason}
            elif error.code == ErrorCode.CANCELLED:
                record.status = "cancelled"
                record.error = error.to_data()
            elif (
                error.code == ErrorCode.UNAVAILABLE
                and self._requeue_safe(record.agent)
                and record.attempts < MAX_REQUEUES
            ):
                record.status = "pending"
                await self._changed(record)
                self.queue.insert(0, record.id)
                await self._dispatch()
                return
            else:
                record.status = "failed"
                record.error = error.to_data()
        record.finished_at = time.time()
        self.live.pop(record.id, None)
        await self._changed(record)
        for waiter in live.waiters:
            if not waiter.done():
                waiter.set_result(None)
        if live.direct is not None:
            p, ref = live.direct
            if ok:
                answer = {"result": record.result, "task_id": record.id, "usage": record.usage}
                await p.send(protocol.response(ref, answer))
            else:
                err = dict(record.error or {})
                err.setdefault("details", {})["task_id"] = record.id
                await p.send(protocol.encode(protocol.ERROR, err, ref))
        await self._dispatch()

    def _requeue_safe(self, agent: str) -> bool:
        return any(spec.metadata.get("requeue_safe") for _, spec in self._agent_specs(agent))

    # --- room events -----------------------------------------------------------------------

    async def _on_register(self, p: Participant, spec: ToolkitSpec) -> None:
        if spec.metadata.get("agent") and self.queue:
            await self._dispatch()

    async def _on_leave(self, p: Participant) -> None:
        self.subscriptions.pop(p.id, None)

    def _ensure_watchdog(self) -> None:
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        """End running tasks that have gone quiet for longer than they are allowed."""
        while True:
            await asyncio.sleep(WATCHDOG_PERIOD)
            now = time.monotonic()
            for live in list(self.live.values()):
                quiet = now - live.last_activity
                if live.call is not None and quiet > live.inactivity_timeout:
                    live.end_reason = (
                        f"no progress from agent {live.record.agent!r} for "
                        f"{live.inactivity_timeout:g} s (inactivity watchdog)"
                    )
                    await self.room.cancel_call(live.call, live.end_reason)

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
        records = (
            [await self._load(p, req.task_id)]
            if req.task_id
            else await self._batch(p, req.batch_id or "")
        )
        futures = []
        for record in records:
            live = self.live.get(record.id)
            if live is not None:
                fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                live.waiters.append(fut)
                futures.append(fut)
        finished_now = len(records) - len(futures)
        timed_out = False
        if futures and not (req.mode == "first" and finished_now):
            when = asyncio.FIRST_COMPLETED if req.mode == "first" else asyncio.ALL_COMPLETED
            _, pending = await asyncio.wait(futures, timeout=req.timeout, return_when=when)
            timed_out = bool(pending) and (req.mode == "all" or len(pending) == len(futures))
        for fut in futures:
            fut.cancel()
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
        records = (
            [await self._load(p, req.task_id)]
            if req.task_id
            else await self._batch(p, req.batch_id or "")
        )
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
                await self.room.cancel_call(live.call, reason)
            else:
                if record.id in self.queue:
                    self.queue.remove(record.id)
                await self._done(live, False, RoomError(ErrorCode.CANCELLED, reason).to_data())
        return {"cancelled": cancelled}

    async def _list(self, p: Participant, req: TaskList, frame: Frame) -> dict[str, Any]:
        caller = req.caller
        if not (p.allows("tasks.all") or p.allows("*")):
            caller = p.name
        records = await self.store.list(
            self.room.name,
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
        sub = self.subscriptions.setdefault(p.id, Subscription())
        sub.all = sub.all or req.all
        if req.task_id:
            sub.task_ids.add(req.task_id)
        if req.batch_id:
            sub.batch_ids.add(req.batch_id)
        return {"subscribed": True}

    async def _unsubscribe(
        self, p: Participant, req: TaskSubscribe, frame: Frame
    ) -> dict[str, Any]:
        sub = self.subscriptions.get(p.id)
        if sub is not None:
            if req.all:
                self.subscriptions.pop(p.id, None)
            else:
                sub.task_ids.discard(req.task_id or "")
                sub.batch_ids.discard(req.batch_id or "")
        return {"subscribed": False}
