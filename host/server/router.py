"""The one call router: every tool call in a room, direct or for a task, goes through here.

It derives where a call comes from, checks visibility and read_only, picks the instance
(one balancer: fewest calls in flight, least recently used on ties), sets the deadline,
and settles the call exactly once: answer, error, cancel, timeout or the host leaving.
The task manager asks it for instances and calls; it never reads the room's tables.
"""

from __future__ import annotations

import collections
import itertools
import logging
import secrets
from collections.abc import Iterable
from typing import Any

from taskroom.host import protocol
from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.protocol.messages import ToolkitSpec
from taskroom.host.protocol.tasks import task_tool_name
from taskroom.host.server.background import BackgroundTasks
from taskroom.host.server.calls import Answer, CallOrigin, CallTarget, Instance, PendingCall
from taskroom.host.server.deadlines import Deadlines
from taskroom.host.server.participant import Participant, Principal
from taskroom.host.server.registry import Registry

logger = logging.getLogger(__name__)

DEFAULT_CALL_TIMEOUT = 120.0
DEFAULT_AGENT_CONCURRENCY = 16


def agent_tool(spec: ToolkitSpec) -> str | None:
    """The task tool of an agent instance, or None for a plain toolkit."""
    if not spec.metadata.get("agent"):
        return None
    return str(spec.metadata.get("tool") or task_tool_name(spec.name))


class CallRouter:
    """Calls of one room."""

    def __init__(self, registry: Registry, *, default_timeout: float = DEFAULT_CALL_TIMEOUT):
        self.registry = registry
        self.default_timeout = default_timeout
        self.calls: dict[str, PendingCall] = {}
        self._by_request: dict[tuple[str, str | int], PendingCall] = {}
        self.load: dict[tuple[str, str], int] = {}
        self._last_used: dict[tuple[str, str], int] = {}
        self._order = itertools.count()
        self._call_prefix = f"c_{secrets.token_hex(4)}_"
        """Call ids are this router's random prefix and a count: unique in the room and
        across its restarts, without a system call for randomness on every call (an id
        grants nothing: every use of one checks the participant it belongs to)."""
        self._call_numbers = itertools.count(1)
        self._serving: collections.Counter[tuple[str, bool]] = collections.Counter()
        """(identity, read_only) → calls in flight that identity serves."""
        self._replying = BackgroundTasks("recording an answer")
        self._deadlines = Deadlines(self._due)
        self._expiring = BackgroundTasks("expiring a call")

    # --- where a call comes from --------------------------------------------------------

    def serving_read_only(self, identity: str) -> bool:
        return self._serving[(identity, True)] > 0

    def origin_for(self, p: Participant, parent_call_id: str | None = None) -> CallOrigin:
        """The origin of a request from ``p``: its own, or that of a call it is serving.

        read_only is a property of the whole call tree: while any connection of this
        identity serves a read_only call, everything it starts is read_only, whichever
        parent it cites.
        """
        tainted = self.serving_read_only(p.name)
        if parent_call_id is None:
            return CallOrigin(principal=p.principal, read_only=tainted)
        parent = self.calls.get(parent_call_id)
        if parent is None or parent.host is not p:
            raise RoomError(
                ErrorCode.PERMISSION_DENIED, f"{parent_call_id!r} is not a call you are serving"
            )
        return CallOrigin(
            principal=p.principal,
            on_behalf_of=parent.origin.on_behalf_of or parent.origin.principal.info,
            chain=(*parent.origin.chain, parent.call_id),
            task_id=parent.origin.task_id,
            read_only=parent.origin.read_only or tainted,
        )

    # --- which instance ---------------------------------------------------------------------

    def _least_loaded(self, toolkit: str, candidates: Iterable[Instance]) -> Instance | None:
        def key(i: Instance) -> tuple[int, int]:
            k = (i.host.id, toolkit)
            return (self.load.get(k, 0), self._last_used.get(k, -1))

        return min(candidates, key=key, default=None)

    def pick(self, principal: Principal, target: CallTarget) -> Instance:
        """The visible instance to call; a hidden one is reported exactly like a missing one."""
        found = self._least_loaded(
            target.toolkit,
            self.registry.instances(
                principal, target.toolkit, participant_id=target.participant_id
            ),
        )
        if found is None:
            where = (
                f" hosted by participant {target.participant_id}" if target.participant_id else ""
            )
            raise RoomError(
                ErrorCode.NOT_FOUND,
                f"no toolkit named {target.toolkit!r}{where} is in room {self.registry.room!r}",
                {"toolkit": target.toolkit},
            )
        return found

    def check_named_toolkits(self, principal: Principal, arguments: dict[str, Any]) -> None:
        """A runner looks up the toolkits a task's ``tools`` names through its own view of
        the room, so a caller may name only toolkits it can see itself; a hidden one is
        reported exactly like a missing one."""
        names = arguments.get("tools")
        if not isinstance(names, list):
            return
        for name in names:
            if isinstance(name, str) and not self.registry.instances(principal, name):
                raise RoomError(
                    ErrorCode.NOT_FOUND,
                    f"no toolkit named {name!r} is in room {self.registry.room!r}",
                    {"toolkit": name},
                )

    def agents(self, principal: Principal) -> list[str]:
        """Names of the agents ``principal`` can see."""
        return sorted(
            name
            for name in self.registry.toolkits
            if any(agent_tool(i.spec) for i in self.registry.instances(principal, name))
        )

    def agent(self, principal: Principal, name: str) -> ToolkitSpec:
        """The spec of a visible agent, else not_found listing the agents there are."""
        for i in self.registry.instances(principal, name):
            if agent_tool(i.spec):
                return i.spec
        raise RoomError(
            ErrorCode.NOT_FOUND,
            f"agent {name!r} is not in room {self.registry.room!r}",
            {"agents": self.agents(principal)},
        )

    def is_agent_tool(self, toolkit: str, tool: str) -> bool:
        return any(agent_tool(s) == tool for s in self.registry.toolkits.get(toolkit, {}).values())

    def free_agent(
        self, principal: Principal, agent: str, *, pinned: str | None, read_only: bool
    ) -> Instance | None:
        """A visible agent instance with room for one more task, or None to keep it queued.

        An identity serves read_only and writing tasks apart: a read_only task taints every
        call of its runner, so the two never share an identity at the same time.
        """

        def free(i: Instance) -> bool:
            limit = int(i.spec.metadata.get("max_concurrency") or DEFAULT_AGENT_CONCURRENCY)
            if not agent_tool(i.spec) or self.load.get((i.host.id, agent), 0) >= limit:
                return False
            return self._serving[(i.host.name, not read_only)] == 0

        candidates = self.registry.instances(principal, agent, participant_id=pinned)
        return self._least_loaded(agent, filter(free, candidates))

    def reserve(self, instance: Instance, agent: str, *, read_only: bool) -> None:
        """Count a task on ``instance`` before its call starts (while its record is being
        stored), so no other task takes the same slot meanwhile; :meth:`start` with
        ``reserved=True`` takes the reservation over, :meth:`release` gives it back."""
        key = (instance.host.id, agent)
        self.load[key] = self.load.get(key, 0) + 1
        self._serving[(instance.host.name, read_only)] += 1

    def release(self, instance: Instance, agent: str, *, read_only: bool) -> None:
        """Give back a reservation whose call never started."""
        key = (instance.host.id, agent)
        if key in self.load:
            self.load[key] = max(0, self.load[key] - 1)
        serving = (instance.host.name, read_only)
        self._serving[serving] -= 1
        if self._serving[serving] <= 0:
            del self._serving[serving]

    def requeue_safe(self, agent: str) -> bool:
        return any(
            s.metadata.get("requeue_safe") for s in self.registry.toolkits.get(agent, {}).values()
        )

    # --- calls ------------------------------------------------------------------------------

    async def start(
        self,
        origin: CallOrigin,
        target: CallTarget,
        arguments: dict[str, Any],
        answer: Answer,
        *,
        timeout: float | None = None,
        instance: Instance | None = None,
        reserved: bool = False,
    ) -> PendingCall:
        """Route a call. An instance chosen beforehand (task dispatch) is checked again here:
        it must still be registered and visible to the origin's principal. ``reserved``:
        the instance's slot was counted by :meth:`reserve`; if this raises, the caller
        still holds the reservation."""
        if instance is None:
            instance = self.pick(origin.principal, target)
        else:
            current = self.registry.toolkits.get(target.toolkit, {}).get(instance.host.id)
            if current is None or not self.registry.can_see(
                origin.principal, instance.host.id, current
            ):
                raise RoomError(
                    ErrorCode.NOT_FOUND,
                    f"no toolkit named {target.toolkit!r} is in room {self.registry.room!r}",
                    {"toolkit": target.toolkit},
                )
            instance = Instance(instance.host, current)
        spec = instance.spec
        tool_spec = next((t for t in spec.tools if t.name == target.tool), None)
        if tool_spec is None:
            raise RoomError(
                ErrorCode.NOT_FOUND,
                f"toolkit {target.toolkit!r} has no tool {target.tool!r}",
                {
                    "toolkit": target.toolkit,
                    "tool": target.tool,
                    "available": [t.name for t in spec.tools],
                },
            )
        task_root = agent_tool(spec) == target.tool and origin.task_id is not None
        if origin.read_only and not task_root and not tool_spec.annotations.read_only:
            raise RoomError(
                ErrorCode.PERMISSION_DENIED,
                f"{target.toolkit}.{target.tool} is not read_only and this task is read_only",
            )
        timeout = timeout or self.default_timeout
        host = instance.host
        call = PendingCall(
            call_id=f"{self._call_prefix}{next(self._call_numbers)}",
            target=CallTarget(target.toolkit, target.tool, host.id),
            host=host,
            origin=origin,
            answer=answer,
            timeout=timeout,
        )
        self.calls[call.call_id] = call
        if answer.caller is not None and answer.ref is not None:
            self._by_request[(answer.caller.id, answer.ref)] = call
        key = (host.id, target.toolkit)
        if not reserved:
            self.load[key] = self.load.get(key, 0) + 1
            self._serving[(host.name, origin.read_only)] += 1
        self._last_used[key] = next(self._order)
        self._deadlines.add(call, timeout)
        host.send(protocol.encode("tool.call", call.wire_data(arguments, timeout), call.call_id))
        return call

    async def cancel(self, call: PendingCall, reason: str) -> None:
        """Tell the host to stop and answer the caller ``cancelled`` at once."""
        if call.done:
            return
        call.host.send(protocol.encode("tool.cancel", {"call_id": call.call_id, "reason": reason}))
        await self._finish(call, False, RoomError(ErrorCode.CANCELLED, reason).to_data())

    async def cancel_request(self, p: Participant, ref: str | int) -> None:
        call = self._by_request.get((p.id, ref))
        if call is None:
            raise RoomError(ErrorCode.NOT_FOUND, f"no call {ref!r} of yours is in flight")
        await self.cancel(call, "cancelled by the caller")

    def _due(self, call: Any, timeout: float) -> None:
        """A call's deadline passed while it was in flight: expire it."""
        self._expiring.spawn(self._expire(call, timeout))

    async def _expire(self, call: PendingCall, timeout: float) -> None:
        if call.done:
            return
        call.host.send(
            protocol.encode("tool.cancel", {"call_id": call.call_id, "reason": "deadline passed"})
        )
        await self._finish(
            call,
            False,
            RoomError(
                ErrorCode.TIMEOUT,
                f"{call.toolkit}.{call.tool} did not answer within {timeout:g} s",
            ).to_data(),
        )

    async def _finish(
        self, call: PendingCall, ok: bool, data: dict[str, Any], *, from_host: bool = False
    ) -> None:
        """Settle ``call`` once. A host's answer to a call whose answer is ``detached``
        is replied to in its own task; every other outcome is awaited here."""
        if call.done:
            return
        call.done = True
        self.calls.pop(call.call_id, None)
        if call.answer.caller is not None and call.answer.ref is not None:
            self._by_request.pop((call.answer.caller.id, call.answer.ref), None)
        self._deadlines.remove(call, call.timeout)
        key = (call.host.id, call.toolkit)
        if key in self.load:
            self.load[key] = max(0, self.load[key] - 1)
        serving = (call.host.name, call.origin.read_only)
        self._serving[serving] -= 1
        if self._serving[serving] <= 0:
            del self._serving[serving]
        if from_host and call.answer.detached:
            self._replying.spawn(call.answer.reply(ok, data))
            return
        await call.answer.reply(ok, data)

    # --- frames from hosts ------------------------------------------------------------------

    async def on_answer(self, p: Participant, call_id: Any, ok: bool, data: dict[str, Any]) -> None:
        call = self.calls.get(call_id) if isinstance(call_id, str) else None
        if call is None or call.host is not p:
            logger.debug("ignoring answer %r from %s: no such call", call_id, p.id)
            return
        if not ok and not isinstance(data.get("details", {}), dict):
            data = {**data, "details": {"value": data.get("details")}}
        await self._finish(call, ok, data, from_host=True)

    async def on_progress(self, p: Participant, call_id: str, data: dict[str, Any]) -> None:
        call = self.calls.get(call_id)
        if call is not None and call.host is p:
            await call.answer.progress(data)

    # --- membership -------------------------------------------------------------------------

    def forget(self, p: Participant, toolkit: str) -> None:
        self.load.pop((p.id, toolkit), None)
        self._last_used.pop((p.id, toolkit), None)

    async def participant_left(self, p: Participant) -> None:
        """Fail the calls ``p`` was serving and cancel the ones it was waiting for."""
        for call in [c for c in self.calls.values() if c.host is p]:
            await self._finish(
                call,
                False,
                RoomError(
                    ErrorCode.UNAVAILABLE,
                    f"the host of {call.toolkit}.{call.tool} left the room mid-call",
                ).to_data(),
            )
        for call in [c for c in self.calls.values() if c.answer.caller is p]:
            await self.cancel(call, "the caller left the room")
