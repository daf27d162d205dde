"""The message table: every frame type the room and its clients exchange, in one place.

Each type has one model for its ``data``, a kind that says who sends it and whether it
is answered, and the grant a token needs to send it. The room server routes and checks
grants from this table, :class:`~taskroom.host.client.room_client.RoomClient` validates
what it receives with it, and ``docs/protocol.md`` is rendered from it
(``python -m taskroom.host.protocol.reference``).
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from taskroom.host.protocol.checkpoint import TaskCheckpoint
from taskroom.host.protocol.errors import ErrorCode, RoomError
from taskroom.host.protocol.frames import (
    ERROR,
    RESPONSE,
    Frame,
    describe_validation,
    parse_data,
)
from taskroom.host.protocol.messages import (
    Answer,
    CallId,
    Dismiss,
    Empty,
    ErrorData,
    ParticipantInfo,
    RoomDismissed,
    RoomReady,
    SchemaChanged,
    SchemaName,
    SchemaPut,
    ServiceCall,
    ServiceName,
    ServiceRegistration,
    ToolCallRequest,
    ToolCancel,
    ToolkitInstance,
    ToolkitName,
    ToolkitsList,
    ToolkitSpec,
    ToolkitUnregistered,
    ToolProgress,
    ToolsInvoke,
)
from taskroom.host.protocol.tasks import (
    TaskCancel,
    TaskList,
    TaskProgress,
    TaskRef,
    TaskStart,
    TaskSubscribe,
    TaskUpdated,
    TaskWait,
)

Kind = Literal["request", "event", "host", "answer"]
"""``request``: participant to room, with an id, answered by ``response`` or ``error``.
``event``: room to participants, no id. ``host``: between the room and the participant
hosting a toolkit (``tool.call`` is a request from the room whose id is the call id).
``answer``: ``response`` and ``error``."""


@dataclass(frozen=True)
class MessageSpec:
    """One frame type: its data model, kind, required grant and a one-line summary."""

    type: str
    model: builtins.type[BaseModel]
    kind: Kind
    grant: str | None = None
    summary: str = ""
    answer: str = ""
    """For a request, the fields of its ``response`` (shown in the reference)."""


def _specs(*specs: MessageSpec) -> dict[str, MessageSpec]:
    return {s.type: s for s in specs}


MESSAGES: dict[str, MessageSpec] = _specs(
    # --- requests: participant → room ---
    MessageSpec("ping", Empty, "request", None, "Check the connection.", '`{"pong": true}`'),
    MessageSpec(
        "participants.list",
        Empty,
        "request",
        None,
        "Everyone in the room.",
        '`{"participants": [ParticipantInfo]}`',
    ),
    MessageSpec(
        "toolkits.register",
        ToolkitSpec,
        "request",
        "toolkits.register",
        "Host a toolkit; calls to it arrive as `tool.call`.",
        '`{"name", "participant_id"}`',
    ),
    MessageSpec(
        "toolkits.unregister",
        ToolkitName,
        "request",
        None,
        "Stop hosting a toolkit.",
        '`{"name"}`',
    ),
    MessageSpec(
        "toolkits.list",
        ToolkitsList,
        "request",
        None,
        "The toolkit instances you can see, optionally filtered.",
        '`{"toolkits": [{"participant_id", "participant_name", "toolkit": ToolkitSpec}]}`',
    ),
    MessageSpec(
        "tools.invoke",
        ToolsInvoke,
        "request",
        "tools.call",
        "Call a tool; progress arrives as `tool.progress` with your request id.",
        '`{"result", "usage"?, "task_id"?}`',
    ),
    MessageSpec(
        "tools.cancel",
        CallId,
        "request",
        None,
        "Cancel a call you made; its host gets `tool.cancel`.",
        '`{"call_id", "cancelled": true}`',
    ),
    MessageSpec(
        "schemas.put",
        SchemaPut,
        "request",
        "schemas.write",
        "Create or replace a named JSON Schema.",
        '`{"name", "action": "created" | "updated"}`',
    ),
    MessageSpec("schemas.get", SchemaName, "request", None, "One schema.", '`{"name", "schema"}`'),
    MessageSpec(
        "schemas.list",
        Empty,
        "request",
        None,
        "Every schema.",
        '`{"schemas": [{"name", "schema"}]}`',
    ),
    MessageSpec(
        "schemas.remove",
        SchemaName,
        "request",
        "schemas.write",
        "Remove a schema.",
        '`{"name", "action": "removed"}`',
    ),
    MessageSpec(
        "room.call",
        ServiceCall,
        "request",
        "room.call",
        "Call an agent of a registered service in: the room mints its short-lived token "
        "and posts a signed, single-use webhook.",
        'the service\'s answer, e.g. `{"participant_id", "identity"}`',
    ),
    MessageSpec(
        "token.refresh",
        Empty,
        "request",
        "token.refresh",
        "A fresh short-lived token for this connection's identity (agents called in).",
        '`{"token", "expires_at"}`',
    ),
    MessageSpec(
        "services.list",
        Empty,
        "request",
        "room.call",
        "The services agents can be called in from (URLs only for admins).",
        '`{"services": [...]}`',
    ),
    MessageSpec(
        "services.register",
        ServiceRegistration,
        "request",
        "services.admin",
        "Add or update a service in the room server's registry.",
        '`{"name", "action"}`',
    ),
    MessageSpec(
        "services.remove",
        ServiceName,
        "request",
        "services.admin",
        "Remove a service from the registry.",
        '`{"name", "action": "removed"}`',
    ),
    MessageSpec(
        "room.dismiss",
        Dismiss,
        "request",
        "room.call",
        "Dismiss an agent or tool host; it gets `room.dismissed`.",
        '`{"participant_id", "name", "dismissed": true}`',
    ),
    MessageSpec(
        "tasks.start",
        TaskStart,
        "request",
        "tasks.start",
        "Start a task, or one per model as a read_only batch; answers at once, or with "
        "`wait` once they have finished (or `wait` seconds have passed).",
        '`{"task_ids", "batch_id", "tasks"}`; with `wait` also `"timed_out", "done"`',
    ),
    MessageSpec(
        "tasks.get",
        TaskRef,
        "request",
        None,
        "A task's snapshot with its latest events.",
        "task snapshot with `events` and `poll_interval`",
    ),
    MessageSpec(
        "tasks.result",
        TaskRef,
        "request",
        None,
        "A finished task's outcome (`conflict` while it runs).",
        '`{"task_id", "status", "result", "error", "usage"}`',
    ),
    MessageSpec(
        "tasks.wait",
        TaskWait,
        "request",
        None,
        "Wait for a task or a batch to finish, up to `timeout` seconds.",
        '`{"timed_out", "done", "tasks"}`',
    ),
    MessageSpec(
        "tasks.cancel",
        TaskCancel,
        "request",
        None,
        "Cancel a task, a batch, or the tasks of your own `tasks.start` still waiting.",
        '`{"cancelled": [task ids]}`',
    ),
    MessageSpec(
        "tasks.list",
        TaskList,
        "request",
        None,
        "Your tasks (every task with `tasks.all`), newest first.",
        '`{"tasks", "next_before"}`',
    ),
    MessageSpec(
        "tasks.subscribe",
        TaskSubscribe,
        "request",
        None,
        "Receive `task.updated` and `task.progress` for tasks you can see.",
        '`{"subscribed": true}`',
    ),
    MessageSpec(
        "tasks.unsubscribe",
        TaskSubscribe,
        "request",
        None,
        "Stop receiving task events.",
        '`{"subscribed": false}`',
    ),
    MessageSpec(
        "tasks.checkpoint",
        TaskCheckpoint,
        "request",
        "toolkits.register",
        "Keep where the task you are serving has got to (its runner's last turn); "
        "only its serving participant may.",
        '`{"task_id", "turn"}`',
    ),
    MessageSpec(
        "tasks.resume",
        TaskRef,
        "request",
        "toolkits.register",
        "The last checkpoint of the task you are serving (a re-queued attempt resumes "
        "from it); only its serving participant may.",
        '`{"task_id", "checkpoint": TaskCheckpoint | null}`',
    ),
    # --- events: room → participants ---
    MessageSpec(
        "room.ready", RoomReady, "event", None, "The first frame on an accepted connection."
    ),
    MessageSpec("participant.joined", ParticipantInfo, "event", None, "Someone joined."),
    MessageSpec("participant.left", ParticipantInfo, "event", None, "Someone left."),
    MessageSpec(
        "toolkit.registered",
        ToolkitInstance,
        "event",
        None,
        "A toolkit instance was registered (sent to those who can see it).",
    ),
    MessageSpec(
        "toolkit.unregistered",
        ToolkitUnregistered,
        "event",
        None,
        "A toolkit instance is gone (sent to those who could see it).",
    ),
    MessageSpec("schema.changed", SchemaChanged, "event", None, "A schema was put or removed."),
    MessageSpec("task.updated", TaskUpdated, "event", None, "A subscribed task changed status."),
    MessageSpec(
        "task.progress", TaskProgress, "event", None, "A subscribed task reported progress."
    ),
    MessageSpec(
        "room.dismissed",
        RoomDismissed,
        "event",
        None,
        "You are dismissed; the room closes the socket with code 4001.",
    ),
    # --- host: room ↔ the participant hosting a toolkit ---
    MessageSpec(
        "tool.call",
        ToolCallRequest,
        "host",
        None,
        "Room → host: serve this call; answer its id with `response` or `error`.",
    ),
    MessageSpec(
        "tool.cancel",
        ToolCancel,
        "host",
        None,
        "Room → host: stop serving this call (cancelled, deadline passed, caller left).",
    ),
    MessageSpec(
        "tool.progress",
        ToolProgress,
        "host",
        None,
        "Host → room: progress of a call; the room forwards it to the caller.",
    ),
    # --- answers ---
    MessageSpec(RESPONSE, Answer, "answer", None, "The answer to the request with this id."),
    MessageSpec(ERROR, ErrorData, "answer", None, "The request with this id failed."),
)


def model_for(type_: str) -> type[BaseModel] | None:
    """The data model of a frame type, or None for a type the protocol does not have."""
    spec = MESSAGES.get(type_)
    return spec.model if spec is not None else None


def grant_for(type_: str) -> str | None:
    """The grant a token needs to send ``type_`` (None: any participant may)."""
    spec = MESSAGES.get(type_)
    return spec.grant if spec is not None else None


def request_types() -> list[str]:
    """Every type a participant can send as a request, in table order."""
    return [s.type for s in MESSAGES.values() if s.kind == "request"]


def decode_data(frame: Frame) -> BaseModel:
    """Validate a frame's data with its type's model; a precise RoomError otherwise."""
    spec = MESSAGES.get(frame.type)
    if spec is None:
        raise RoomError(
            ErrorCode.INVALID_REQUEST,
            f"unknown message type {frame.type!r}",
            {"known": sorted(MESSAGES)},
        )
    return parse_data(spec.model, frame)


def request_data(type_: str, **fields: Any) -> dict[str, Any]:
    """A request's data built through its model, so a mistake fails here, not at the room.

    Only the fields given (and not None) are sent; the room fills in the defaults.
    """
    spec = MESSAGES[type_]
    given = {k: v for k, v in fields.items() if v is not None}
    try:
        model = spec.model.model_validate(given)
    except ValidationError as exc:
        raise RoomError(
            ErrorCode.INVALID_REQUEST, f"invalid {type_!r} data: {describe_validation(exc)}"
        ) from None
    return model.model_dump(mode="json", by_alias=True, exclude_unset=True)
