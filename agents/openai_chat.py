"""An adapter for the Chat Completions API, the one vLLM, Ollama, llama.cpp and LM Studio serve."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from taskroom.agents.adapter import FunctionSpec, LLMError, Turn, strict_schema
from taskroom.agents.chat_context import ChatContext, Message, ToolCallItem, ToolResultItem
from taskroom.agents.openai_client import OpenAICompatibleAdapter

logger = logging.getLogger(__name__)


def chat_messages(context: ChatContext) -> list[dict[str, Any]]:
    """The conversation as Chat Completions messages.

    Instructions become one system message; consecutive tool calls become one assistant
    message with ``tool_calls``, as the API expects for parallel calls.
    """
    messages: list[dict[str, Any]] = []
    if context.instructions:
        messages.append({"role": "system", "content": context.system_prompt})
    calls: list[dict[str, Any]] | None = None
    for item in context.items:
        if isinstance(item, ToolCallItem):
            if calls is None:
                calls = []
                messages.append({"role": "assistant", "content": None, "tool_calls": calls})
            calls.append(
                {
                    "id": item.call_id,
                    "type": "function",
                    "function": {"name": item.name, "arguments": item.arguments},
                }
            )
            continue
        calls = None
        if isinstance(item, Message):
            messages.append({"role": item.role, "content": item.content})
        elif isinstance(item, ToolResultItem):
            messages.append({"role": "tool", "tool_call_id": item.call_id, "content": item.output})
    return messages


def chat_tools(functions: Sequence[FunctionSpec]) -> list[dict[str, Any]]:
    """Function tools in the Chat Completions (nested) shape."""
    return [
        {
            "type": "function",
            "function": {
                "name": fn.name,
                "description": fn.description,
                "parameters": fn.parameters,
                "strict": strict_schema(fn.parameters),
            },
        }
        for fn in functions
    ]


class OpenAIChatCompletionsAdapter(OpenAICompatibleAdapter):
    """Drives a model through ``chat.completions``, for OpenAI-compatible local servers."""

    api_name = "Chat Completions API"

    async def complete(
        self,
        *,
        context: ChatContext,
        functions: Sequence[FunctionSpec],
        output_schema: dict[str, Any] | None,
        model: str,
    ) -> Turn:
        fields: dict[str, Any] = {"model": model, "messages": chat_messages(context)}
        if functions:
            fields["tools"] = chat_tools(functions)
            fields["parallel_tool_calls"] = self.parallel_tool_calls
        if output_schema is not None:
            fields["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": "output",
                    "schema": output_schema,
                    "strict": strict_schema(output_schema),
                },
            }
        response = await self._request(self.client.chat.completions.create, fields)

        usage = response.usage
        if usage is not None:
            context.usage.add(
                usage.prompt_tokens or 0, usage.completion_tokens or 0, usage.total_tokens or 0
            )
        else:
            context.usage.add()

        if not response.choices:
            raise LLMError(f"the Chat Completions API returned no choices for model {model!r}")
        choice = response.choices[0]
        message = choice.message
        # Some local servers omit call ids; the results must still pair with their calls.
        calls = [
            ToolCallItem(
                call.id or f"call_{len(context.items)}_{n}",
                call.function.name,
                call.function.arguments or "",
            )
            for n, call in enumerate(message.tool_calls or ())
            if call.type == "function"
        ]
        if calls:
            return Turn(tool_calls=calls)
        text = message.content or ""
        if not text and message.refusal:
            raise LLMError(f"the model refused to answer: {message.refusal}")
        if choice.finish_reason == "length":
            logger.warning("the answer from %s hit the token limit and may be cut short", model)
        return Turn(text=text)


OpenAICompletionsAdapter = OpenAIChatCompletionsAdapter
"""MeshAgent's name for the Chat Completions adapter."""
