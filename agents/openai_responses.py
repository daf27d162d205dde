"""An adapter for OpenAI's Responses API (``client.responses.create``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from taskroom.agents.adapter import FunctionSpec, LLMError, Turn, strict_schema
from taskroom.agents.chat_context import ChatContext, Message, ToolCallItem, ToolResultItem
from taskroom.agents.openai_client import OpenAICompatibleAdapter

logger = logging.getLogger(__name__)


def responses_input(context: ChatContext) -> list[dict[str, Any]]:
    """The conversation as Responses input items."""
    items: list[dict[str, Any]] = []
    for item in context.items:
        if isinstance(item, Message):
            items.append({"type": "message", "role": item.role, "content": item.content})
        elif isinstance(item, ToolCallItem):
            items.append(
                {
                    "type": "function_call",
                    "call_id": item.call_id,
                    "name": item.name,
                    "arguments": item.arguments,
                }
            )
        elif isinstance(item, ToolResultItem):
            items.append(
                {"type": "function_call_output", "call_id": item.call_id, "output": item.output}
            )
    return items


def responses_tools(functions: Sequence[FunctionSpec]) -> list[dict[str, Any]]:
    """Function tools in the Responses (flat) shape."""
    return [
        {
            "type": "function",
            "name": fn.name,
            "description": fn.description,
            "parameters": fn.parameters,
            "strict": strict_schema(fn.parameters),
        }
        for fn in functions
    ]


class OpenAIResponsesAdapter(OpenAICompatibleAdapter):
    """Drives OpenAI models through the Responses API.

    The whole conversation is sent on every turn (no ``previous_response_id``), so any
    Responses-compatible server works and a task's context stays in the task.
    """

    api_name = "Responses API"

    async def complete(
        self,
        *,
        context: ChatContext,
        functions: Sequence[FunctionSpec],
        output_schema: dict[str, Any] | None,
        model: str,
    ) -> Turn:
        fields: dict[str, Any] = {"model": model, "input": responses_input(context)}
        if context.instructions:
            fields["instructions"] = context.system_prompt
        if functions:
            fields["tools"] = responses_tools(functions)
            fields["parallel_tool_calls"] = self.parallel_tool_calls
        if output_schema is not None:
            fields["text"] = {
                "format": {
                    "type": "json_schema",
                    "name": "output",
                    "schema": output_schema,
                    "strict": strict_schema(output_schema),
                }
            }
        response = await self._request(self.client.responses.create, fields)

        usage = response.usage
        if usage is not None:
            context.usage.add(usage.input_tokens, usage.output_tokens, usage.total_tokens)
        else:
            context.usage.add()

        if response.status == "failed":
            error = response.error
            reason = f"{error.code}: {error.message}" if error is not None else "no reason given"
            raise LLMError(f"the Responses API reported a failed response ({reason})")

        calls = [
            ToolCallItem(item.call_id, item.name, item.arguments)
            for item in response.output
            if item.type == "function_call"
        ]
        if calls:
            return Turn(tool_calls=calls)
        text = response.output_text
        if not text:
            refusal = _refusal(response)
            if refusal:
                raise LLMError(f"the model refused to answer: {refusal}")
        if response.status == "incomplete":
            details = response.incomplete_details
            logger.warning(
                "incomplete response from %s (%s); the answer may be cut short",
                model,
                details.reason if details is not None else "no reason given",
            )
        return Turn(text=text)


def _refusal(response: Any) -> str | None:
    for item in response.output:
        if item.type == "message":
            for part in item.content:
                if part.type == "refusal":
                    return part.refusal
    return None
