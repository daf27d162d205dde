"""Behaviour of the fast paths: what they cache is refreshed, what they cancel is closed."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import aiohttp
import pytest
import websockets
from aiohttp import web

from taskroom.agents import LLMTaskRunner, OpenAIResponsesAdapter, TaskRunner
from taskroom.agents.task_runner import TaskContext
from taskroom.agents.testing import ScriptedLLMServer
from taskroom.agents.testing.steps import hang
from taskroom.host.auth.tokens import create_token
from taskroom.host.auth.webhooks import SIGNATURE_HEADER, sign_webhook
from taskroom.host.protocol import RoomError
from taskroom.host.protocol.tasks import TaskRecord, TaskStatus
from taskroom.host.server.peer import QueuedPeer
from taskroom.host.server.tasks import SQLiteTaskStore
from taskroom.host.server.ws_batch import batch_sender
from taskroom.host.service.service_host import ServiceHost
from taskroom.toolkits import Toolkit, tool
from taskroom.toolkits.requirements import RequiredToolkit

from .conftest import SECRET


@tool(read_only=True)
def one() -> str:
    """The first tool."""
    return "one"


@tool(read_only=True)
def two() -> str:
    """The second tool."""
    return "two"


class ListsItsTools(TaskRunner):
    """Answers with the tools its required toolkit offers this task, after calling one."""

    async def ask(self, context: TaskContext, arguments: dict[str, Any]) -> Any:
        [kv] = [tk for tk in context.toolkits if tk.name == "kv"]
        called = await kv.tools["one"].execute(context.tool_context, {})
        return {"tools": sorted(kv.tools), "called": called}


async def test_required_toolkits_are_listed_once_and_refreshed_when_the_room_changes(connect):
    host = await connect("kv-host", "tool")
    await host.host_toolkit(Toolkit(name="kv", tools=[one]))
    agent = await connect("lister", "agent")
    lists = 0
    list_toolkits = agent.list_toolkits

    async def counting_list_toolkits(**kw: Any) -> Any:
        nonlocal lists
        lists += 1
        return await list_toolkits(**kw)

    agent.list_toolkits = counting_list_toolkits  # type: ignore[method-assign]
    runner = ListsItsTools(name="lister", requires=[RequiredToolkit("kv", timeout=2)])
    await runner.start(agent)
    caller = await connect("alice")

    async def run() -> dict[str, Any]:
        return await caller.invoke_tool("lister", "run_lister_task", {})

    lists = 0
    assert await run() == {"tools": ["one"], "called": "one"}
    assert await run() == {"tools": ["one"], "called": "one"}
    assert lists == 1, "the second task reused the proxies instead of listing again"

    changed = asyncio.Event()
    agent.on("toolkit.registered", lambda _: changed.set())
    await host.unhost_toolkit("kv")
    await host.host_toolkit(Toolkit(name="kv", tools=[one, two]))
    await asyncio.wait_for(changed.wait(), 5)
    await asyncio.sleep(0)  # the cache hears the same event on the next loop turn
    assert await run() == {"tools": ["one", "two"], "called": "one"}
    assert lists == 2

    gone = asyncio.Event()
    agent.on("toolkit.unregistered", lambda _: gone.set())
    await host.unhost_toolkit("kv")
    await asyncio.wait_for(gone.wait(), 5)
    await asyncio.sleep(0)
    with pytest.raises(RoomError, match="required toolkit 'kv' is no longer in room"):
        await run()
    await runner.stop()


async def test_cancelling_a_task_mid_llm_call_closes_the_llm_connection(join):
    """The default client's transport aborts the HTTP request: the LLM server sees the
    connection close instead of generating an answer nobody will read."""
    async with ScriptedLLMServer(auto=True) as llm:
        llm.script(hang())
        adapter = OpenAIResponsesAdapter(base_url=llm.base_url, api_key="test", max_retries=0)
        runner = LLMTaskRunner(llm_adapter=adapter)
        agent = await join("llm-task-runner", "agent")
        await runner.start(agent)
        caller = await join("alice")
        started = await caller.tasks.start("llm-task-runner", {"prompt": "think forever"})
        task_id = started["task_ids"][0]
        while not llm.requests:
            await asyncio.sleep(0.01)
        [request] = llm.requests
        assert request.finished_at is None

        await caller.tasks.cancel(task_id)
        deadline = asyncio.get_running_loop().time() + 10
        while request.finished_at is None and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)

        assert request.disconnected, "the LLM request was left running after the cancel"
        waited = await caller.tasks.wait(task_id, timeout=5)
        assert waited["tasks"][0]["status"] == "cancelled"
        await runner.stop()
        await adapter.aclose()


class PidRunner(TaskRunner):
    """Says which process it runs in, in its metadata and in each answer."""

    def __init__(self) -> None:
        super().__init__(name="pids", max_concurrency=1)

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "pid": os.getpid()}

    async def ask(self, context: TaskContext, arguments: dict[str, Any]) -> Any:
        await asyncio.sleep(0.2)  # busy long enough that the next task goes elsewhere
        return {"pid": os.getpid()}


async def test_workers_serve_one_agent_from_several_processes(full_room, join):
    service = ServiceHost(webhook_secret=SECRET)
    service.add_path("/pids", PidRunner, identity="pids", workers=2)
    caller = await join("alice")
    async with service:
        token = create_token(SECRET, room="test", identity="pids", role="agent")
        data = {"room_url": full_room.base_url, "room_name": "test", "token": token}
        body = json.dumps({"event": "room.call", "data": data}).encode()
        headers = {SIGNATURE_HEADER: sign_webhook("POST", "/pids", body, SECRET)}
        async with (
            aiohttp.ClientSession() as http,
            http.post(service.base_url + "/pids", data=body, headers=headers) as resp,
        ):
            assert resp.status == 200, await resp.text()

        instances = await caller.list_toolkits(name="pids")
        pids = {i.toolkit.metadata["pid"] for i in instances}
        assert len(instances) == 2
        assert len(pids) == 2 and os.getpid() in pids

        runs = await asyncio.gather(*(caller.tasks.run("pids", {}) for _ in range(2)))
        assert {run["result"]["pid"] for run in runs} == pids

    deadline = asyncio.get_running_loop().time() + 10
    while await caller.list_toolkits(name="pids"):
        assert asyncio.get_running_loop().time() < deadline, "a worker stayed in the room"
        await asyncio.sleep(0.05)


def test_workers_need_a_factory_other_processes_can_import():
    service = ServiceHost(webhook_secret=SECRET)
    with pytest.raises(ValueError, match="import by name"):
        service.add_path("/pids", lambda: PidRunner(), identity="pids", workers=2)
    service.add_path("/one", lambda: PidRunner(), identity="one")  # one process: anything goes


async def test_frames_sent_together_arrive_whole_and_in_order():
    """A batch mixes the three header sizes of RFC 6455 (7-bit, 16-bit, 64-bit lengths)."""
    texts = ["a" * 5, "b" * 125, "c" * 126, "d" * 65535, "é" * 40000, "f" * 3]

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await batch_sender(ws, request)(texts)
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/ws", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws", compression=None) as ws:
            received = [message async for message in ws]
    finally:
        await runner.cleanup()
    assert received == texts


async def test_a_busy_peer_sends_what_is_queued_in_one_batch():
    singles: list[str] = []
    batches: list[list[str]] = []

    async def send_text(text: str) -> None:
        singles.append(text)

    async def send_batch(texts: list[str]) -> None:
        batches.append(texts)

    async def close_socket(code: int, reason: str) -> None:
        return None

    peer = QueuedPeer(send_text, close_socket, send_batch=send_batch)
    peer.send("one")
    await asyncio.sleep(0)
    for text in ("two", "three", "four"):
        peer.send(text)
    await peer.close(1000, "done")
    assert singles == ["one"]
    assert batches == [["two", "three", "four"]]
    assert peer.queued_bytes == 0


async def test_a_finished_task_is_read_back_as_last_saved_and_gone_after_sweep(tmp_path):
    """Recently finished records are answered from memory; what they answer must be what
    the file holds: the last save, and nothing once retention has removed it."""
    store = SQLiteTaskStore(tmp_path / "tasks.sqlite3")
    try:
        record = TaskRecord(id="t1", room="r", agent="a", tool="run_a_task")
        await store.save(record)
        record.status, record.result, record.finished_at = TaskStatus.COMPLETED, "first", 1.0
        await store.save(record)
        first = await store.get("r", "t1")
        assert first is not None and first.result == "first"
        first.result = "changed by a reader"
        assert (await store.get("r", "t1")).result == "first"  # type: ignore[union-attr]

        record.status, record.result = TaskStatus.FAILED, "second"
        await store.save(record)
        again = await store.get("r", "t1")
        assert again is not None and (again.status, again.result) == ("failed", "second")

        assert await store.sweep(older_than=2.0) == 1
        assert await store.get("r", "t1") is None
    finally:
        await store.close()
