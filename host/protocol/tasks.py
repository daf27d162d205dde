"""Task records, their events, and the request and event data of the room's task API."""

from __future__ import annotations

import enum
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_WAIT_SECONDS = 3600.0
MAX_EVENTS_PER_TASK = 500


class TaskStatus(enum.StrEnum):
    """Where a task is in its life; a StrEnum, so it equals its string on the wire."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED: frozenset[TaskStatus] = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}
)
"""The statuses a task never leaves."""


def task_tool_name(agent: str) -> str:
    """The tool by which an agent's toolkit runs one task: ``run_<agent>_task``."""
    return f"run_{agent}_task"


class TaskRecord(BaseModel):
    """A task as the room keeps it. Assignments are not validated (four per task on the
    room's hot path): the room assigns :class:`TaskStatus` members and values of the
    declared types, and reloading a stored record validates it again."""

    id: str
    room: str
    agent: str
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    model: str | None = None
    batch_id: str | None = None
    caller: dict[str, Any] = Field(default_factory=dict)
    parent_task_id: str | None = None
    read_only: bool = False
    status: TaskStatus = TaskStatus.PENDING
    created_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    deadline: float | None = None
    result: Any = None
    error: dict[str, Any] | None = None
    usage: dict[str, int] = Field(default_factory=dict)
    instance: str | None = None
    attempts: int = 0

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def principal(self) -> str | None:
        """Whom the task is for: the participant it runs on behalf of, else its caller."""
        behalf = self.caller.get("on_behalf_of") or {}
        return behalf.get("name") or self.caller.get("name")


class TaskEvent(BaseModel):
    seq: int
    at: float
    data: dict[str, Any]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskStart(_Message):
    """Start one task, or one task per model under one batch id."""

    agent: str = Field(min_length=1, max_length=128)
    arguments: dict[str, Any] = Field(
        default_factory=dict, description="checked against the agent's input schema"
    )
    models: list[str] | None = Field(
        default=None, min_length=1, max_length=16, description="one task per model, as a batch"
    )
    read_only: bool = Field(default=False, description="the task may call read_only tools only")
    deadline: float | None = Field(
        default=None, gt=0, le=86_400, description="seconds the task may run in all"
    )
    inactivity_timeout: float | None = Field(
        default=None, gt=0, le=86_400, description="seconds without progress before it fails"
    )
    wait: float | None = Field(
        default=None,
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="answer only once every task started has finished, or after this many "
        "seconds, with their snapshots then: one request where a start and a wait are two",
    )


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


class TaskCancel(_Message):
    task_id: str | None = None
    batch_id: str | None = None
    start_request: int | str | None = Field(
        default=None,
        description="the id of your own tasks.start request still waiting (with `wait`): "
        "cancels the tasks it started, even before their ids have reached you",
    )

    @model_validator(mode="after")
    def _one(self) -> TaskCancel:
        given = [v for v in (self.task_id, self.batch_id, self.start_request) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of task_id, batch_id or start_request")
        return self


class TaskWait(TaskOrBatch):
    mode: Literal["first", "all"] = Field(
        default="all", description="return when the first task finishes, or all of them"
    )
    timeout: float = Field(default=30.0, ge=0, le=MAX_WAIT_SECONDS, description="seconds")


class TaskList(_Message):
    status: TaskStatus | None = None
    agent: str | None = None
    batch_id: str | None = None
    caller: str | None = Field(
        default=None, description="whose tasks (needs tasks.all; else always your own)"
    )
    before: float | None = Field(
        default=None, description="created before this time: the last answer's next_before"
    )
    limit: int = Field(default=50, ge=1, le=500)


class TaskSubscribe(_Message):
    task_id: str | None = None
    batch_id: str | None = None
    all: bool = Field(default=False, description="every task you can see")


# --- events ------------------------------------------------------------------------------


class TaskUpdated(BaseModel):
    """A subscribed task changed status; ``result`` is set once it has finished."""

    task_id: str
    batch_id: str | None = None
    agent: str
    status: TaskStatus
    error: dict[str, Any] | None = None
    result: Any = None


class TaskProgress(BaseModel):
    """A progress event of a subscribed task, numbered by ``seq`` within the task."""

    task_id: str
    batch_id: str | None = None
    seq: int = Field(ge=0)
    data: dict[str, Any] = Field(description="a progress event, see the progress kinds")
