"""A client's frames of one loop turn leave together, in order, and none is lost.

Real room server, real WebSocket clients: the frame writer batches what a client sends
in one event-loop turn into one socket write; a burst past its high-water mark is written
at once; frames queued before a close still reach the room; a send after the
connection closed raises as the library's own send does.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from taskroom.host import protocol
from taskroom.host.client.frame_writer import HIGH_WATER
from taskroom.host.protocol.table import request_data
from taskroom.toolkits import Toolkit, tool


def echo_toolkit() -> Toolkit:
    @tool(read_only=True)
    async def echo(text: str) -> str:
        """Return the text."""
        return text

    return Toolkit(name="frames", tools=[echo])


async def test_calls_in_flight_together_each_get_their_own_answer(connect):
    host = await connect("host", role="tool")
    await host.host_toolkit(echo_toolkit())
    caller = await connect("caller")
    texts = [f"call {i}" for i in range(200)]
    answers = await asyncio.gather(
        *(caller.invoke_tool("frames", "echo", {"text": t}) for t in texts)
    )
    assert answers == texts


async def test_frames_of_one_loop_turn_leave_in_one_write(connect, monkeypatch):
    client = await connect("writer")
    assert client._ws is not None
    transport = client._ws.transport
    writes: list[bytes] = []
    real_write = transport.write

    def counting_write(data: Any) -> None:
        writes.append(bytes(data))
        real_write(data)

    monkeypatch.setattr(transport, "write", counting_write)
    # ten frames sent one after another, without the loop turning in between
    for i in range(10):
        data = request_data("schemas.put", name=f"turn-{i}", schema={"type": "string"})
        await client.send_text(protocol.encode("schemas.put", data, 100 + i))
    assert writes == [], "nothing is written before the turn ends"
    await asyncio.sleep(0)  # the loop turns: the turn's frames are written
    assert len(writes) == 1, "the ten frames of one turn share one write"
    assert set(await client.list_schemas()) >= {f"turn-{i}" for i in range(10)}


async def test_a_burst_past_the_high_water_mark_loses_nothing(connect):
    host = await connect("host", role="tool")
    await host.host_toolkit(echo_toolkit())
    caller = await connect("caller")
    big = "x" * (64 * 1024)
    count = HIGH_WATER // len(big) * 3
    answers = await asyncio.gather(
        *(caller.invoke_tool("frames", "echo", {"text": f"{i}:{big}"}) for i in range(count))
    )
    assert [a.split(":", 1)[0] for a in answers] == [str(i) for i in range(count)]
    assert all(a.endswith(big) for a in answers)


async def test_frames_queued_before_a_close_reach_the_room(connect):
    client = await connect("closer")
    for i in range(5):
        data = request_data("schemas.put", name=f"last-{i}", schema={"type": "integer"})
        await client.send_text(protocol.encode("schemas.put", data, 1000 + i))
    await client.close()  # in the same loop turn as the sends
    other = await connect("reader")
    schemas = await other.list_schemas()
    assert {f"last-{i}" for i in range(5)} <= set(schemas)


async def test_a_send_after_the_connection_closed_raises(connect):
    client = await connect("late", reconnect=False)
    await client.close()
    with pytest.raises(ConnectionClosed):
        await client.send_text(protocol.encode("schemas.list", {}, 1))
