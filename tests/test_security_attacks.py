"""Attacks an ordinary token holder tried on a real room (issue items 4, 5, 7 and 10),
each written as the attacker would send it, by hand over the wire."""

from __future__ import annotations

import pytest

from .raw_participant import RawParticipant

ROOM = "attacks"


@pytest.fixture
def room_name() -> str:
    return ROOM


@pytest.fixture
def base_url(full_room) -> str:
    return full_room.base_url


async def agent(base_url: str, identity: str, name: str) -> RawParticipant:
    runner = await RawParticipant.open(base_url, ROOM, identity, "agent")
    await runner.host_agent(name)
    return runner


def refused(answer: dict, code: str, words: str = "") -> None:
    assert answer["type"] == "error", answer
    assert answer["data"]["code"] == code, answer
    assert words in answer["data"]["message"], answer["data"]["message"]


# --- 4. hijack an agent --------------------------------------------------------------------


async def test_4_a_toolkit_named_like_an_agent_gets_none_of_its_tasks(base_url):
    runner = await agent(base_url, "runner", "worker")
    mallory = await RawParticipant.open(base_url, ROOM, "mallory", "agent")
    for metadata in ({"agent": True}, {}):
        spec = {"name": "worker", "tools": [{"name": "run_worker_task"}], "metadata": metadata}
        refused(await mallory.request("toolkits.register", spec), "permission_denied", "belongs")
    alice = await RawParticipant.open(base_url, ROOM, "alice")
    for n in range(20):
        started = await alice.request("tasks.start", {"agent": "worker", "arguments": {"n": n}})
        call = await runner.next_call()
        assert call["data"]["arguments"] == {"n": n}
        await runner.reply(call, {"n": n})
        (task_id,) = started["data"]["task_ids"]
        waited = await alice.request("tasks.wait", {"task_id": task_id, "timeout": 10})
        assert waited["data"]["tasks"][0]["result"] == {"n": n}
    assert await mallory.ping()
    assert not [f for f in mallory.frames if f["type"] == "tool.call"]
    for p in (runner, mallory, alice):
        await p.close()


# --- 5. escape read_only -----------------------------------------------------------------------


async def test_5_a_read_only_task_cannot_write_by_any_path(base_url):
    files = await RawParticipant.open(base_url, ROOM, "fs", "tool")
    spec = {
        "name": "files",
        "tools": [{"name": "read", "annotations": {"read_only": True}}, {"name": "write"}],
    }
    assert (await files.request("toolkits.register", spec))["type"] == "response"
    runner = await agent(base_url, "runner", "worker")
    writer = await agent(base_url, "other-runner", "writer")
    alice = await RawParticipant.open(base_url, ROOM, "alice")
    bob = await RawParticipant.open(base_url, ROOM, "bob")

    # a writing task for bob first; alice's read_only task waits until it is done, since
    # one identity never serves both kinds at once
    await bob.request("tasks.start", {"agent": "worker"})
    rw_call = await runner.next_call()
    await alice.request("tasks.start", {"agent": "worker", "read_only": True})
    await runner.reply(rw_call, "written")
    ro_call = await runner.next_call()
    assert ro_call["data"]["read_only"] is True

    write = {"toolkit": "files", "tool": "write"}
    for parent in (ro_call["id"], rw_call["id"], None):  # its own, another one, none
        data = {**write, "parent_call_id": parent} if parent else write
        refused(await runner.request("tools.invoke", data), "permission_denied")
    twin = await RawParticipant.open(base_url, ROOM, "runner", "agent")
    refused(await twin.request("tools.invoke", write), "permission_denied")

    # a task started from the read_only one is read_only, and so are its calls
    nested = await runner.request("tasks.start", {"agent": "writer"})
    assert nested["data"]["tasks"][0]["read_only"] is True
    nested_call = await writer.next_call()
    assert nested_call["data"]["read_only"] is True
    data = {**write, "parent_call_id": nested_call["id"]}
    refused(await writer.request("tools.invoke", data), "permission_denied")
    assert not [f for f in files.frames if f["type"] == "tool.call"]

    # reading is allowed
    read = {"toolkit": "files", "tool": "read", "parent_call_id": ro_call["id"]}
    await runner.send({"id": "read", "type": "tools.invoke", "data": read})
    await files.reply(await files.next_call(), "text")
    answer = await runner.next(lambda f: f.get("id") == "read")
    assert answer["data"]["result"] == "text"
    for p in (files, runner, writer, alice, bob, twin):
        await p.close()


# --- 7. lock others out ------------------------------------------------------------------------


async def test_7_deep_metadata_is_refused_and_everyone_can_still_join(base_url):
    deep = '{"x":' * 960 + "{}" + "}" * 960  # written out: json.dumps would recurse
    bob = await RawParticipant.open(base_url, ROOM, "bob", "tool")
    spec = '{"name": "deep", "tools": [], "metadata": ' + deep + "}"
    await bob.ws.send('{"id": "deep", "type": "toolkits.register", "data": ' + spec + "}")
    refused(await bob.next(lambda f: f.get("id") == "deep"), "invalid_request", "nested")
    joined = [await RawParticipant.open(base_url, ROOM, f"user{n}") for n in range(50)]
    assert all(not p.ready["toolkits"] for p in joined)
    listed = (await bob.request("participants.list"))["data"]["participants"]
    assert sorted(p["name"] for p in listed) == sorted(["bob", *(f"user{n}" for n in range(50))])
    for p in joined[1:]:
        await p.close()
    await bob.close()
    survivor = joined[0]
    assert await survivor.ping()
    names = {
        p["name"] for p in (await survivor.request("participants.list"))["data"]["participants"]
    }
    assert names <= {"user0", "bob"}  # those who left are gone, no ghosts stay listed
    await survivor.close()


# --- 10. act without the grant -----------------------------------------------------------------


async def test_10_running_an_agent_needs_tasks_start_by_any_request(base_url):
    runner = await agent(base_url, "runner", "worker")
    limited = await RawParticipant.open(base_url, ROOM, "limited", grants=["tools.call"])
    for type_, data in (
        ("tasks.start", {"agent": "worker"}),
        ("tools.invoke", {"toolkit": "worker", "tool": "run_worker_task"}),
    ):
        refused(await limited.request(type_, data), "permission_denied", "tasks.start")
    admin = await RawParticipant.open(base_url, ROOM, "root", "admin")
    assert (await admin.request("tasks.list"))["data"]["tasks"] == []
    assert not [f for f in runner.frames if f["type"] == "tool.call"]
    for p in (runner, limited, admin):
        await p.close()
