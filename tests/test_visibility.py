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


async def test_a_task_cannot_name_a_toolkit_only_its_runner_can_see(join):
    """A runner resolves the toolkits a task names through its own view of the room: the
    room refuses a name the caller cannot see, exactly as a name that does not exist."""
    seen: list[str] = []
    runner = Echo("runner", seen)
    runner.supports_tools = True
    await runner.start(await join("echo", "agent"))
    vault_host = await join("vault-owner", "tool")
    vault = labelled("secret", public=False)
    vault.allowed_callers = ["echo", "alice"]
    await vault_host.host_toolkit(vault)
    mallory = await join("mallory")
    refusals = []
    for name in ("labels", "no-such-toolkit"):
        with pytest.raises(RoomError) as refused:
            await mallory.tasks.start("echo", {"prompt": "hi", "tools": [name]})
        refusals.append(refused.value)
    assert [r.code for r in refusals] == [ErrorCode.NOT_FOUND, ErrorCode.NOT_FOUND]
    assert refusals[0].message == refusals[1].message.replace("no-such-toolkit", "labels")
    assert seen == []
    # a caller the vault names as allowed may name it
    alice = await join("alice")
    done = await alice.tasks.run("echo", {"prompt": "hi", "tools": ["labels"]}, timeout=10)
    assert done["status"] == "completed" and seen == ["runner"]
