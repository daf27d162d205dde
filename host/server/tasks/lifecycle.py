"""A task's life: validated and stored, queued, run on a free instance, ended once.

Every call goes through the room's call router, which checks visibility again, so a
queued or re-queued task can never reach an instance its caller cannot see. Every state
change is stored before anyone is told of it.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Any

from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.protocol.messages import ToolkitSpec, ToolSpec
from taskroom.host.protocol.tasks import TaskRecord, TaskStatus
from taskroom.host.server.background import BackgroundTasks
from taskroom.host.server.calls import Answer, CallOrigin, CallTarget, Instance
from taskroom.host.server.router import CallRouter, agent_tool
from taskroom.host.server.tasks.board import TaskBoard
from taskroom.host.server.tasks.live import LiveTask, new_id
from taskroom.host.server.tasks.store import TaskStore, TaskStoreError
from taskroom.host.server.tasks.subscriptions import Subscriptions
from taskroom.host.server.tasks.waits import Waits
from taskroom.host.server.tasks.watchdog import Watchdog
from taskroom.toolkits.schemas import compile_off_loop, validation_error

logger = logging.getLogger(__name__)

MAX_REQUEUES = 3
MAX_CACHED_INPUT_CHECKS = 256


class TaskLifecycle:
    """Creates tasks, hands them to instances as they free up, and records how they end."""

    def __init__(
        self,
        room_name: str,
        router: CallRouter,
        store: TaskStore,
        board: TaskBoard,
        subscriptions: Subscriptions,
        *,
        default_deadline: float,
        inactivity_timeout: float,
    ) -> None:
        self.room_name = room_name
        self.router = router
        self.store = store
        self.board = board
        self.subscriptions = subscriptions
        self.default_deadline = default_deadline
        self.inactivity_timeout = inactivity_timeout
        self.watchdog = Watchdog(router.cancel)
        self._recording = BackgroundTasks("recording a progress event")
        self._input_checks: OrderedDict[int, tuple[ToolSpec, Any]] = OrderedDict()

    async def create(
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
        direct: Answer | None = None,
    ) -> LiveTask:
        """Validate, store, and only then queue or run: a refused start leaves nothing
        behind.

        When nothing is queued ahead and an instance is free, the task is stored once,
        already ``running`` on that instance (its slot reserved meanwhile), and its call
        starts once that write is durable: one write fewer per task than storing it
        ``pending`` first, and a crash after the call left finds it running, as a
        restart expects (see ``TaskManager.install``)."""
        tool = agent_tool(spec) or ""
        tool_spec = next((t for t in spec.tools if t.name == tool), None)
        if tool_spec is None:
            raise RoomError(ErrorCode.NOT_FOUND, f"agent {spec.name!r} has no tool {tool!r}")
        problem = validation_error(arguments, await self._input_validator(tool_spec))
        if problem:
            raise RoomError(
                ErrorCode.INVALID_REQUEST, f"invalid input for agent {spec.name!r}: {problem}"
            )
        principal = origin.principal
        self.router.check_named_toolkits(principal, arguments)
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
            direct=direct,
        )
        self.board.admit(principal)
        instance = None
        if spec.name not in self.board.queues:  # nobody waits ahead of it
            instance = self.router.free_agent(
                principal, spec.name, pinned=pinned_host, read_only=read_only
            )
        if instance is not None:
            self.router.reserve(instance, spec.name, read_only=read_only)
            _mark_running(record, instance)
        try:
            await self.store.save(record)
        except BaseException as exc:  # refused, or the start was cancelled while storing
            self.board.unadmit(principal.name)
            if instance is not None:
                self.router.release(instance, spec.name, read_only=read_only)
            if isinstance(exc, TaskStoreError):
                raise RoomError(ErrorCode.FAILED, f"the task could not be stored: {exc}") from None
            raise
        if instance is None:
            self.board.track(live, admitted=True)
        else:
            self.board.track(live, queued=False, admitted=True)
            await self._run(live, instance, reserved=True)
        return live

    async def _input_validator(self, tool_spec: ToolSpec) -> Any:
        """The validator of a task tool's input schema, kept per registered tool: looking
        it up by the schema's content (measuring and serialising the schema) on every
        start cost more than the check itself."""
        known = self._input_checks.get(id(tool_spec))
        if known is not None and known[0] is tool_spec:
            return known[1]
        validator = await compile_off_loop(tool_spec.input_schema)
        self._input_checks[id(tool_spec)] = (tool_spec, validator)
        if len(self._input_checks) > MAX_CACHED_INPUT_CHECKS:
            self._input_checks.popitem(last=False)
        return validator

    async def dispatch(self, agent: str) -> None:
        """Start queued tasks of ``agent`` while the router has free instances for them."""
        while (live := self.board.next_pending(agent)) is not None:
            instance = self.router.free_agent(
                live.origin.principal,
                agent,
                pinned=live.pinned_host,
                read_only=live.record.read_only,
            )
            if instance is None:
                return
            self.board.take(agent)
            if live.orphaned:
                live.orphaned = False
                if not self.router.requeue_safe(agent) or live.record.attempts >= MAX_REQUEUES:
                    await self.done(live, False, _orphan_error(live.record))
                    continue
            # Stored running before its call leaves, as in create: a room that dies in
            # between must find it started, or it would run again where that is not safe.
            self.router.reserve(instance, agent, read_only=live.record.read_only)
            _mark_running(live.record, instance)
            try:
                await self.store.save(live.record)
            except TaskStoreError as exc:
                logger.error("task %s: cannot record its start: %s", live.record.id, exc)
            await self._run(live, instance, reserved=True)

    async def _run(self, live: LiveTask, instance: Instance, *, reserved: bool = False) -> None:
        """Start the task's call on ``instance``. ``reserved``: the record was stored
        running on it already and the slot is held; else mark and store it here."""
        record = live.record
        if reserved and record.finished:
            # Cancelled while its start was being stored: its call never leaves.
            self.router.release(instance, record.agent, read_only=record.read_only)
            return
        if not reserved:
            _mark_running(record, instance)
        self.watchdog.touch(live)

        async def reply(ok: bool, data: dict[str, Any]) -> None:
            await self.done(live, ok, data)

        async def progress(data: dict[str, Any]) -> None:
            # Recorded in its own task: the host's next frame, often the task's answer,
            # need not wait for this event's write. Events keep their order: each task
            # hands its write to the store in its first step, in the order they came.
            self._recording.spawn(self._progress(live, data))

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
                    # Recording the answer must not hold up its host's connection:
                    # answers that arrive together are then stored in one commit, and
                    # dispatch the tasks queued behind them together.
                    detached=True,
                ),
                timeout=record.deadline,
                instance=instance,
                reserved=reserved,
            )
        except RoomError as exc:
            if reserved:
                self.router.release(instance, record.agent, read_only=record.read_only)
                if exc.code == ErrorCode.NOT_FOUND:
                    # Its instance left while the record was being stored: queue it as
                    # if it had never been given one.
                    await self._unclaim(live)
                    return
            await self.done(live, False, exc.to_data())
            return
        if reserved:
            self._push_updated(record)
            return
        try:
            await self._changed(record)
        except TaskStoreError as exc:
            logger.error("task %s: cannot record its start: %s", record.id, exc)

    async def _unclaim(self, live: LiveTask) -> None:
        record = live.record
        record.status = TaskStatus.PENDING
        record.started_at = None
        record.instance = None
        record.attempts -= 1
        await self._save_quietly(record)
        self.board.enqueue(live, first=True)
        await self.dispatch(record.agent)

    async def _progress(self, live: LiveTask, data: dict[str, Any]) -> None:
        self.watchdog.touch(live)
        record = live.record
        try:
            event = await self.store.add_event(self.room_name, record.id, data)
        except TaskStoreError as exc:
            logger.warning("task %s: progress event not stored: %s", record.id, exc)
            return
        self.subscriptions.push(
            "task.progress",
            record,
            {"task_id": record.id, "batch_id": record.batch_id, "seq": event.seq, "data": data},
        )
        if live.direct is not None:
            await live.direct.progress(data)

    async def done(self, live: LiveTask, ok: bool, data: dict[str, Any]) -> None:
        """Record how a run ended (or re-queue it if its instance went away) and tell all."""
        record = live.record
        live.call = None
        if ok:
            record.status = TaskStatus.COMPLETED
            record.result = data.get("result")
            record.usage = _token_counts(data.get("usage"))
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
                self.board.enqueue(live, first=True)
                await self.dispatch(record.agent)
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
        self.board.untrack(live)
        Waits.release(live)
        if live.direct is not None:
            if record.status == "completed":
                answer = {"result": record.result, "task_id": record.id, "usage": record.usage}
                await live.direct.reply(True, answer)
            else:
                err = dict(record.error or {})
                err["details"] = {**(err.get("details") or {}), "task_id": record.id}
                await live.direct.reply(False, err)
        await self.dispatch(record.agent)

    async def _changed(self, record: TaskRecord) -> None:
        """Store the record, then push the change to subscribers."""
        await self.store.save(record)
        self._push_updated(record)

    def _push_updated(self, record: TaskRecord) -> None:
        if not self.subscriptions.by_connection:
            return
        self.subscriptions.push(
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

    async def _save_quietly(self, record: TaskRecord) -> None:
        try:
            await self._changed(record)
        except TaskStoreError as exc:
            logger.error("task %s: cannot be stored: %s", record.id, exc)


def _token_counts(usage: Any) -> dict[str, int]:
    """The integer counts of an agent's ``usage``; anything else it sent is dropped, so
    the record always reloads."""
    if not isinstance(usage, dict):
        return {}
    return {
        k: v
        for k, v in usage.items()
        if isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
    }


def _mark_running(record: TaskRecord, instance: Instance) -> None:
    record.status = TaskStatus.RUNNING
    record.started_at = time.time()
    record.instance = instance.host.id
    record.attempts += 1


def _orphan_error(record: TaskRecord) -> dict[str, Any]:
    """Why a task that ran on an instance now gone is not run again."""
    why = (
        f"its runner {record.agent!r} is not re-queue-safe"
        if record.attempts < MAX_REQUEUES
        else f"it already ran {record.attempts} times"
    )
    return RoomError(
        ErrorCode.UNAVAILABLE,
        "the agent instance running this task is gone (its room server stopped); "
        f"it was not run again: {why}",
    ).to_data()
