"""A todo list per task, so an agent can plan multi-step work and track it as it goes.

Lists live in the toolkit instance's memory, keyed by the calling task (else by the
root of the call chain, else by the caller), so concurrent tasks never see each other's
items. The least recently used lists are dropped beyond ``max_lists``.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.toolkits.context import ToolContext
from taskroom.toolkits.tool import tool
from taskroom.toolkits.toolkit import Toolkit

logger = logging.getLogger(__name__)

TodoStatus = Literal["pending", "in_progress", "done"]
ItemText = Annotated[str, Field(min_length=1, max_length=2_000)]


class TodoItem(BaseModel):
    id: int
    text: str
    status: TodoStatus = "pending"


class TodoList(BaseModel):
    items: list[TodoItem]


class Cleared(BaseModel):
    cleared: int = Field(description="How many items were removed.")


def todo_scope(context: ToolContext) -> str:
    """Which list a call works on: its task's, else its call chain's, else its caller's."""
    if context.task_id:
        return f"task:{context.task_id}"
    chain = context.metadata.get("chain") or []
    if chain:
        return f"chain:{chain[0]}"
    return f"caller:{context.caller.id}"


@dataclass
class _List:
    items: dict[int, TodoItem] = field(default_factory=dict)
    next_id: int = 1


class _Lists:
    def __init__(self, max_items: int, max_lists: int) -> None:
        self.max_items = max_items
        self.max_lists = max_lists
        self._lists: OrderedDict[str, _List] = OrderedDict()

    def get(self, context: ToolContext) -> _List | None:
        scope = todo_scope(context)
        todo = self._lists.get(scope)
        if todo is not None:
            self._lists.move_to_end(scope)
        return todo

    def get_or_create(self, context: ToolContext) -> _List:
        todo = self.get(context)
        if todo is None:
            todo = self._lists[todo_scope(context)] = _List()
            while len(self._lists) > self.max_lists:
                dropped, _ = self._lists.popitem(last=False)
                logger.debug("todo: dropped the least recently used list %s", dropped)
        return todo

    def item(self, context: ToolContext, item_id: int) -> tuple[_List, TodoItem]:
        todo = self.get(context)
        found = todo.items.get(item_id) if todo is not None else None
        if todo is None or found is None:
            raise RoomError(ErrorCode.NOT_FOUND, f"no todo item {item_id} in this task's list")
        return todo, found

    def add(self, context: ToolContext, text: str) -> TodoItem:
        todo = self.get_or_create(context)
        if len(todo.items) >= self.max_items:
            raise RoomError(
                ErrorCode.INVALID_REQUEST,
                f"the todo list is full ({self.max_items} items); delete or clear items first",
            )
        item = TodoItem(id=todo.next_id, text=text)
        todo.items[item.id] = item
        todo.next_id += 1
        return item


def todo_toolkit(name: str = "todo", *, max_items: int = 200, max_lists: int = 1_000) -> Toolkit:
    """A per-task todo list. Only ``list`` is read_only: read_only tasks can see a list
    but not change it."""
    lists = _Lists(max_items, max_lists)

    @tool(name="add")
    def add(context: ToolContext, text: ItemText) -> TodoItem:
        """Add an item to this task's todo list.

        Args:
            text: What needs doing.
        """
        return lists.add(context, text)

    @tool(name="update")
    def update(
        context: ToolContext,
        id: int,
        text: ItemText | None = None,
        status: TodoStatus | None = None,
    ) -> TodoItem:
        """Change an item's text or status.

        Args:
            id: The item's id.
            text: New text.
            status: New status.
        """
        if text is None and status is None:
            raise RoomError(ErrorCode.INVALID_REQUEST, "give text or status to change")
        todo, item = lists.item(context, id)
        changed = item.model_copy(
            update={k: v for k, v in {"text": text, "status": status}.items() if v is not None}
        )
        todo.items[id] = changed
        return changed

    @tool(name="complete", annotations={"idempotent": True})
    def complete(context: ToolContext, id: int) -> TodoItem:
        """Mark an item done.

        Args:
            id: The item's id.
        """
        todo, item = lists.item(context, id)
        done = todo.items[id] = item.model_copy(update={"status": "done"})
        return done

    @tool(name="delete", destructive=True)
    def delete(context: ToolContext, id: int) -> TodoItem:
        """Remove an item; returns what was removed.

        Args:
            id: The item's id.
        """
        todo, item = lists.item(context, id)
        del todo.items[id]
        return item

    @tool(name="list", read_only=True)
    def list_items(context: ToolContext) -> TodoList:
        """This task's todo items, in the order they were added."""
        todo = lists.get(context)
        return TodoList(items=list(todo.items.values()) if todo is not None else [])

    @tool(name="clear", destructive=True, annotations={"idempotent": True})
    def clear(context: ToolContext) -> Cleared:
        """Remove every item from this task's todo list."""
        todo = lists.get(context)
        count = len(todo.items) if todo is not None else 0
        if todo is not None:
            todo.items.clear()
        return Cleared(cleared=count)

    return Toolkit(
        name=name,
        title="Todo",
        description="A todo list for the current task: plan steps and track their status.",
        tools=[add, update, complete, delete, list_items, clear],
    )
