"""taskroom.agents: task runners, the LLM adapters they drive, and the tool-calling loop.

Names load on first use, so ``import taskroom.agents`` is cheap and ``openai`` is imported
only when an OpenAI adapter is::

    from taskroom.agents import LLMTaskRunner, OpenAIResponsesAdapter, RequiredToolkit
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskroom.host import lazy_exports

if TYPE_CHECKING:
    from taskroom.agents.adapter import LLMAdapter, LLMError, ToolResponseAdapter
    from taskroom.agents.chat_context import ChatContext
    from taskroom.agents.llm_task_runner import DynamicLLMTaskRunner, LLMTaskRunner
    from taskroom.agents.openai_chat import OpenAIChatCompletionsAdapter
    from taskroom.agents.openai_responses import OpenAIResponsesAdapter
    from taskroom.agents.task_runner import TaskContext, TaskRunner
    from taskroom.toolkits.requirements import RequiredSchema, RequiredToolkit

__all__ = [
    "ChatContext",
    "DynamicLLMTaskRunner",
    "LLMAdapter",
    "LLMError",
    "LLMTaskRunner",
    "OpenAIChatCompletionsAdapter",
    "OpenAIResponsesAdapter",
    "RequiredSchema",
    "RequiredToolkit",
    "TaskContext",
    "TaskRunner",
    "ToolResponseAdapter",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".adapter": ["LLMAdapter", "LLMError", "ToolResponseAdapter"],
        ".chat_context": ["ChatContext"],
        ".llm_task_runner": ["DynamicLLMTaskRunner", "LLMTaskRunner"],
        ".openai_chat": ["OpenAIChatCompletionsAdapter"],
        ".openai_responses": ["OpenAIResponsesAdapter"],
        ".task_runner": ["TaskContext", "TaskRunner"],
        "taskroom.toolkits.requirements": ["RequiredSchema", "RequiredToolkit"],
    },
)
