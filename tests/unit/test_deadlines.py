"""Call deadlines: each call expires once its own deadline has passed, never before, and
a settled call never expires."""

from __future__ import annotations

import asyncio

from taskroom.host.server.deadlines import Deadlines


class Call:
    def __init__(self, name: str) -> None:
        self.name = name


async def test_calls_expire_at_their_own_deadline_in_order():
    loop = asyncio.get_running_loop()
    expired: list[tuple[str, float, float]] = []
    deadlines = Deadlines(lambda call, timeout: expired.append((call.name, timeout, loop.time())))
    due: dict[str, float] = {}
    for name, timeout in [("a", 0.06), ("b", 0.02), ("c", 0.06), ("d", 0.04)]:
        deadlines.add(Call(name), timeout)
        due[name] = loop.time() + timeout
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.15)
    assert [name for name, _, _ in expired] == ["b", "d", "a", "c"]
    for name, _, at in expired:
        assert at >= due[name] - 0.001, f"{name} expired before its deadline"
    assert len(deadlines) == 0


async def test_a_settled_call_never_expires_and_the_next_one_still_does():
    loop = asyncio.get_running_loop()
    expired: list[str] = []
    deadlines = Deadlines(lambda call, timeout: expired.append(call.name))
    first, second = Call("first"), Call("second")
    deadlines.add(first, 0.03)  # arms the queue's timer at first's deadline
    await asyncio.sleep(0.02)
    deadlines.add(second, 0.03)
    second_due = loop.time() + 0.03
    deadlines.remove(first, 0.03)
    await asyncio.sleep(0.02)  # first's deadline passes: nothing to expire yet
    assert expired == []
    await asyncio.sleep(0.03)
    assert expired == ["second"]
    assert loop.time() >= second_due
    deadlines.remove(second, 0.03)  # settling an expired call is harmless
    assert len(deadlines) == 0


async def test_a_queue_emptied_by_its_timer_arms_again_for_a_new_call():
    expired: list[str] = []
    deadlines = Deadlines(lambda call, timeout: expired.append(call.name))
    deadlines.add(Call("one"), 0.01)
    await asyncio.sleep(0.03)
    deadlines.add(Call("two"), 0.01)
    await asyncio.sleep(0.03)
    assert expired == ["one", "two"]
