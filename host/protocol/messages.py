"""Typed data of the room's core messages, shared by the room server and its clients.

Each frame type maps to one of these models (or one in
:mod:`~taskroom.host.protocol.tasks`) in the message table,
:data:`taskroom.host.protocol.table.MESSAGES`; the room rejects a type it does not know,
and data that does not fit the model, with ``invalid_request``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from taskroom.host.protocol.errors import ErrorCode

ANY_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}
NAME_PATTERN = r"^[A-Za-z0-9_.\-]+$"


class _Message(BaseModel):
    """Data a participant sends: unknown fields are refused, so a typo is an error."""

    model_config = ConfigDict(extra="forbid")


class _Event(BaseModel):
    """Data the room sends: a client ignores fields a newer room may have added."""


class ParticipantInfo(BaseModel):
    """A participant as the room sees it; identity and role come from its token."""

    id: str = Field(description="assigned by the room when the participant joins")
    name: str = Field(description="the identity its token names")
    role: str = Field(description="user, agent, tool, admin or observer")
    attributes: dict[str, Any] = Field(default_factory=dict)
    online: bool = True


class ToolAnnotations(BaseModel):
    """Hints about a tool's effects; the room enforces ``read_only`` for read-only tasks."""

    model_config = ConfigDict(extra="allow")

    title: str | None = None
    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False


class ToolSpec(BaseModel):
    """What a room knows about a tool: enough to call it and to show it to a model."""

    name: str = Field(min_length=1, max_length=128, pattern=NAME_PATTERN)
    title: str | None = None
    description: str = ""
    input_schema: dict[str, Any] = Field(
        default_factory=lambda: dict(ANY_OBJECT), description="JSON Schema of the arguments"
    )
    output_schema: dict[str, Any] | None = Field(
        default=None, description="JSON Schema the result must fit"
    )
    annotations: ToolAnnotations = Field(default_factory=ToolAnnotations)


class ToolkitMetadata(BaseModel):
    """The metadata keys the room, its clients and Studio read, with the types they rely on.

    Checked strictly at registration, so a ``labels`` that is a string (or any other
    ill-typed well-known key) is refused there instead of breaking every reader later.
    Other keys pass through unchecked.
    """

    model_config = ConfigDict(extra="allow", strict=True)

    agent: bool = False
    kind: str | None = None
    title: str | None = None
    labels: list[str] = Field(default_factory=list)
    tool: str | None = Field(default=None, min_length=1, max_length=128, pattern=NAME_PATTERN)
    supports_tools: bool = False
    dynamic_output_schema: bool = False
    max_concurrency: int | None = Field(default=None, ge=1)
    requeue_safe: bool = False


class ToolkitSpec(_Message):
    """A toolkit registration. ``metadata`` carries agent facts (kind, labels, ...)."""

    name: str = Field(min_length=1, max_length=128, pattern=NAME_PATTERN)
    title: str | None = None
    description: str = ""
    public: bool = Field(
        default=True, description="false: only its host and allowed_callers see it"
    )
    allowed_callers: list[str] = Field(
        default_factory=list, description="identities or participant ids that may see it"
    )
    tools: list[ToolSpec] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(
        default_factory=dict, description='agent facts: "agent", "tool", "max_concurrency", ...'
    )

    @field_validator("metadata")
    @classmethod
    def _well_known_keys_are_typed(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            ToolkitMetadata.model_validate(value)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(part) for part in err["loc"])
            raise ValueError(f"metadata key {where!r}: {err['msg']}") from None
        return value


class ToolkitInstance(BaseModel):
    """A registered toolkit as listed: the spec plus the participant that hosts it."""

    participant_id: str
    participant_name: str
    toolkit: ToolkitSpec


# --- requests -----------------------------------------------------------------


class Empty(_Message):
    pass


class ToolkitName(_Message):
    name: str = Field(min_length=1, max_length=128)


class ToolkitsList(_Message):
    participant_id: str | None = None
    participant_name: str | None = None
    name: str | None = None


class ToolsInvoke(_Message):
    """Start a tool call. The room sets caller and on_behalf_of; the frame cannot."""

    toolkit: str = Field(min_length=1)
    tool: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)
    participant_id: str | None = Field(
        default=None, description="pin one instance; else the least-loaded one you can see"
    )
    timeout: float | None = Field(
        default=None, gt=0, le=86_400, description="seconds; the room's default is 120"
    )
    parent_call_id: str | None = Field(
        default=None, description="the call you are serving, to make this a nested call"
    )


class CallId(_Message):
    call_id: str | int = Field(description="the id of your `tools.invoke` frame")


class ToolProgress(_Message):
    """A progress event of a call in flight: host to room, and room to caller."""

    call_id: str | int = Field(
        description="the room's call id (from a host), or the caller's request id (to a caller)"
    )
    data: dict[str, Any] = Field(
        default_factory=dict, description="a progress event, see the progress kinds"
    )


class SchemaPut(_Message):
    name: str = Field(min_length=1, max_length=128, pattern=NAME_PATTERN)
    schema_: dict[str, Any] = Field(alias="schema")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SchemaName(_Message):
    name: str = Field(min_length=1, max_length=128)


SERVICE_NAME = r"^[A-Za-z0-9_.\-]{1,64}$"


class ServiceCall(_Message):
    """Call the agent ``agent`` of the registered service ``service`` into the room."""

    service: str = Field(pattern=SERVICE_NAME)
    agent: str = Field(min_length=1, max_length=128)
    """The identity the agent joins as, as its service declares it."""
    arguments: dict[str, Any] = Field(default_factory=dict)


class ServiceName(_Message):
    name: str = Field(pattern=SERVICE_NAME)


class ServiceRegistration(_Message):
    """A service the room may call agents in from (checked further by the server)."""

    name: str = Field(pattern=SERVICE_NAME)
    url: str = Field(min_length=1, max_length=2048)
    identities: list[str] | None = Field(default=None, max_length=256)
    allow_private: bool = False


class Dismiss(_Message):
    participant_id: str


# --- events ---------------------------------------------------------------------------


class RoomReady(_Event):
    """The first frame on an accepted connection: who you are and what the room holds."""

    room: str
    participant: ParticipantInfo = Field(description="you, as the room knows you")
    participants: list[ParticipantInfo] = Field(default_factory=list)
    toolkits: list[ToolkitInstance] = Field(
        default_factory=list, description="the toolkit instances you can see"
    )
    schemas: list[str] = Field(default_factory=list, description="names of the room's schemas")
    max_frame_bytes: int = Field(gt=0, description="the room's cap on one frame")


class ToolkitUnregistered(_Event):
    name: str
    participant_id: str = Field(description="the host the instance was on")


class SchemaChanged(_Event):
    name: str
    action: Literal["created", "updated", "removed"]


class RoomDismissed(_Event):
    """Sent before the room closes the socket with code 4001: do not reconnect."""

    reason: str


class ToolCallRequest(_Event):
    """A call the room routes to the host of a toolkit; the frame's id is ``call_id``."""

    call_id: str
    toolkit: str
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    caller: ParticipantInfo = Field(description="set by the room from the caller's token")
    on_behalf_of: ParticipantInfo | None = Field(
        default=None, description="the original caller of a nested call"
    )
    task_id: str | None = Field(default=None, description="the task this call belongs to")
    read_only: bool = Field(default=False, description="the call must not change anything")
    chain: list[str] = Field(default_factory=list, description="the call ids above this one")
    timeout: float | None = Field(default=None, description="seconds until the room gives up")


class ToolCancel(_Event):
    call_id: str
    reason: str = ""


# --- answers ----------------------------------------------------------------------------


class Answer(BaseModel):
    """A ``response``: its fields depend on the request it answers."""

    model_config = ConfigDict(extra="allow")


class ErrorData(_Event):
    code: ErrorCode
    message: str = Field(description="what went wrong, and what to do about it")
    details: dict[str, Any] = Field(default_factory=dict)
