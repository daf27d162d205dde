"""Test doubles for the LLM: a scripted OpenAI-compatible server and in-process models.

``ScriptedLLMServer`` is reached over real HTTP by the real ``openai`` client;
``TestModel`` and ``FunctionModel`` are adapters that answer in-process. Both play the
same steps (``text``, ``tool_calls``, ``json_output``...). Names load on first use, so
importing an in-process model does not import aiohttp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskroom.host import lazy_exports

if TYPE_CHECKING:
    from taskroom.agents.testing.models import (
        FunctionModel,
        Reply,
        TestModel,
        TurnFunction,
        TurnInfo,
    )
    from taskroom.agents.testing.sampler import sample_for_schema
    from taskroom.agents.testing.server import (
        MODELS,
        NO_STEP_LEFT,
        RecordedRequest,
        ScriptedLLMServer,
        serve,
    )
    from taskroom.agents.testing.steps import (
        DelayStep,
        HangStep,
        HttpErrorStep,
        Step,
        TextStep,
        ToolCallsStep,
        delay,
        hang,
        http_error,
        invalid_json,
        json_output,
        text,
        tool_calls,
    )

__all__ = [
    "MODELS",
    "NO_STEP_LEFT",
    "DelayStep",
    "FunctionModel",
    "HangStep",
    "HttpErrorStep",
    "RecordedRequest",
    "Reply",
    "ScriptedLLMServer",
    "Step",
    "TestModel",
    "TextStep",
    "ToolCallsStep",
    "TurnFunction",
    "TurnInfo",
    "delay",
    "hang",
    "http_error",
    "invalid_json",
    "json_output",
    "sample_for_schema",
    "serve",
    "text",
    "tool_calls",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".models": ["FunctionModel", "Reply", "TestModel", "TurnFunction", "TurnInfo"],
        ".sampler": ["sample_for_schema"],
        ".server": ["MODELS", "NO_STEP_LEFT", "RecordedRequest", "ScriptedLLMServer", "serve"],
        ".steps": [
            "DelayStep",
            "HangStep",
            "HttpErrorStep",
            "Step",
            "TextStep",
            "ToolCallsStep",
            "delay",
            "hang",
            "http_error",
            "invalid_json",
            "json_output",
            "text",
            "tool_calls",
        ],
    },
)
