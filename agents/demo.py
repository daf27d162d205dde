"""The demo tasks for the two LLM task runners, run by ``taskroom up --demo`` and the invoke
example: one prompt for the fixed-schema runner, one prompt and schema for the dynamic one.

The prompts are short enough that the scripted test LLM quotes them whole in its answer."""

from __future__ import annotations

from typing import Any

PROMPT = "Why do rooms route tool calls between agents?"
DYNAMIC_PROMPT = "Plan how to brew a good cup of tea."
DYNAMIC_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "steps": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "difficulty": {"type": "string", "enum": ["easy", "medium", "hard"]},
    },
    "required": ["title", "steps", "difficulty"],
    "additionalProperties": False,
}
"""What the dynamic runner's answer must fit."""

DEMO_TASKS: dict[str, dict[str, Any]] = {
    "llm-task-runner": {"prompt": PROMPT},
    "dynamic-llm-task-runner": {"prompt": DYNAMIC_PROMPT, "output_schema": DYNAMIC_OUTPUT_SCHEMA},
}
"""Runner name -> the arguments of its demo task."""
