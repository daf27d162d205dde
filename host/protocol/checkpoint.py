"""Checkpoints of a running task: where a re-queued attempt picks up.

An LLM task runner sends one after each model turn and each finished tool call; the room
keeps the last one with the task. Only the participant serving the task may write or
read it, so a checkpoint never shows a conversation to anyone else.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TaskCheckpoint(BaseModel):
    """The state a runner needs to resume a task without repeating finished work."""

    model_config = ConfigDict(extra="forbid")

    task_id: str = Field(min_length=1, max_length=128)
    turn: int = Field(ge=0, description="model turns completed so far")
    instructions: list[str] = Field(default_factory=list, description="the system rules")
    messages: list[dict[str, Any]] = Field(
        default_factory=list, description="the conversation, in the runner's own item format"
    )
    tool_results: dict[str, str] = Field(
        default_factory=dict,
        description="outputs of the last turn's finished tool calls, by call id",
    )
    usage: dict[str, int] = Field(
        default_factory=dict, description="tokens and requests spent on the kept turns"
    )


class ResumeAnswer(BaseModel):
    """The answer to ``tasks.resume``: the task's last checkpoint, if it has one."""

    task_id: str
    checkpoint: TaskCheckpoint | None = None
