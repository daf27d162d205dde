"""One room: participants, toolkits, schemas and the routing of tool calls between them."""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from taskroom.host import protocol
from taskroom.host.protocol import ErrorCode, Frame, RoomError
from taskroom.host.protocol.messages import (
    REQUEST_MODELS,
    CallId,
    ParticipantInfo,
    SchemaName,
    SchemaPut,
    ToolkitInstance,
    ToolkitName,
    ToolkitsList,
    ToolkitSpec,
    ToolProgress,
    ToolsInvoke,
)
from taskroom.host.server.calls import PendingCall, Progress, Reply
from taskroom.host.server.participant import Participant
from taskroom.toolkits.toolkit import check_schema

logger = logging.getLogger(__name__)

DEFAULT_CALL_TIMEOUT = 120.0

Handler = Callable[[Participant, Any, Frame], Awaitable[dict[str, Any] | None]]


@dataclass
class CallOrigin:
    """Where a call comes from, as the room derives it (never from the caller's frame)."""

    on_behalf_of: ParticipantInfo | None = None
    chain: list[str] = field(default_factory=list)
    task_id: str | None = None
    read_only: bool = False


InvokeHook = Callable[[Participant, ToolsInvoke, Frame, CallOrigin], Awaitable[bool]]
"""May take over a ``tools.invoke`` (returning True), e.g. to record agent runs as tasks."""

NO_REPLY = None
"""A handler returning None answers later itself (tool calls, waits)."""

REQUIRED_GRANTS: dict[str, str] = {
    "toolkits.register": "toolkits.register",
    "tools.invoke": "tools.call",
    "schemas.put": "schemas.write",
    "schemas.remove": "schemas.write",
    "room.call": "room.call",
    "room.dismiss": "room.call",
}


class Room:
    """State and routing for one named room. All methods run on the server's loop."""

    def __init__(self, name: str, *, max_frame_bytes: int = protocol.MAX_FRAME_BYTES) -> None:
        self.name = name
        self.max_frame_bytes = max_frame_bytes
        self.participants: dict[str, Participant] = {}
        self.toolkits: dict[str, dict[str, ToolkitSpec]] = {}
        self.schemas: dict[str, dict[str, Any]] = {}
        self.calls: dict[str, PendingCall] = {}
        self.load: dict[tuple[str, str], int] = {}
        self.read_only_serving: dict[str, int] = {}
        """Read-only calls each participant is serving: its untagged calls are read_only too."""
        self._order = itertools.count()
        self._last_used: dict[tuple[str, str], int] = {}
        self.handlers: dict[str, tuple[type[BaseModel], Handler, bool]] = {}
        self.grants = dict(REQUIRED_GRANTS)
        self.leave_hooks: list[Callable[[Participant], Awaitable[None]]] = []
        self.register_hooks: list[Callable[[Participant, ToolkitSpec], Awaitable[None]]] = []
        self.invoke_hooks: list[InvokeHook] = []
        self.close_hooks: list[Callable[[], Awaitable[None]]] = []
        self.tasks: Any = None
        """The room's TaskManager, when the server has tasks installed."""
        for type_, fn in {
            "ping": self._ping,
            "participants.list": self._participants_list,
            "toolkits.register": self._toolkits_register,
            "toolkits.unregister": self._toolkits_unregister,
            "toolkits.list": self._toolkits_list,
            "tools.invoke": self._tools_invoke,
            "tools.cancel": self._tools_cancel,
            "schemas.put": self._schemas_put,
            "schemas.get": self._schemas_get,
            "schemas.list": self._schemas_list,
            "schemas.remove": self._schemas_remove,
        }.items():
            self.handle(type_, REQUEST_MODELS[type_], fn)

    def handle(
        self,
        type_: str,
        model: type[BaseModel],
        fn: Handler,
        *,
        background: bool = False,
        grant: str | None = None,
    ) -> None:
        """Add a request type. ``background`` handlers may wait without blocking the
        connection's other frames."""
        self.handlers[type_] = (model, fn, background)
        if grant:
            self.grants[type_] = grant

    # --- membership -------------------------------------------------------------

    async def join(self, p: Participant) -> None:
        self.participants[p.id] = p
        await p.send(
            protocol.encode(
                "room.ready",
                {
                    "room": self.name,
                    "participant": p.info.model_dump(),
                    "participants": [q.info.model_dump() for q in self.participants.values()],
                    "toolkits": [i.model_dump() for i in self.visible_toolkits(p)],
                    "schemas": sorted(self.schemas),
                    "max_frame_bytes": self.max_frame_bytes,
                },
            )
        )
        await self.broadcast("participant.joined", p.info.model_dump(), exclude=p)

    async def leave(self, p: Participant) -> None:
        """Unregister everything ``p`` hosted and settle every call it was part of."""
        if self.participants.pop(p.id, None) is None:
            return
        p.online = False
        for call in [c for c in self.calls.values() if c.host is p]:
            await self._finish(
                call,
                False,
                RoomError(
                    ErrorCode.UNAVAILABLE,
                    f"the host of {call.toolkit}.{call.tool} left the room mid-call",
                ).to_data(),
            )
        for call in [c for c in self.calls.values() if c.caller_participant is p]:
            await self._cancel(call, "the caller left the room")
        for name in [n for n, hosts in self.toolkits.items() if p.id in hosts]:
            await self._unregister(p, name)
        for hook in self.leave_hooks:
            await hook(p)
        await self.broadcast("participant.left", p.info.model_dump())

    async def broadcast(
        self,
        type_: str,
        data: dict[str, Any],
        *,
        exclude: Participant | None = None,
        only: Callable[[Participant], bool] | None = None,
    ) -> None:
        text = protocol.encode(type_, data)
        for q in list(self.participants.values()):
            if q is not exclude and (only is None or only(q)):
                await q.send(text)

    # --- frames -------------------------------------------------------------------

    async def dispatch(self, p: Participant, frame: Frame) -> None:
        """Answer one frame from ``p``; every failure becomes an error frame."""
        if frame.type in (protocol.RESPONSE, protocol.ERROR):
            await self._host_answer(p, frame)
            return
        if frame.type == "tool.progress":
            await self._host_progress(p, frame)
            return
        entry = self.handlers.get(frame.type)
        if entry is None:
            await p.send(
                protocol.error(
                    frame.id,
                    ErrorCode.INVALID_REQUEST,
                    f"unknown message type {frame.type!r}",
                    {"known": sorted(self.handlers)},
                )
            )
            return
        model, fn, background = entry
        if background:
            asyncio.get_running_loop().create_task(self._run(p, frame, model, fn))
        else:
            await self._run(p, frame, model, fn)

    async def _run(self, p: Participant, frame: Frame, model: type[BaseModel], fn: Handler) -> None:
        try:
            grant = self.grants.get(frame.type)
            if grant and not p.allows(grant):
                raise RoomError(
                    ErrorCode.PERMISSION_DENIED,
                    f"{frame.type} needs the {grant!r} grant, which this token lacks",
                )
            data = protocol.parse_data(model, frame)
            result = await fn(p, data, frame)
        except RoomError as exc:
            await p.send(protocol.error(frame.id, exc.code, exc.message, exc.details))
            return
        except Exception as exc:  # a bug must not take the connection down
            logger.exception("handler for %s failed", frame.type)
            await p.send(protocol.error(frame.id, ErrorCode.FAILED, f"internal error: {exc}"))
            return
        if result is not NO_REPLY and frame.id is not None:
            await p.send(protocol.response(frame.id, result))

    # --- basic requests --------------------------------------------------------------

    async def _ping(self, p: Participant, _: Any, frame: Frame) -> dict[str, Any]:
        return {"pong": True}

    async def _participants_list(self, p: Participant, _: Any, frame: Frame) -> dict[str, Any]:
        return {"participants": [q.info.model_dump() for q in self.participants.values()]}

    # --- toolkits ------------------------------------------------------------------------

    def can_see(
        self, viewer: Participant | ParticipantInfo, host_id: str, spec: ToolkitSpec
    ) -> bool:
        if spec.public or viewer.id == host_id:
            return True
        if viewer.name in spec.allowed_callers or viewer.id in spec.allowed_callers:
            return True
        return isinstance(viewer, Participant) and viewer.allows("*")

    def visible_toolkits(
        self,
        viewer: Participant | ParticipantInfo,
        *,
        participant_id: str | None = None,
        participant_name: str | None = None,
        name: str | None = None,
    ) -> list[ToolkitInstance]:
        out = []
        for tk_name, hosts in self.toolkits.items():
            if name is not None and tk_name != name:
                continue
            for host_id, spec in hosts.items():
                host = self.participants.get(host_id)
                if host is None or (participant_id and host_id != participant_id):
                    continue
                if participant_name and host.name != participant_name:
                    continue
                if self.can_see(viewer, host_id, spec):
                    out.append(
                        ToolkitInstance(
                            participant_id=host_id, participant_name=host.name, toolkit=spec
                        )
                    )
        return out

    async def _toolkits_register(
        self, p: Participant, spec: ToolkitSpec, frame: Frame
    ) -> dict[str, Any]:
        for t in spec.tools:
            check_schema(t.input_schema, what=f"input schema of {spec.name}.{t.name}")
            if t.output_schema is not None:
                check_schema(t.output_schema, what=f"output schema of {spec.name}.{t.name}")
        names = [t.name for t in spec.tools]
        if len(set(names)) != len(names):
            raise RoomError(ErrorCode.INVALID_REQUEST, f"toolkit {spec.name!r} lists a tool twice")
        self.toolkits.setdefault(spec.name, {})[p.id] = spec
        self.load.setdefault((p.id, spec.name), 0)
        instance = ToolkitInstance(participant_id=p.id, participant_name=p.name, toolkit=spec)
        await self.broadcast(
            "toolkit.registered",
            instance.model_dump(),
            only=lambda q: self.can_see(q, p.id, spec),
        )
        for hook in self.register_hooks:
            await hook(p, spec)
        return {"name": spec.name, "participant_id": p.id}

    async def _toolkits_unregister(
        self, p: Participant, req: ToolkitName, frame: Frame
    ) -> dict[str, Any]:
        if p.id not in self.toolkits.get(req.name, {}):
            raise RoomError(ErrorCode.NOT_FOUND, f"you do not host a toolkit named {req.name!r}")
        await self._unregister(p, req.name)
        return {"name": req.name}

    async def _unregister(self, p: Participant, name: str) -> None:
        hosts = self.toolkits.get(name, {})
        spec = hosts.pop(p.id, None)
        if not hosts:
            self.toolkits.pop(name, None)
        self.load.pop((p.id, name), None)
        if spec is not None:
            await self.broadcast(
                "toolkit.unregistered",
                {"name": name, "participant_id": p.id},
                only=lambda q: self.can_see(q, p.id, spec),
            )

    async def _toolkits_list(
        self, p: Participant, req: ToolkitsList, frame: Frame
    ) -> dict[str, Any]:
        found = self.visible_toolkits(
            p,
            participant_id=req.participant_id,
            participant_name=req.participant_name,
            name=req.name,
        )
        return {"toolkits": [i.model_dump() for i in found]}

    # --- tool calls --------------------------------------------------------------------

    def pick_instance(
        self, viewer: Participant | ParticipantInfo, toolkit: str, participant_id: str | None = None
    ) -> tuple[Participant, ToolkitSpec]:
        """The visible instance with the fewest calls in flight (least recently used on ties)."""
        hosts = self.toolkits.get(toolkit, {})
        candidates = [
            (self.participants[hid], spec)
            for hid, spec in hosts.items()
            if hid in self.participants
            and (participant_id is None or hid == participant_id)
            and self.can_see(viewer, hid, spec)
        ]
        if not candidates:
            where = f" hosted by participant {participant_id}" if participant_id else ""
            raise RoomError(
                ErrorCode.NOT_FOUND,
                f"no toolkit named {toolkit!r}{where} is in room {self.name!r}",
                {"toolkit": toolkit},
            )
        return min(
            candidates,
            key=lambda c: (
                self.load.get((c[0].id, toolkit), 0),
                self._last_used.get((c[0].id, toolkit), -1),
            ),
        )

    async def start_call(
        self,
        *,
        caller: ParticipantInfo,
        toolkit: str,
        tool: str,
        arguments: dict[str, Any],
        reply: Reply,
        progress: Progress,
        viewer: Participant | ParticipantInfo | None = None,
        participant_id: str | None = None,
        timeout: float | None = None,
        on_behalf_of: ParticipantInfo | None = None,
        caller_participant: Participant | None = None,
        caller_ref: str | int | None = None,
        task_id: str | None = None,
        read_only: bool = False,
        chain: list[str] | None = None,
        host: Participant | None = None,
        check_read_only: bool = True,
    ) -> PendingCall:
        """Route a call to a host. The room is the only party that sets the caller."""
        if host is None:
            host, spec = self.pick_instance(viewer or caller, toolkit, participant_id)
        else:
            spec = self.toolkits.get(toolkit, {}).get(host.id)
            if spec is None:
                raise RoomError(ErrorCode.UNAVAILABLE, f"{host.id} no longer hosts {toolkit!r}")
        tool_spec = next((t for t in spec.tools if t.name == tool), None)
        if tool_spec is None:
            raise RoomError(
                ErrorCode.NOT_FOUND,
                f"toolkit {toolkit!r} has no tool {tool!r}",
                {"toolkit": toolkit, "tool": tool, "available": [t.name for t in spec.tools]},
            )
        if read_only and check_read_only and not tool_spec.annotations.read_only:
            raise RoomError(
                ErrorCode.PERMISSION_DENIED,
                f"{toolkit}.{tool} is not read_only and this task is read_only",
            )
        timeout = timeout or DEFAULT_CALL_TIMEOUT
        call = PendingCall(
            call_id="c_" + secrets.token_hex(8),
            toolkit=toolkit,
            tool=tool,
            host=host,
            caller=caller,
            on_behalf_of=on_behalf_of,
            reply=reply,
            progress=progress,
            caller_participant=caller_participant,
            caller_ref=caller_ref,
            task_id=task_id,
            read_only=read_only,
            chain=chain or [],
        )
        self.calls[call.call_id] = call
        key = (host.id, toolkit)
        self.load[key] = self.load.get(key, 0) + 1
        if read_only:
            self.read_only_serving[host.id] = self.read_only_serving.get(host.id, 0) + 1
        self._last_used[key] = next(self._order)
        loop = asyncio.get_running_loop()
        call.timer = loop.call_later(timeout, lambda: loop.create_task(self._expire(call, timeout)))
        await host.send(
            protocol.encode("tool.call", call.wire_data(arguments, timeout), call.call_id)
        )
        return call

    async def _tools_invoke(self, p: Participant, req: ToolsInvoke, frame: Frame) -> None:
        if frame.id is None:
            raise RoomError(ErrorCode.INVALID_REQUEST, "tools.invoke needs an id")
        origin = CallOrigin()
        if req.parent_call_id is not None:
            parent = self.calls.get(req.parent_call_id)
            if parent is None or parent.host is not p:
                raise RoomError(
                    ErrorCode.PERMISSION_DENIED,
                    f"{req.parent_call_id!r} is not a call you are serving",
                )
            origin = CallOrigin(
                on_behalf_of=parent.on_behalf_of or parent.caller,
                chain=[*parent.chain, parent.call_id],
                task_id=parent.task_id,
                read_only=parent.read_only,
            )
        elif self.read_only_serving.get(p.id):
            # A host serving a read_only task cannot escape it by leaving out parent_call_id.
            origin.read_only = True
        for hook in self.invoke_hooks:
            if await hook(p, req, frame, origin):
                return NO_REPLY
        ref = frame.id

        async def reply(ok: bool, data: dict[str, Any]) -> None:
            if ok:
                await p.send(protocol.response(ref, data))
            else:
                await p.send(protocol.encode(protocol.ERROR, data, ref))

        async def progress(data: dict[str, Any]) -> None:
            await p.send(protocol.encode("tool.progress", {"call_id": ref, "data": data}))

        await self.start_call(
            caller=p.info,
            viewer=p,
            toolkit=req.toolkit,
            tool=req.tool,
            arguments=req.arguments,
            participant_id=req.participant_id,
            timeout=req.timeout,
            on_behalf_of=origin.on_behalf_of,
            reply=reply,
            progress=progress,
            caller_participant=p,
            caller_ref=ref,
            task_id=origin.task_id,
            read_only=origin.read_only,
            chain=origin.chain,
        )
        return NO_REPLY

    async def _tools_cancel(self, p: Participant, req: CallId, frame: Frame) -> dict[str, Any]:
        call = next(
            (
                c
                for c in self.calls.values()
                if c.caller_participant is p and c.caller_ref == req.call_id
            ),
            None,
        )
        if call is None:
            raise RoomError(ErrorCode.NOT_FOUND, f"no call {req.call_id!r} of yours is in flight")
        await self._cancel(call, "cancelled by the caller")
        return {"call_id": req.call_id, "cancelled": True}

    async def cancel_call(self, call: PendingCall, reason: str) -> None:
        await self._cancel(call, reason)

    async def _cancel(self, call: PendingCall, reason: str) -> None:
        if call.done:
            return
        await call.host.send(
            protocol.encode("tool.cancel", {"call_id": call.call_id, "reason": reason})
        )
        await self._finish(call, False, RoomError(ErrorCode.CANCELLED, reason).to_data())

    async def _expire(self, call: PendingCall, timeout: float) -> None:
        if call.done:
            return
        await call.host.send(
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

    async def _finish(self, call: PendingCall, ok: bool, data: dict[str, Any]) -> None:
        if call.done:
            return
        call.done = True
        self.calls.pop(call.call_id, None)
        if call.timer is not None:
            call.timer.cancel()
        key = (call.host.id, call.toolkit)
        if key in self.load:
            self.load[key] = max(0, self.load[key] - 1)
        if call.read_only:
            left = self.read_only_serving.get(call.host.id, 0) - 1
            if left > 0:
                self.read_only_serving[call.host.id] = left
            else:
                self.read_only_serving.pop(call.host.id, None)
        await call.reply(ok, data)

    async def _host_answer(self, p: Participant, frame: Frame) -> None:
        call = self.calls.get(frame.id) if isinstance(frame.id, str) else None
        if call is None or call.host is not p:
            logger.debug("ignoring answer %r from %s: no such call", frame.id, p.id)
            return
        await self._finish(call, frame.type == protocol.RESPONSE, frame.data)

    async def _host_progress(self, p: Participant, frame: Frame) -> None:
        try:
            msg = protocol.parse_data(ToolProgress, frame)
        except RoomError as exc:
            await p.send(protocol.error(frame.id, exc.code, exc.message))
            return
        call = self.calls.get(msg.call_id)
        if call is not None and call.host is p:
            await call.progress(msg.data)

    # --- schemas -------------------------------------------------------------------------

    async def _schemas_put(self, p: Participant, req: SchemaPut, frame: Frame) -> dict[str, Any]:
        check_schema(req.schema_, what=f"schema {req.name!r}")
        action = "updated" if req.name in self.schemas else "created"
        self.schemas[req.name] = req.schema_
        await self.broadcast("schema.changed", {"name": req.name, "action": action})
        return {"name": req.name, "action": action}

    async def _schemas_get(self, p: Participant, req: SchemaName, frame: Frame) -> dict[str, Any]:
        if req.name not in self.schemas:
            raise RoomError(
                ErrorCode.NOT_FOUND, f"no schema named {req.name!r} in room {self.name!r}"
            )
        return {"name": req.name, "schema": self.schemas[req.name]}

    async def _schemas_list(self, p: Participant, _: Any, frame: Frame) -> dict[str, Any]:
        return {"schemas": [{"name": n, "schema": s} for n, s in sorted(self.schemas.items())]}

    async def _schemas_remove(
        self, p: Participant, req: SchemaName, frame: Frame
    ) -> dict[str, Any]:
        if self.schemas.pop(req.name, None) is None:
            raise RoomError(
                ErrorCode.NOT_FOUND, f"no schema named {req.name!r} in room {self.name!r}"
            )
        await self.broadcast("schema.changed", {"name": req.name, "action": "removed"})
        return {"name": req.name, "action": "removed"}
