"""taskroom.agents: LLM adapters and the tool-calling loop."""

from taskroom.agents.adapter import LLMAdapter, LLMError, ToolResponseAdapter
from taskroom.agents.chat_context import ChatContext
from taskroom.agents.openai_chat import OpenAIChatCompletionsAdapter
from taskroom.agents.openai_responses import OpenAIResponsesAdapter

__all__ = [
    "ChatContext",
    "LLMAdapter",
    "LLMError",
    "OpenAIChatCompletionsAdapter",
    "OpenAIResponsesAdapter",
    "ToolResponseAdapter",
]
