"""One room: membership, the requests it answers, its schemas; calls go to the router."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel

from taskroom.host import protocol
from taskroom.host.protocol import ErrorCode, Frame, RoomError
from taskroom.host.protocol.messages import (
    CallId,
    SchemaName,
    SchemaPut,
    ToolkitInstance,
    ToolkitName,
    ToolkitsList,
    ToolkitSpec,
    ToolProgress,
    ToolsInvoke,
)
from taskroom.host.protocol.table import MESSAGES, grant_for
from taskroom.host.server.calls import Answer, CallTarget
from taskroom.host.server.participant import Participant
from taskroom.host.server.registry import MAX_NESTING, Registry, nesting_depth
from taskroom.host.server.router import CallRouter
from taskroom.toolkits.schemas import compile_off_loop

if TYPE_CHECKING:
    from taskroom.host.server.tasks.manager import TaskManager

logger = logging.getLogger(__name__)

Handler = Callable[[Participant, Any, Frame], Awaitable[dict[str, Any] | None]]

NO_REPLY = None
"""A handler returning None answers later itself (tool calls, waits)."""


class Room:
    """State and requests of one named room. All methods run on the server's loop."""

    def __init__(self, name: str, *, max_frame_bytes: int = protocol.MAX_FRAME_BYTES) -> None:
        self.name = name
        self.max_frame_bytes = max_frame_bytes
        self.registry = Registry(name)
        self.router = CallRouter(self.registry)
        self.schemas: dict[str, dict[str, Any]] = {}
        self.schema_owners: dict[str, str] = {}
        self.handlers: dict[str, tuple[type[BaseModel], Handler, bool]] = {}
        self.close_hooks: list[Callable[[], Awaitable[None]]] = []
        self.tasks: TaskManager | None = None
        """The room's task manager, when the server has tasks installed."""
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
            self.handle(type_, cast(Handler, fn))

    @property
    def participants(self) -> dict[str, Participant]:
        return self.registry.participants

    def handle(self, type_: str, fn: Handler, *, background: bool = False) -> None:
        """Answer a request type of the message table with ``fn``; its model and grant
        come from the table. ``background`` handlers may wait without blocking the
        connection's other frames."""
        spec = MESSAGES.get(type_)
        if spec is None or spec.kind != "request":
            raise ValueError(f"{type_!r} is not a request in the message table")
        self.handlers[type_] = (spec.model, fn, background)

    # --- membership -------------------------------------------------------------------

    async def join(self, p: Participant) -> None:
        self.participants[p.id] = p
        p.send(
            protocol.encode(
                "room.ready",
                {
                    "room": self.name,
                    "participant": p.info.model_dump(),
                    "participants": [i.model_dump() for i in self.registry.infos()],
                    "toolkits": [i.model_dump() for i in self.registry.listing(p.principal)],
                    "schemas": sorted(self.schemas),
                    "max_frame_bytes": self.max_frame_bytes,
                },
            )
        )
        self.notify(self._others(p), "participant.joined", p.info.model_dump())

    async def leave(self, p: Participant) -> None:
        """Unregister everything ``p`` hosted and settle every call it was part of."""
        if self.participants.pop(p.id, None) is None:
            return
        p.online = False
        await self.router.participant_left(p)
        for name in self.registry.hosted_by(p):
            self._unregister(p, name)
        if self.tasks is not None:
            await self.tasks.participant_left(p)
        self.notify(self.participants.values(), "participant.left", p.info.model_dump())

    def _still_here(self, p: Participant) -> None:
        """Refuse to change anything for a participant that left during an await."""
        if self.participants.get(p.id) is not p:
            raise RoomError(ErrorCode.UNAVAILABLE, f"{p.name!r} has left room {self.name!r}")

    def _others(self, p: Participant) -> list[Participant]:
        return [q for q in self.participants.values() if q is not p]

    def notify(self, targets: Any, type_: str, data: dict[str, Any]) -> None:
        """Send one event to each target, encoding it once."""
        text = protocol.encode(type_, data)
        for q in targets:
            q.send(text)

    # --- frames -------------------------------------------------------------------------

    async def dispatch(self, p: Participant, frame: Frame) -> None:
        """Answer one frame from ``p``; every failure becomes an error frame."""
        if frame.type in (protocol.RESPONSE, protocol.ERROR):
            await self.router.on_answer(p, frame.id, frame.type == protocol.RESPONSE, frame.data)
            return
        if frame.type == "tool.progress":
            try:
                msg = protocol.parse_data(ToolProgress, frame)
            except RoomError as exc:
                p.send(protocol.error(frame.id, exc.code, exc.message))
                return
            await self.router.on_progress(p, str(msg.call_id), msg.data)
            return
        entry = self.handlers.get(frame.type)
        if entry is None:
            p.send(
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
            grant = grant_for(frame.type)
            if grant and not p.allows(grant):
                raise RoomError(
                    ErrorCode.PERMISSION_DENIED,
                    f"{frame.type} needs the {grant!r} grant, which this token lacks",
                )
            data = protocol.parse_data(model, frame)
            result = await fn(p, data, frame)
        except RoomError as exc:
            p.send(protocol.error(frame.id, exc.code, exc.message, exc.details))
            return
        except RecursionError:
            p.send(
                protocol.error(
                    frame.id,
                    ErrorCode.INVALID_REQUEST,
                    f"{frame.type} data is nested too deeply to handle",
                )
            )
            return
        except Exception as exc:  # a bug must not take the connection down
            logger.exception("handler for %s failed", frame.type)
            p.send(protocol.error(frame.id, ErrorCode.FAILED, f"internal error: {exc}"))
            return
        if result is not NO_REPLY and frame.id is not None:
            p.send(protocol.response(frame.id, result))

    # --- basic requests ------------------------------------------------------------------

    async def _ping(self, p: Participant, _: Any, frame: Frame) -> dict[str, Any]:
        return {"pong": True}

    async def _participants_list(self, p: Participant, _: Any, frame: Frame) -> dict[str, Any]:
        return {"participants": [i.model_dump() for i in self.registry.infos()]}

    # --- toolkits ---------------------------------------------------------------------------

    async def _toolkits_register(
        self, p: Participant, spec: ToolkitSpec, frame: Frame
    ) -> dict[str, Any]:
        self.registry.check_registration(p, spec)
        for t in spec.tools:
            await compile_off_loop(t.input_schema, what=f"input schema of {spec.name}.{t.name}")
            if t.output_schema is not None:
                what = f"output schema of {spec.name}.{t.name}"
                await compile_off_loop(t.output_schema, what=what)
        # The schemas were checked off the loop: the room may have changed meanwhile.
        self._still_here(p)
        self.registry.check_registration(p, spec)
        self.registry.add(p, spec)
        self.router.load.setdefault((p.id, spec.name), 0)
        instance = ToolkitInstance(participant_id=p.id, participant_name=p.name, toolkit=spec)
        self.notify(self.registry.watchers(p.id, spec), "toolkit.registered", instance.model_dump())
        if self.tasks is not None:
            await self.tasks.instance_registered(spec)
        return {"name": spec.name, "participant_id": p.id}

    async def _toolkits_unregister(
        self, p: Participant, req: ToolkitName, frame: Frame
    ) -> dict[str, Any]:
        if p.id not in self.registry.toolkits.get(req.name, {}):
            raise RoomError(ErrorCode.NOT_FOUND, f"you do not host a toolkit named {req.name!r}")
        self._unregister(p, req.name)
        return {"name": req.name}

    def _unregister(self, p: Participant, name: str) -> None:
        spec = self.registry.remove(p, name)
        self.router.forget(p, name)
        if spec is not None:
            self.notify(
                self.registry.watchers(p.id, spec),
                "toolkit.unregistered",
                {"name": name, "participant_id": p.id},
            )

    async def _toolkits_list(
        self, p: Participant, req: ToolkitsList, frame: Frame
    ) -> dict[str, Any]:
        found = self.registry.listing(
            p.principal,
            participant_id=req.participant_id,
            participant_name=req.participant_name,
            name=req.name,
        )
        return {"toolkits": [i.model_dump() for i in found]}

    # --- tool calls -------------------------------------------------------------------------

    async def _tools_invoke(self, p: Participant, req: ToolsInvoke, frame: Frame) -> None:
        ref = frame.id
        if ref is None:
            raise RoomError(ErrorCode.INVALID_REQUEST, "tools.invoke needs an id")
        origin = self.router.origin_for(p, req.parent_call_id)
        target = CallTarget(req.toolkit, req.tool, req.participant_id)

        async def reply(ok: bool, data: dict[str, Any]) -> None:
            p.send(protocol.response(ref, data) if ok else protocol.encode("error", data, ref))

        async def progress(data: dict[str, Any]) -> None:
            p.send(protocol.encode("tool.progress", {"call_id": ref, "data": data}))

        answer = Answer(reply, progress, caller=p, ref=ref)
        if self.tasks is not None and self.router.is_agent_tool(req.toolkit, req.tool):
            # Running an agent records a task, whichever request does it.
            if not p.allows(grant_for("tasks.start") or "tasks.start"):
                raise RoomError(
                    ErrorCode.PERMISSION_DENIED,
                    f"calling {req.toolkit}.{req.tool} starts a task, which needs the "
                    "'tasks.start' grant; this token lacks it",
                )
            await self.tasks.start_direct(origin, target, req.arguments, answer, req.timeout)
            return NO_REPLY
        await self.router.start(origin, target, req.arguments, answer, timeout=req.timeout)
        return NO_REPLY

    async def _tools_cancel(self, p: Participant, req: CallId, frame: Frame) -> dict[str, Any]:
        await self.router.cancel_request(p, req.call_id)
        return {"call_id": req.call_id, "cancelled": True}

    # --- schemas ----------------------------------------------------------------------------

    def _own_schema(self, p: Participant, name: str) -> None:
        owner = self.schema_owners.get(name)
        if owner is not None and owner != p.name and not p.allows("*"):
            raise RoomError(
                ErrorCode.PERMISSION_DENIED,
                f"schema {name!r} belongs to {owner!r}; only its owner can change or remove it",
            )

    async def _schemas_put(self, p: Participant, req: SchemaPut, frame: Frame) -> dict[str, Any]:
        self._own_schema(p, req.name)
        if nesting_depth(req.schema_, MAX_NESTING) > MAX_NESTING:
            raise RoomError(
                ErrorCode.INVALID_REQUEST,
                f"schema {req.name!r} is nested deeper than {MAX_NESTING} levels",
            )
        await compile_off_loop(req.schema_, what=f"schema {req.name!r}")
        self._still_here(p)
        self._own_schema(p, req.name)
        action = "updated" if req.name in self.schemas else "created"
        self.schemas[req.name] = req.schema_
        self.schema_owners.setdefault(req.name, p.name)
        self.notify(
            self.participants.values(), "schema.changed", {"name": req.name, "action": action}
        )
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
        if req.name not in self.schemas:
            raise RoomError(
                ErrorCode.NOT_FOUND, f"no schema named {req.name!r} in room {self.name!r}"
            )
        self._own_schema(p, req.name)
        del self.schemas[req.name]
        self.schema_owners.pop(req.name, None)
        self.notify(
            self.participants.values(), "schema.changed", {"name": req.name, "action": "removed"}
        )
        return {"name": req.name, "action": "removed"}
