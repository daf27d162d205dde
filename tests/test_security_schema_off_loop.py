"""A slow schema check runs off the room's event loop: others are answered meanwhile.

Attack (issue item 6): a participant registers toolkits whose schemas are legal but slow
to check. Checked on the loop, every other participant of every room would wait for it.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import pytest

from taskroom.toolkits.schemas import check_schema

ROOM = "offloop"
TOOLS = 8


@pytest.fixture
def room_name() -> str:
    return ROOM


def slow_schema(marker: str) -> dict[str, Any]:
    """A legal schema near the size limits: a chain of 300 ``$defs`` through ``anyOf``."""
    defs: dict[str, Any] = {
        f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"type": "null"}]} for i in range(300)
    }
    defs["d300"] = {"type": "null", "description": marker}
    return {"$defs": defs, "$ref": "#/$defs/d0"}


def slow_toolkit(name: str) -> dict[str, Any]:
    """A registration whose schemas no earlier check has cached."""
    marker = secrets.token_hex(8)
    return {
        "name": name,
        "tools": [
            {"name": f"t{i}", "input_schema": slow_schema(f"{marker}-{i}")} for i in range(TOOLS)
        ],
    }


class LoopLag:
    """The longest the event loop took to come back to a 5 ms sleep."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, time.perf_counter() - before - 0.005)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def test_the_schema_is_legal_and_slow_to_check():
    started = time.thread_time()
    check_schema(slow_schema(secrets.token_hex(8)))
    assert time.thread_time() > started  # checked for real, not answered from the cache


async def test_a_slow_schema_check_does_not_stall_other_participants(join):
    alice = await join("alice", "tool")
    bob = await join("bob")
    answered_meanwhile = 0
    with LoopLag() as lag:
        started = time.perf_counter()
        register = asyncio.create_task(
            alice.request("toolkits.register", slow_toolkit("slow"), timeout=60)
        )
        while not register.done():
            await asyncio.wait_for(bob.request("ping"), 10)
            if not register.done():
                answered_meanwhile += 1
        took = time.perf_counter() - started
    assert (await register)["name"] == "slow"
    # Bob was answered while Alice's schemas were being checked, and the loop never
    # waited for more than half of that check (on the loop it waits for all of it).
    assert answered_meanwhile >= 1
    assert lag.worst < took / 2, f"loop lag {lag.worst * 1000:.0f} ms of {took * 1000:.0f} ms"
    print(f"\nschema check {took * 1000:.0f} ms, worst loop lag {lag.worst * 1000:.1f} ms")


async def test_a_participant_that_leaves_during_the_check_leaves_no_ghost(join):
    alice = await join("alice", "tool")
    bob = await join("bob")
    register = asyncio.create_task(
        alice.request("toolkits.register", slow_toolkit("ghost"), timeout=60)
    )
    await asyncio.sleep(0.05)  # the frame is sent; the check is under way
    await alice.close()
    await asyncio.gather(register, return_exceptions=True)
    assert await bob.list_toolkits(name="ghost") == []
    names = {p.name for p in await bob.list_participants()}
    assert "alice" not in names
