"""taskroom.agents: task runners, the LLM adapters they drive, and the tool-calling loop."""

from taskroom.agents.adapter import LLMAdapter, LLMError, ToolResponseAdapter
from taskroom.agents.chat_context import ChatContext
from taskroom.agents.llm_task_runner import DynamicLLMTaskRunner, LLMTaskRunner
from taskroom.agents.openai_chat import OpenAIChatCompletionsAdapter
from taskroom.agents.openai_responses import OpenAIResponsesAdapter
from taskroom.agents.task_runner import TaskContext, TaskRunner

__all__ = [
    "ChatContext",
    "DynamicLLMTaskRunner",
    "LLMAdapter",
    "LLMError",
    "LLMTaskRunner",
    "OpenAIChatCompletionsAdapter",
    "OpenAIResponsesAdapter",
    "TaskContext",
    "TaskRunner",
    "ToolResponseAdapter",
]
