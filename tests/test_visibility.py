"""A private toolkit instance is unreachable, by any path, for whoever cannot see it."""

from __future__ import annotations

import asyncio

import pytest

from taskroom.agents import TaskRunner
from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.toolkits import Toolkit, tool


class Echo(TaskRunner):
    def __init__(self, label: str, seen: list[str], *, public: bool = True) -> None:
        super().__init__(name="echo", description="Echoes which instance ran it.")
        self.label = label
        self.seen = seen
        self.public = public

    def make_toolkit(self) -> Toolkit:
        toolkit = super().make_toolkit()
        toolkit.public = self.public
        return toolkit

    async def ask(self, context, arguments):
        self.seen.append(self.label)
        return {"result": self.label}


def labelled(label: str, *, public: bool) -> Toolkit:
    @tool()
    def which() -> str:
        """Say which instance answered."""
        return label

    return Toolkit(name="labels", tools=[which], public=public)


async def test_pinned_invoke_of_a_private_instance_is_not_found(join):
    private_host = await join("owner", "tool")
    await private_host.host_toolkit(labelled("private", public=False))
    public_host = await join("other", "tool")
    await public_host.host_toolkit(labelled("public", public=True))
    mallory = await join("mallory")
    with pytest.raises(RoomError) as pinned:
        await mallory.invoke_tool(
            "labels", "which", participant_id=private_host.participant.id, timeout=5
        )
    assert pinned.value.code == ErrorCode.NOT_FOUND
    answers = {await mallory.invoke_tool("labels", "which", timeout=5) for _ in range(6)}
    assert answers == {"public"}
    listed = await mallory.list_toolkits(name="labels")
    assert [i.participant_id for i in listed] == [public_host.participant.id]


async def test_task_start_never_dispatches_to_a_private_instance(join):
    seen: list[str] = []
    await Echo("private", seen, public=False).start(await join("echo", "agent"))
    mallory = await join("mallory")
    with pytest.raises(RoomError) as refused:
        await mallory.tasks.start("echo", {"prompt": "hi"})
    assert refused.value.code == ErrorCode.NOT_FOUND
    await Echo("public", seen).start(await join("echo", "agent"))
    done = await asyncio.gather(
        *(mallory.tasks.run("echo", {"prompt": "hi"}, timeout=10) for _ in range(10))
    )
    assert {t["result"]["result"] for t in done} == {"public"}
    assert seen == ["public"] * 10
