"""The LLM adapter contract and the tool-calling loop every adapter shares.

An adapter subclass only says how to send one turn to its API (:meth:`LLMAdapter.complete`);
the loop, the concurrent tool calls, the tool-name mapping and the progress events live
here once, so a Responses and a Chat Completions adapter behave the same.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from taskroom.agents.chat_context import ChatContext, ToolCallItem, dumps
from taskroom.host.protocol.errors import TaskroomError
from taskroom.host.protocol.messages import ParticipantInfo
from taskroom.host.protocol.progress import LLMAnswer, LLMTurn, ToolRefused, ToolResult, ToolStarted
from taskroom.toolkits.context import ToolContext
from taskroom.toolkits.toolkit import Toolkit

if TYPE_CHECKING:
    from taskroom.agents.checkpoint import TaskCheckpoints
    from taskroom.toolkits.room import RoomConnection

logger = logging.getLogger(__name__)

EventSink = Callable[[dict[str, Any]], Awaitable[None]]

DEFAULT_MAX_TURNS = 16


class LLMError(TaskroomError):
    """The model could not produce an answer (API failure, too many turns)."""


class InvalidOutputError(LLMError):
    """The model's final answer is not valid JSON for the requested output schema."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(reason)
        self.text = text
        self.reason = reason


@dataclass
class FunctionSpec:
    """A tool as shown to the model: a provider-safe name and its JSON schema."""

    name: str
    description: str
    parameters: dict[str, Any]
    toolkit: Toolkit
    tool: str


@dataclass
class Turn:
    """One model answer: either tool calls to run, or final text."""

    text: str | None = None
    tool_calls: list[ToolCallItem] = field(default_factory=list)


class ToolResponseAdapter:
    """Turns tool results into the text a model reads, truncating huge ones with a notice."""

    def __init__(self, max_chars: int = 50_000) -> None:
        self.max_chars = max_chars

    async def to_text(self, *, result: Any) -> str:
        text = result if isinstance(result, str) else dumps(result)
        if len(text) > self.max_chars:
            dropped = len(text) - self.max_chars
            text = (
                text[: self.max_chars]
                + f"\n[truncated: {dropped} more characters were cut from this tool result]"
            )
        return text

    async def error_text(self, *, error: BaseException) -> str:
        message = getattr(error, "message", None) or str(error)
        return f"error: {type(error).__name__}: {message}"


_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def build_functions(toolkits: Sequence[Toolkit]) -> dict[str, FunctionSpec]:
    """Name each tool for the model: its own name when unique, else ``toolkit_tool``."""
    counts: dict[str, int] = {}
    for tk in toolkits:
        for name in tk.tools:
            counts[name] = counts.get(name, 0) + 1
    functions: dict[str, FunctionSpec] = {}
    for tk in toolkits:
        for name, tool in tk.tools.items():
            fname = name if counts[name] == 1 else f"{tk.name}_{name}"
            fname = _SAFE.sub("_", fname)[:64]
            while fname in functions:
                fname = fname[:60] + f"_{len(functions)}"
            functions[fname] = FunctionSpec(
                name=fname,
                description=tool.description or tool.spec.title or name,
                parameters=tool.input_schema,
                toolkit=tk,
                tool=name,
            )
    return functions


def strict_schema(schema: dict[str, Any]) -> bool:
    """Whether OpenAI's strict structured output accepts ``schema`` as it is.

    Strict mode needs every object closed (``additionalProperties: false``) with all its
    properties required; anything else is sent non-strict and validated locally.
    """

    def ok(node: Any) -> bool:
        if isinstance(node, list):
            return all(ok(n) for n in node)
        if not isinstance(node, dict):
            return True
        if node.get("type") == "object" or "properties" in node:
            props = node.get("properties", {})
            if node.get("additionalProperties", True) is not False:
                return False
            if set(node.get("required", [])) != set(props):
                return False
        for key in ("oneOf", "allOf", "not", "if", "patternProperties"):
            if key in node:
                return False
        return all(ok(v) for k, v in node.items() if k not in ("enum", "const", "default"))

    return schema.get("type") == "object" and ok(schema)


class LLMAdapter(ABC):
    """Drives a model through tool calls until it gives a final answer.

    ``next()`` is the one call a task runner makes: it returns the parsed JSON when an
    output schema is given, else the answer text. Output validation against the schema
    belongs to the runner, which can send failures back for repair.
    """

    def __init__(self, *, model: str, max_turns: int = DEFAULT_MAX_TURNS) -> None:
        self.model = model
        self.max_turns = max_turns

    def create_chat_context(self) -> ChatContext:
        return ChatContext()

    @abstractmethod
    async def complete(
        self,
        *,
        context: ChatContext,
        functions: Sequence[FunctionSpec],
        output_schema: dict[str, Any] | None,
        model: str,
    ) -> Turn:
        """Send the conversation once and return the model's turn (usage added to context)."""

    async def next(
        self,
        *,
        context: ChatContext,
        room: RoomConnection | None = None,
        toolkits: Sequence[Toolkit] = (),
        tool_adapter: ToolResponseAdapter | None = None,
        output_schema: dict[str, Any] | None = None,
        model: str | None = None,
        tool_context: ToolContext | None = None,
        on_event: EventSink | None = None,
        checkpoint: TaskCheckpoints | None = None,
    ) -> Any:
        tool_adapter = tool_adapter or ToolResponseAdapter()
        functions = build_functions(toolkits)
        model = model or self.model
        if tool_context is None:
            me = room.participant if room is not None and room.participant else None
            tool_context = ToolContext(
                caller=me or ParticipantInfo(id="local", name="local", role="agent"), room=room
            )

        async def emit(event: dict[str, Any]) -> None:
            if on_event is not None:
                await on_event(event)

        # Resuming from a checkpoint: first finish the tool calls of the last kept turn.
        resume = checkpoint.unanswered() if checkpoint is not None else []
        for turn_no in range(1, self.max_turns + 1):
            if resume:
                turn, resume = Turn(tool_calls=resume), []
            else:
                await emit(LLMTurn(turn=turn_no, model=model).model_dump(mode="json"))
                turn = await self.complete(
                    context=context,
                    functions=list(functions.values()),
                    output_schema=output_schema,
                    model=model,
                )
                for call in turn.tool_calls:
                    context.append_tool_call(call.call_id, call.name, call.arguments)
                if checkpoint is not None and turn.tool_calls:
                    await checkpoint.turn_done()
            if turn.tool_calls:

                def run(call: ToolCallItem) -> Awaitable[str]:
                    return self._run_tool(call, functions, tool_context, tool_adapter, emit)

                outputs = await asyncio.gather(
                    *(
                        checkpoint.run_tool(call, partial(run, call)) if checkpoint else run(call)
                        for call in turn.tool_calls
                    )
                )
                for call, output in zip(turn.tool_calls, outputs, strict=True):
                    context.append_tool_result(call.call_id, call.name, output)
                continue
            text = turn.text or ""
            context.append_assistant_message(text)
            await emit(LLMAnswer(turn=turn_no, chars=len(text)).model_dump(mode="json"))
            if output_schema is None:
                return text
            try:
                return json.loads(text)
            except ValueError as exc:
                raise InvalidOutputError(text, f"the answer is not valid JSON: {exc}") from None
        raise LLMError(f"the model gave no final answer within {self.max_turns} turns")

    async def _run_tool(
        self,
        call: ToolCallItem,
        functions: dict[str, FunctionSpec],
        tool_context: ToolContext,
        tool_adapter: ToolResponseAdapter,
        emit: EventSink,
    ) -> str:
        """Run one tool call; every failure becomes text the model can react to."""
        fn = functions.get(call.name)
        if fn is None:
            await emit(ToolRefused(tool=call.name, error="unknown tool").model_dump(mode="json"))
            return (
                f"error: there is no tool named {call.name!r}; "
                f"available tools: {', '.join(sorted(functions)) or 'none'}"
            )
        try:
            arguments = json.loads(call.arguments or "{}")
            if not isinstance(arguments, dict):
                raise ValueError("arguments must be a JSON object")
        except ValueError as exc:
            await emit(
                ToolRefused(tool=call.name, error="arguments not JSON").model_dump(mode="json")
            )
            return f"error: the arguments for {call.name} are not a JSON object: {exc}"
        await emit(
            ToolStarted(toolkit=fn.toolkit.name, tool=fn.tool, arguments=arguments).model_dump(
                mode="json"
            )
        )
        try:
            result = await fn.toolkit.execute(tool_context, fn.tool, arguments)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            text = await tool_adapter.error_text(error=exc)
            await emit(
                ToolResult(toolkit=fn.toolkit.name, tool=fn.tool, ok=False, error=text).model_dump(
                    mode="json"
                )
            )
            return text
        text = await tool_adapter.to_text(result=result)
        await emit(
            ToolResult(
                toolkit=fn.toolkit.name, tool=fn.tool, ok=True, preview=text[:200]
            ).model_dump(mode="json")
        )
        return text
