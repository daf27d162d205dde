"""A provider-neutral conversation, built fresh for every task.

Adapters translate it to their API's shape (Responses input items, Chat Completions
messages), so a runner never depends on one provider's format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class Usage:
    """Tokens and requests spent on one task, summed over every LLM call."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    requests: int = 0

    def add(self, input_tokens: int = 0, output_tokens: int = 0, total_tokens: int = 0) -> None:
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.total_tokens += total_tokens or (input_tokens + output_tokens)
        self.requests += 1

    def as_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "requests": self.requests,
        }


@dataclass
class Message:
    """A user or assistant message."""

    role: Literal["user", "assistant"]
    content: str


@dataclass
class ToolCallItem:
    """A tool call the model made; ``arguments`` is the raw JSON text it sent."""

    call_id: str
    name: str
    arguments: str


@dataclass
class ToolResultItem:
    """The answer to one tool call, already turned into text for the model."""

    call_id: str
    name: str
    output: str


Item = Message | ToolCallItem | ToolResultItem


@dataclass
class ChatContext:
    """Instructions plus an ordered list of conversation items."""

    instructions: list[str] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    metadata: dict[str, Any] = field(default_factory=dict)

    def append_rules(self, rules: list[str]) -> None:
        self.instructions.extend(r for r in rules if r)

    def append_user_message(self, text: str) -> None:
        self.items.append(Message("user", text))

    def append_assistant_message(self, text: str) -> None:
        self.items.append(Message("assistant", text))

    def append_tool_call(self, call_id: str, name: str, arguments: str) -> None:
        self.items.append(ToolCallItem(call_id, name, arguments))

    def append_tool_result(self, call_id: str, name: str, output: str) -> None:
        self.items.append(ToolResultItem(call_id, name, output))

    @property
    def system_prompt(self) -> str:
        return "\n".join(self.instructions)

    def copy(self) -> ChatContext:
        return ChatContext(
            list(self.instructions), list(self.items), self.usage, dict(self.metadata)
        )


def dumps(value: Any) -> str:
    """Compact JSON for tool arguments and results shown to a model."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
