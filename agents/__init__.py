"""taskroom.agents: task runners, the LLM adapters they drive, and the tool-calling loop.

Names load on first use, so ``import taskroom.agents`` is cheap and ``openai`` is imported
only when an OpenAI adapter is::

    from taskroom.agents import LLMTaskRunner, OpenAIResponsesAdapter, RequiredToolkit

These are the homes of MeshAgent's names too (TaskRunner, LLMTaskRunner,
DynamicLLMTaskRunner, AgentCallContext, LLMAdapter, ToolResponseAdapter, the OpenAI
adapters, RequiredToolkit, RequiredSchema), so a MeshAgent program changes only its imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskroom.host import lazy_exports

if TYPE_CHECKING:
    from taskroom.agents.adapter import LLMAdapter, LLMError, ToolResponseAdapter
    from taskroom.agents.chat_context import ChatContext
    from taskroom.agents.llm_task_runner import DynamicLLMTaskRunner, LLMTaskRunner
    from taskroom.agents.openai_chat import OpenAIChatCompletionsAdapter, OpenAICompletionsAdapter
    from taskroom.agents.openai_responses import OpenAIResponsesAdapter
    from taskroom.agents.task_runner import AgentCallContext, TaskContext, TaskRunner
    from taskroom.toolkits.requirements import RequiredSchema, RequiredToolkit

__all__ = [
    "AgentCallContext",
    "ChatContext",
    "DynamicLLMTaskRunner",
    "LLMAdapter",
    "LLMError",
    "LLMTaskRunner",
    "OpenAIChatCompletionsAdapter",
    "OpenAICompletionsAdapter",
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
        ".openai_chat": ["OpenAIChatCompletionsAdapter", "OpenAICompletionsAdapter"],
        ".openai_responses": ["OpenAIResponsesAdapter"],
        ".task_runner": ["AgentCallContext", "TaskContext", "TaskRunner"],
        "taskroom.toolkits.requirements": ["RequiredSchema", "RequiredToolkit"],
    },
)
