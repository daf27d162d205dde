"""Request data of the room's task API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_WAIT_SECONDS = 3600.0


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskStart(_Message):
    """Start one task, or one task per model under one batch id."""

    agent: str = Field(min_length=1, max_length=128)
    arguments: dict[str, Any] = Field(default_factory=dict)
    models: list[str] | None = Field(default=None, min_length=1, max_length=16)
    read_only: bool = False
    deadline: float | None = Field(default=None, gt=0, le=86_400)
    inactivity_timeout: float | None = Field(default=None, gt=0, le=86_400)


class TaskRef(_Message):
    task_id: str = Field(min_length=1, max_length=128)


class TaskOrBatch(_Message):
    task_id: str | None = None
    batch_id: str | None = None

    @model_validator(mode="after")
    def _one(self) -> TaskOrBatch:
        if (self.task_id is None) == (self.batch_id is None):
            raise ValueError("give exactly one of task_id or batch_id")
        return self


class TaskWait(TaskOrBatch):
    mode: Literal["first", "all"] = "all"
    timeout: float = Field(default=30.0, ge=0, le=MAX_WAIT_SECONDS)


class TaskList(_Message):
    status: Literal["pending", "running", "completed", "failed", "cancelled"] | None = None
    agent: str | None = None
    batch_id: str | None = None
    caller: str | None = None
    before: float | None = None
    limit: int = Field(default=50, ge=1, le=500)


class TaskSubscribe(_Message):
    task_id: str | None = None
    batch_id: str | None = None
    all: bool = False
