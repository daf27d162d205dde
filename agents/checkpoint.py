"""Durable resume inside a task: checkpoint the chat after each turn, restore it on re-queue.

After each model turn and each finished tool call, :class:`TaskCheckpoints` sends the
conversation to the room (``tasks.checkpoint``); the room keeps the last one with the task.
When a runner dies and the room re-queues the task, the next attempt asks for it
(``tasks.resume``) and continues from the last completed turn: the model is not asked
again what it already answered, and a tool call that finished is not run again (its
output is recorded by call id).

A checkpoint that cannot be stored costs the task nothing but the ability to resume: it
is logged and the task goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import ValidationError

from taskroom.agents.chat_context import (
    ChatContext,
    Item,
    Message,
    ToolCallItem,
    ToolResultItem,
    Usage,
)
from taskroom.host.protocol.checkpoint import ResumeAnswer, TaskCheckpoint
from taskroom.host.protocol.errors import RoomError

if TYPE_CHECKING:
    from taskroom.agents.task_runner import TaskContext

logger = logging.getLogger(__name__)

_USAGE_FIELDS = frozenset(Usage().as_dict())


@runtime_checkable
class RequestSender(Protocol):
    """The part of a room connection checkpoints need (``RoomClient`` has it)."""

    async def request(self, type_: str, data: dict[str, Any] | None = None) -> dict[str, Any]: ...


class TaskCheckpoints:
    """The checkpoints of one task on one attempt. Build it with :meth:`begin`."""

    def __init__(self, room: RequestSender, task_id: str, chat: ChatContext) -> None:
        self.room = room
        self.task_id = task_id
        self.chat = chat
        self.turn = 0
        self.tool_results: dict[str, str] = {}
        self.resumed = False

    @classmethod
    async def begin(cls, context: TaskContext) -> TaskCheckpoints | None:
        """Checkpoints for the task ``context`` runs, its chat restored if it has one.

        None when the task cannot be checkpointed (run outside a room's task API, or by a
        room that does not keep checkpoints).
        """
        room, task_id = context.room, context.task_id
        if task_id is None or not isinstance(room, RequestSender):
            return None
        checkpoints = cls(room, task_id, context.chat)
        try:
            answer = ResumeAnswer.model_validate(
                await checkpoints.room.request("tasks.resume", {"task_id": task_id})
            )
        except (RoomError, ValidationError) as exc:
            # A room without checkpoints, or a call the room does not run as our task.
            logger.info("task %s runs without checkpoints: %s", task_id, exc)
            return None
        if answer.checkpoint is not None:
            checkpoints.restore(answer.checkpoint)
        return checkpoints

    def restore(self, saved: TaskCheckpoint) -> None:
        try:
            items = [load_item(m) for m in saved.messages]
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("task %s: checkpoint unreadable, starting over: %s", self.task_id, exc)
            return
        self.chat.instructions[:] = saved.instructions
        self.chat.items[:] = items
        # The task's usage counts the kept turns of earlier attempts too.
        for name, value in saved.usage.items():
            if name in _USAGE_FIELDS:
                setattr(self.chat.usage, name, value)
        self.turn = saved.turn
        self.tool_results = dict(saved.tool_results)
        self.resumed = True
        logger.info("task %s resumes after turn %d", self.task_id, saved.turn)

    def unanswered(self) -> list[ToolCallItem]:
        """Tool calls of the last turn that have no result in the chat yet."""
        answered = {i.call_id for i in self.chat.items if isinstance(i, ToolResultItem)}
        return [
            i for i in self.chat.items if isinstance(i, ToolCallItem) and i.call_id not in answered
        ]

    async def turn_done(self) -> None:
        """The model answered with tool calls (already in the chat): keep that turn."""
        self.turn += 1
        self.tool_results = {}
        await self._send()

    async def run_tool(self, call: ToolCallItem, run: Callable[[], Awaitable[str]]) -> str:
        """A recorded output when this call already finished, else ``run()``, recorded."""
        if call.call_id in self.tool_results:
            return self.tool_results[call.call_id]
        output = await run()
        self.tool_results[call.call_id] = output
        await self._send()
        return output

    async def _send(self) -> None:
        checkpoint = TaskCheckpoint(
            task_id=self.task_id,
            turn=self.turn,
            instructions=list(self.chat.instructions),
            messages=[dump_item(i) for i in self.chat.items],
            tool_results=dict(self.tool_results),
            usage=self.chat.usage.as_dict(),
        )
        try:
            await self.room.request("tasks.checkpoint", checkpoint.model_dump(mode="json"))
        except RoomError as exc:
            logger.warning(
                "task %s: checkpoint of turn %d not kept: %s", self.task_id, self.turn, exc
            )


def dump_item(item: Item) -> dict[str, Any]:
    if isinstance(item, Message):
        return {"type": "message", "role": item.role, "content": item.content}
    if isinstance(item, ToolCallItem):
        return {
            "type": "tool_call",
            "call_id": item.call_id,
            "name": item.name,
            "arguments": item.arguments,
        }
    return {
        "type": "tool_result",
        "call_id": item.call_id,
        "name": item.name,
        "output": item.output,
    }


def load_item(data: dict[str, Any]) -> Item:
    kind = data["type"]
    if kind == "message":
        if data["role"] not in ("user", "assistant"):
            raise ValueError(f"unknown message role {data['role']!r}")
        return Message(data["role"], str(data["content"]))
    if kind == "tool_call":
        return ToolCallItem(str(data["call_id"]), str(data["name"]), str(data["arguments"]))
    if kind == "tool_result":
        return ToolResultItem(str(data["call_id"]), str(data["name"]), str(data["output"]))
    raise ValueError(f"unknown item type {kind!r}")
