"""Progress events: what an agent reports while it works, as one typed union.

A task runner sends these as the ``data`` of ``tool.progress`` frames; the room stores
them and pushes them as ``task.progress``. Each built-in kind has its own model, tagged
by ``kind``. Kinds are named apart from frame types (``tool.started``, not
``tool.call``), so an event is never mistaken for a frame. Agents may send events of
their own: any other kind parses as :class:`AgentMessage`, with its data kept as sent.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError


class _Progress(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LLMTurn(_Progress):
    """The agent sends the model one turn of the conversation."""

    kind: Literal["llm.turn"] = "llm.turn"
    turn: int = Field(ge=1, description="1 for the first turn of this run")
    model: str | None = Field(default=None, description="None for the adapter's default")


class LLMAnswer(_Progress):
    """The model gave its final answer."""

    kind: Literal["llm.answer"] = "llm.answer"
    turn: int = Field(ge=1)
    chars: int = Field(ge=0, description="length of the answer's text")


class ToolStarted(_Progress):
    """The agent starts a tool call the model asked for."""

    kind: Literal["tool.started"] = "tool.started"
    toolkit: str
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolResult(_Progress):
    """A tool call the agent made has ended."""

    kind: Literal["tool.result"] = "tool.result"
    toolkit: str
    tool: str
    ok: bool
    preview: str | None = Field(default=None, description="the start of the result's text")
    error: str | None = Field(default=None, description="what went wrong, when not ok")


class ToolRefused(_Progress):
    """A tool call the model asked for failed: no such tool, arguments that are not JSON,
    or the tool itself raised (then ``toolkit`` names its toolkit). The model is told."""

    kind: Literal["tool.error"] = "tool.error"
    toolkit: str | None = Field(default=None, description="set when the tool was found")
    tool: str
    error: str


class NestedProgress(_Progress):
    """A progress event of a remote tool (often another agent) this agent is calling."""

    kind: Literal["tool.nested"] = "tool.nested"
    toolkit: str
    tool: str
    event: dict[str, Any] = Field(description="the remote tool's own progress event")


class OutputInvalid(_Progress):
    """The final answer broke the output schema; the agent asks the model again."""

    kind: Literal["output.invalid"] = "output.invalid"
    attempt: int = Field(ge=1)
    error: str


class AgentMessage(BaseModel):
    """An event of the agent's own: any other kind, with free data (``message``,
    ``text`` or ``status`` are shown as the event's line)."""

    model_config = ConfigDict(extra="allow")

    kind: str | None = None
    message: str | None = None
    text: str | None = None
    status: str | None = None


BUILT_IN: dict[str, type[BaseModel]] = {
    model.model_fields["kind"].default: model
    for model in (
        LLMTurn,
        LLMAnswer,
        ToolStarted,
        ToolResult,
        ToolRefused,
        NestedProgress,
        OutputInvalid,
    )
}
"""Built-in progress kinds and their models."""

CUSTOM = "custom"


def _tag(data: Any) -> str:
    kind = data.get("kind") if isinstance(data, dict) else getattr(data, "kind", None)
    return kind if kind in BUILT_IN else CUSTOM


ProgressEvent = Annotated[
    Annotated[LLMTurn, Tag("llm.turn")]
    | Annotated[LLMAnswer, Tag("llm.answer")]
    | Annotated[ToolStarted, Tag("tool.started")]
    | Annotated[ToolResult, Tag("tool.result")]
    | Annotated[ToolRefused, Tag("tool.error")]
    | Annotated[NestedProgress, Tag("tool.nested")]
    | Annotated[OutputInvalid, Tag("output.invalid")]
    | Annotated[AgentMessage, Tag(CUSTOM)],
    Discriminator(_tag),
]
"""One progress event: a built-in kind, else an :class:`AgentMessage`."""

_adapter: TypeAdapter[ProgressEvent] = TypeAdapter(ProgressEvent)


def parse_progress(data: Any) -> ProgressEvent | None:
    """The typed event for ``data``, or None when it is not an object or a built-in kind
    arrives malformed (an agent's own events always parse, as :class:`AgentMessage`)."""
    if not isinstance(data, dict):
        return None
    try:
        return _adapter.validate_python(data)
    except ValidationError:
        return None


def describe_event(data: dict[str, Any] | BaseModel) -> str:
    """One short line for a progress event, whatever agent emitted it."""
    event = data if isinstance(data, BaseModel) else parse_progress(data)
    match event:
        case LLMTurn(turn=turn, model=model):
            return f"model turn {turn} ({model or 'default model'})"
        case LLMAnswer(chars=chars):
            return f"answer received ({chars} chars)"
        case ToolStarted(toolkit=toolkit, tool=tool, arguments=arguments):
            return f"calling {toolkit}.{tool} {json.dumps(arguments)}"
        case ToolResult(toolkit=toolkit, tool=tool, ok=ok, error=error):
            return f"{toolkit}.{tool} " + ("done" if ok else f"failed: {error}")
        case ToolRefused(toolkit=toolkit, tool=tool, error=error):
            return f"tool {toolkit + '.' if toolkit else ''}{tool} failed: {error}"
        case NestedProgress(toolkit=toolkit, event=inner):
            return f"{toolkit} › {describe_event(inner)}"
        case OutputInvalid(attempt=attempt, error=error):
            return f"answer rejected (attempt {attempt}): {error}"
        case AgentMessage(kind=kind):
            for text in (event.message, event.text, event.status):
                if isinstance(text, str):
                    return text
            if kind:
                return kind
    raw = data.model_dump(mode="json") if isinstance(data, BaseModel) else data
    kind = raw.get("kind") if isinstance(raw, dict) else None
    return str(kind) if kind else json.dumps(raw, ensure_ascii=False, default=str)[:200]
