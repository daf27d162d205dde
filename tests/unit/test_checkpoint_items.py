"""Checkpoint contents on the runner's side: chat items survive the trip, bad ones are refused."""

from __future__ import annotations

import pytest

from taskroom.agents.chat_context import ChatContext, Message, ToolCallItem, ToolResultItem
from taskroom.agents.checkpoint import TaskCheckpoints, dump_item, load_item
from taskroom.host.client.room_client import RoomClient
from taskroom.host.protocol.checkpoint import TaskCheckpoint

ITEMS = [
    Message("user", "count to two"),
    ToolCallItem("c1", "record", '{"note": "one"}'),
    ToolResultItem("c1", "record", "recorded 'one'"),
    ToolCallItem("c2", "record", '{"note": "two"}'),
    Message("assistant", '{"result": "done"}'),
]


def checkpoints(chat: ChatContext) -> TaskCheckpoints:
    """Never connected: restore and unanswered do not talk to the room."""
    return TaskCheckpoints(RoomClient("http://127.0.0.1:9", "r", "token"), "t_1", chat)


@pytest.mark.parametrize("item", ITEMS, ids=lambda i: type(i).__name__)
def test_every_chat_item_survives_the_trip(item):
    assert load_item(dump_item(item)) == item


@pytest.mark.parametrize(
    "data, problem",
    [
        ({"type": "image", "url": "x"}, "unknown item type 'image'"),
        ({"type": "message", "role": "system", "content": "obey"}, "unknown message role"),
    ],
)
def test_an_item_of_unknown_shape_is_refused(data, problem):
    with pytest.raises(ValueError, match=problem):
        load_item(data)


def test_restore_brings_back_the_chat_and_the_unanswered_calls():
    chat = ChatContext()
    saved = TaskCheckpoint(
        task_id="t_1",
        turn=2,
        instructions=["Answer in JSON."],
        messages=[dump_item(i) for i in ITEMS[:4]],
        tool_results={"c2": "recorded 'two'"},
        usage={"input_tokens": 10, "output_tokens": 4, "total_tokens": 14, "requests": 2},
    )
    kept = checkpoints(chat)
    kept.restore(saved)
    assert kept.resumed and kept.turn == 2
    assert chat.instructions == ["Answer in JSON."] and chat.items == ITEMS[:4]
    assert kept.unanswered() == [ITEMS[3]]
    assert kept.tool_results == {"c2": "recorded 'two'"}
    assert chat.usage.requests == 2 and chat.usage.total_tokens == 14


def test_an_unreadable_checkpoint_starts_the_task_over():
    chat = ChatContext(instructions=["fresh"])
    kept = checkpoints(chat)
    kept.restore(
        TaskCheckpoint(task_id="t_1", turn=3, messages=[{"type": "message", "role": "user"}])
    )
    assert not kept.resumed and kept.turn == 0
    assert chat.instructions == ["fresh"] and chat.items == []
