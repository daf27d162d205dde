"""In-process test models: LLM adapters with no HTTP, for fast unit tests of runners and tools.

Both implement :meth:`LLMAdapter.complete`, the one-turn seam, so the shared tool loop, the
tool-name mapping, progress events and the runners' output repair run exactly as they do
with the OpenAI adapters. :class:`TestModel` answers like the scripted server's auto mode;
:class:`FunctionModel` answers with whatever a Python function computes for each turn.
"""

from __future__ import annotations

import inspect
import itertools
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from taskroom.agents.adapter import FunctionSpec, LLMAdapter, LLMError, Turn
from taskroom.agents.chat_context import ChatContext, Message, ToolCallItem, ToolResultItem
from taskroom.agents.testing.sampler import auto_reply, estimate_tokens
from taskroom.agents.testing.steps import TextStep, ToolCallsStep

__all__ = ["FunctionModel", "Reply", "TestModel", "TurnFunction", "TurnInfo"]

Reply = Turn | TextStep | ToolCallsStep | str
"""What a turn function returns: a :class:`Turn`, a step (``text``, ``tool_calls``,
``json_output``...) or plain answer text."""


@dataclass(frozen=True)
class TurnInfo:
    """What the model is offered on this turn, besides the conversation."""

    functions: Sequence[FunctionSpec]
    output_schema: dict[str, Any] | None
    model: str

    def function(self, name: str) -> FunctionSpec:
        """The offered function called ``name``; raises ``KeyError`` naming the offered ones."""
        for fn in self.functions:
            if fn.name == name:
                return fn
        raise KeyError(f"no function {name!r} is offered (offered: {self.function_names})")

    @property
    def function_names(self) -> list[str]:
        return [fn.name for fn in self.functions]


TurnFunction = Callable[[ChatContext, TurnInfo], Reply | Awaitable[Reply]]


class _InProcessModel(LLMAdapter):
    """Turns replies into :class:`Turn` objects and counts usage as an API would."""

    def __init__(self, *, model: str, max_turns: int) -> None:
        super().__init__(model=model, max_turns=max_turns)
        self._call_ids = itertools.count(1)

    def _turn(self, context: ChatContext, reply: Reply) -> Turn:
        match reply:
            case Turn():
                turn = reply
            case str():
                turn = Turn(text=reply)
            case TextStep(content=content):
                turn = Turn(text=content)
            case ToolCallsStep(calls=calls):
                turn = Turn(
                    tool_calls=[
                        ToolCallItem(f"call_{next(self._call_ids)}", name, arguments)
                        for name, arguments in calls
                    ]
                )
            case _:
                raise TypeError(
                    f"a test model turn must be a Turn, a text or tool_calls step, or a str; "
                    f"got {type(reply).__name__}"
                )
        sent = [context.system_prompt, *(_item_text(item) for item in context.items)]
        answered = [turn.text, *((c.name, c.arguments) for c in turn.tool_calls)]
        context.usage.add(estimate_tokens(sent), estimate_tokens(answered))
        return turn


class TestModel(_InProcessModel):
    """Calls each offered tool once with arguments sampled from its schema, then answers.

    The answer is JSON sampled from the output schema (strings named ``result`` quote the
    prompt), or text when no schema is asked for. ``call_tools`` limits which offered
    functions are called (by the name the model sees).
    """

    __test__ = False  # a model, not a pytest test class

    def __init__(
        self,
        *,
        call_tools: Sequence[str] | Literal["all"] = "all",
        model: str = "test-model",
        max_turns: int = 16,
    ) -> None:
        super().__init__(model=model, max_turns=max_turns)
        self.call_tools = call_tools

    async def complete(
        self,
        *,
        context: ChatContext,
        functions: Sequence[FunctionSpec],
        output_schema: dict[str, Any] | None,
        model: str,
    ) -> Turn:
        called = {item.name for item in context.items if isinstance(item, ToolResultItem)}
        pending = {
            fn.name: fn.parameters
            for fn in functions
            if fn.name not in called and (self.call_tools == "all" or fn.name in self.call_tools)
        }
        try:
            reply = auto_reply(
                pending=pending, prompt=_last_user_text(context), output_schema=output_schema
            )
        except ValueError as exc:
            raise LLMError(f"the test model cannot sample a value for a schema: {exc}") from None
        return self._turn(context, reply)


class FunctionModel(_InProcessModel):
    """Each turn is ``function(context, info)``: sync or async, returning a :data:`Reply`.

    The function sees the whole conversation (tool results included) and the offered
    functions, so a test can script a model that reacts to what its tools returned.
    """

    def __init__(
        self, function: TurnFunction, *, model: str = "function-model", max_turns: int = 16
    ) -> None:
        super().__init__(model=model, max_turns=max_turns)
        self.function = function

    async def complete(
        self,
        *,
        context: ChatContext,
        functions: Sequence[FunctionSpec],
        output_schema: dict[str, Any] | None,
        model: str,
    ) -> Turn:
        reply = self.function(context, TurnInfo(list(functions), output_schema, model))
        if inspect.isawaitable(reply):
            reply = await reply
        return self._turn(context, reply)


def _last_user_text(context: ChatContext) -> str:
    for item in reversed(context.items):
        if isinstance(item, Message) and item.role == "user":
            return item.content
    return ""


def _item_text(item: Message | ToolCallItem | ToolResultItem) -> str:
    match item:
        case Message(content=content):
            return content
        case ToolCallItem(name=name, arguments=arguments):
            return json.dumps([name, arguments])
        case ToolResultItem(output=output):
            return output
