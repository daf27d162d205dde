"""LLMTaskRunner and DynamicLLMTaskRunner, written only on TaskRunner's public pieces.

Both build a fresh chat context per task, drive ``llm_adapter.next()`` until the model
answers, and check the answer against the output schema, sending a failure back to the
model for repair a bounded number of times.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from taskroom.agents.adapter import InvalidOutputError, LLMAdapter, ToolResponseAdapter
from taskroom.agents.chat_context import ChatContext
from taskroom.agents.checkpoint import TaskCheckpoints
from taskroom.agents.task_runner import TaskContext, TaskRunner
from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.protocol.errors import TaskroomError
from taskroom.host.protocol.progress import OutputInvalid
from taskroom.toolkits.requirements import RequiredSchema, Requirement
from taskroom.toolkits.toolkit import Toolkit, check_schema, schema_validator, validation_error

DEFAULT_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"result": {"type": "string"}},
    "required": ["result"],
    "additionalProperties": False,
}
DEFAULT_REPAIRS = 2


class OutputValidationError(TaskroomError):
    """The model's answer kept breaking the output schema after every repair attempt."""


def prompt_input_schema(
    *, supports_tools: bool, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``{"prompt": str}`` plus optional ``model`` and, when allowed, ``tools``."""
    properties: dict[str, Any] = {
        "prompt": {"type": "string", "minLength": 1, "description": "What the task is."},
        "model": {"type": "string", "description": "Model to use instead of the default."},
    }
    if supports_tools:
        properties["tools"] = {
            "type": "array",
            "items": {"type": "string"},
            "description": "Names of room toolkits the agent may use for this task.",
        }
    properties.update(extra or {})
    return {
        "type": "object",
        "properties": properties,
        "required": ["prompt", *(extra or {})],
        "additionalProperties": False,
    }


class LLMTaskRunner(TaskRunner):
    """A task runner whose output schema is fixed when it is built."""

    def __init__(
        self,
        *,
        llm_adapter: LLMAdapter,
        tool_adapter: ToolResponseAdapter | None = None,
        toolkits: Sequence[Toolkit] = (),
        requires: Sequence[Requirement] = (),
        supports_tools: bool = False,
        input_prompt: bool = True,
        input_schema: dict[str, Any] | None = None,
        output_schema: dict[str, Any] | RequiredSchema | None = None,
        rules: Sequence[str] = (),
        name: str = "llm-task-runner",
        title: str = "LLM Task Runner",
        description: str = "Runs a prompt to completion with an LLM and returns checked output.",
        labels: Sequence[str] = ("llm",),
        max_repairs: int = DEFAULT_REPAIRS,
        max_concurrency: int = 16,
        checkpoints: bool = False,
    ) -> None:
        if input_schema is None:
            input_schema = (
                prompt_input_schema(supports_tools=supports_tools)
                if input_prompt
                else {"type": "object"}
            )
        super().__init__(
            name=name,
            title=title,
            description=description,
            input_schema=input_schema,
            output_schema=output_schema if output_schema is not None else DEFAULT_OUTPUT_SCHEMA,
            requires=requires,
            supports_tools=supports_tools,
            toolkits=toolkits,
            labels=labels,
            max_concurrency=max_concurrency,
        )
        self.llm_adapter = llm_adapter
        self.tool_adapter = tool_adapter
        self.rules = list(rules)
        self.input_prompt = input_prompt
        self.max_repairs = max_repairs
        # Keep each task's chat in the room after every turn, so a re-queued task
        # resumes from its last completed turn (agents/checkpoint.py).
        self.checkpoints = checkpoints

    async def stop(self) -> None:
        await super().stop()
        aclose = getattr(self.llm_adapter, "aclose", None)
        if aclose is not None:
            await aclose()

    def init_chat_context(self) -> ChatContext:
        chat = self.llm_adapter.create_chat_context()
        chat.append_rules(self.rules)
        return chat

    def output_schema_for(self, arguments: dict[str, Any]) -> dict[str, Any]:
        return self.output_schema or DEFAULT_OUTPUT_SCHEMA

    def task_prompt(self, arguments: dict[str, Any]) -> str:
        if "prompt" in arguments and isinstance(arguments["prompt"], str):
            return arguments["prompt"]
        return json.dumps(arguments, ensure_ascii=False)

    async def ask(self, context: TaskContext, arguments: dict[str, Any]) -> Any:
        schema = self.output_schema_for(arguments)
        validator = schema_validator(schema)
        checkpoint = await TaskCheckpoints.begin(context) if self.checkpoints else None
        if checkpoint is None or not checkpoint.resumed:
            context.chat.append_rules(
                ["Your final answer must be JSON that fits this JSON Schema: " + json.dumps(schema)]
            )
            context.chat.append_user_message(self.task_prompt(arguments))
        problem = ""
        for attempt in range(1, self.max_repairs + 2):
            try:
                output = await self.llm_adapter.next(
                    context=context.chat,
                    room=context.room,
                    toolkits=context.toolkits,
                    tool_adapter=self.tool_adapter,
                    output_schema=schema,
                    model=arguments.get("model"),
                    tool_context=context.tool_context,
                    on_event=context.emit,
                    checkpoint=checkpoint,
                )
            except InvalidOutputError as exc:
                problem = exc.reason
            else:
                invalid = validation_error(output, validator)
                if invalid is None:
                    return output
                problem = f"the answer breaks the output schema: {invalid}"
            await context.emit(
                OutputInvalid(attempt=attempt, error=problem).model_dump(mode="json")
            )
            context.chat.append_user_message(
                f"Your last answer was rejected because {problem}. "
                "Answer again with only JSON that fits the required schema."
            )
        raise OutputValidationError(
            f"the model's output was still invalid after {self.max_repairs} repairs: {problem}"
        )


class DynamicLLMTaskRunner(LLMTaskRunner):
    """A task runner that takes its output schema in each call's input."""

    def __init__(
        self,
        *,
        llm_adapter: LLMAdapter,
        name: str = "dynamic-llm-task-runner",
        title: str = "Dynamic LLM Task Runner",
        description: str = "Runs a prompt with an LLM and returns JSON that fits the "
        "output_schema given in the call.",
        supports_tools: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault(
            "input_schema",
            prompt_input_schema(
                supports_tools=supports_tools,
                extra={
                    "output_schema": {
                        "type": "object",
                        "description": "JSON Schema the result must fit.",
                    }
                },
            ),
        )
        super().__init__(
            llm_adapter=llm_adapter,
            name=name,
            title=title,
            description=description,
            supports_tools=supports_tools,
            **kwargs,
        )
        self.output_schema = None

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "dynamic_output_schema": True}

    def output_schema_for(self, arguments: dict[str, Any]) -> dict[str, Any]:
        schema = arguments.get("output_schema")
        if schema is None:
            raise RoomError(ErrorCode.INVALID_REQUEST, "output_schema is required")
        check_schema(schema, what="output_schema")
        return schema

    async def ask(self, context: TaskContext, arguments: dict[str, Any]) -> Any:
        self.output_schema_for(arguments)  # refuse a bad schema before any LLM call
        return await super().ask(context, arguments)
