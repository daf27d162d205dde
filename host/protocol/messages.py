"""Typed data of every protocol message, shared by the room server and its clients.

Request types map to one model each in :data:`REQUEST_MODELS`; the room rejects a type
it does not know, and data that does not fit the model, with ``invalid_request``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ANY_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}
NAME_PATTERN = r"^[A-Za-z0-9_.\-]+$"


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParticipantInfo(BaseModel):
    """A participant as the room sees it; identity and role come from its token."""

    id: str
    name: str
    role: str
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
    input_schema: dict[str, Any] = Field(default_factory=lambda: dict(ANY_OBJECT))
    output_schema: dict[str, Any] | None = None
    annotations: ToolAnnotations = Field(default_factory=ToolAnnotations)


class ToolkitSpec(_Message):
    """A toolkit registration. ``metadata`` carries agent facts (kind, labels, ...)."""

    name: str = Field(min_length=1, max_length=128, pattern=NAME_PATTERN)
    title: str | None = None
    description: str = ""
    public: bool = True
    allowed_callers: list[str] = Field(default_factory=list)
    tools: list[ToolSpec] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


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
    participant_id: str | None = None
    timeout: float | None = Field(default=None, gt=0, le=86_400)
    parent_call_id: str | None = None


class CallId(_Message):
    call_id: str | int


class ToolProgress(_Message):
    call_id: str
    data: dict[str, Any] = Field(default_factory=dict)


class SchemaPut(_Message):
    name: str = Field(min_length=1, max_length=128, pattern=NAME_PATTERN)
    schema_: dict[str, Any] = Field(alias="schema")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SchemaName(_Message):
    name: str = Field(min_length=1, max_length=128)


class RoomCall(_Message):
    """Ask the room to call an agent in: it mints a token and posts a signed webhook."""

    name: str = Field(min_length=1, max_length=128)
    url: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)
    role: Literal["agent", "tool"] = "agent"


class Dismiss(_Message):
    participant_id: str


REQUEST_MODELS: dict[str, type[BaseModel]] = {
    "ping": Empty,
    "participants.list": Empty,
    "toolkits.register": ToolkitSpec,
    "toolkits.unregister": ToolkitName,
    "toolkits.list": ToolkitsList,
    "tools.invoke": ToolsInvoke,
    "tools.cancel": CallId,
    "schemas.put": SchemaPut,
    "schemas.get": SchemaName,
    "schemas.list": Empty,
    "schemas.remove": SchemaName,
    "room.call": RoomCall,
    "room.dismiss": Dismiss,
}
