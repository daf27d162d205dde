"""Durable tasks through a real room: start, status, wait, result, cancel, list, batches."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import pytest

from taskroom.agents import LLMTaskRunner, OpenAIResponsesAdapter, TaskRunner
from taskroom.agents.testing import ScriptedLLMServer, delay, hang, json_output
from taskroom.host.protocol import RoomError
from taskroom.host.server.build import build_room_server
from taskroom.host.server.tasks import TaskStoreError

from .conftest import SECRET

ROOM = "tasks"


@pytest.fixture
async def llm():
    async with ScriptedLLMServer(auto=True) as server:
        yield server


@pytest.fixture
def room_name() -> str:
    return ROOM


@pytest.fixture
async def agent(join, llm):
    client = await join("llm-task-runner", "agent")
    adapter = OpenAIResponsesAdapter(base_url=llm.base_url, api_key="test", max_retries=0)
    runner = LLMTaskRunner(llm_adapter=adapter)
    await runner.start(client)
    return runner


async def the_llm_request_ends(llm: ScriptedLLMServer) -> None:
    """The LLM request of a cancelled task is aborted, not left to run for nobody."""
    for _ in range(50):
        if llm.requests[0].finished_at is not None:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the LLM request was not aborted")


async def test_start_status_wait_result(join, agent, llm):
    alice = await join()
    started = await alice.tasks.start("llm-task-runner", {"prompt": "Summarise the news"})
    (task_id,) = started["task_ids"]
    assert task_id.startswith("t_") and len(task_id) >= 24
    status = await alice.tasks.get(task_id)
    assert status["status"] in ("pending", "running", "completed")
    waited = await alice.tasks.wait(task_id, timeout=10)
    assert waited["done"] and not waited["timed_out"]
    result = await alice.tasks.result(task_id)
    assert result["status"] == "completed"
    assert "Summarise the news" in result["result"]["result"]
    assert result["usage"]["total_tokens"] > 0
    final = await alice.tasks.get(task_id)
    kinds = [e["data"]["kind"] for e in final["events"]]
    assert "llm.turn" in kinds and "llm.answer" in kinds
    assert final["poll_interval"] is None and final["finished_at"] >= final["started_at"]


async def test_batch_over_three_models(join, agent, llm):
    alice = await join()
    models = ["gpt-5", "gpt-5-mini", "o3"]
    started = await alice.tasks.start(
        "llm-task-runner", {"prompt": "Review this"}, models=models, read_only=True
    )
    assert started["batch_id"] and len(started["task_ids"]) == 3
    waited = await alice.tasks.wait(batch_id=started["batch_id"], mode="all", timeout=10)
    assert waited["done"]
    assert sorted(t["model"] for t in waited["tasks"]) == sorted(models)
    assert {t["status"] for t in waited["tasks"]} == {"completed"}
    sent_models = sorted(r.body["model"] for r in llm.requests if r.path == "/v1/responses")
    assert sent_models == sorted(models)
    listed = await alice.tasks.list(batch_id=started["batch_id"])
    assert {t["id"] for t in listed["tasks"]} == set(started["task_ids"])


async def test_batch_with_write_access_is_refused(join, agent):
    alice = await join()
    with pytest.raises(RoomError) as err:
        await alice.tasks.start("llm-task-runner", {"prompt": "x"}, models=["a", "b"])
    assert err.value.code == "invalid_request" and "read_only" in err.value.message


async def test_cancel_during_slow_llm_call_ends_within_a_second(join, agent, llm):
    llm.script(hang())
    alice = await join()
    task_id = (await alice.tasks.start("llm-task-runner", {"prompt": "slow"}))["task_ids"][0]
    while not llm.requests:
        await asyncio.sleep(0.02)
    began = time.monotonic()
    cancelled = await alice.tasks.cancel(task_id)
    assert cancelled["cancelled"] == [task_id]
    waited = await alice.tasks.wait(task_id, timeout=5)
    assert time.monotonic() - began < 1.0
    assert waited["tasks"][0]["status"] == "cancelled"
    await the_llm_request_ends(llm)


async def test_run_is_one_request_that_answers_when_the_task_ends(join, agent, llm):
    alice = await join()
    sent: list[str] = []
    real_send = alice.send_text

    async def counting_send(text: str) -> None:
        sent.append(text)
        await real_send(text)

    alice.send_text = counting_send  # type: ignore[method-assign]
    task = await alice.tasks.run("llm-task-runner", {"prompt": "Summarise"}, timeout=10)
    assert task["status"] == "completed" and "Summarise" in task["result"]["result"]
    assert [json.loads(t)["type"] for t in sent] == ["tasks.start"]


async def test_cancelling_a_run_cancels_its_task_and_the_llm_request(join, agent, llm):
    llm.script(hang())
    alice = await join()
    running = asyncio.create_task(alice.tasks.run("llm-task-runner", {"prompt": "slow"}))
    while not llm.requests:
        await asyncio.sleep(0.02)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    (task,) = (await alice.tasks.list(agent="llm-task-runner"))["tasks"]
    waited = await alice.tasks.wait(task["id"], timeout=5)
    assert waited["tasks"][0]["status"] == "cancelled"
    await the_llm_request_ends(llm)


async def test_deadline_and_inactivity_watchdog(join, agent, llm):
    llm.script(hang(), hang())
    alice = await join()
    by_deadline = (await alice.tasks.start("llm-task-runner", {"prompt": "a"}, deadline=0.5))[
        "task_ids"
    ][0]
    by_watchdog = (
        await alice.tasks.start("llm-task-runner", {"prompt": "b"}, inactivity_timeout=0.6)
    )["task_ids"][0]
    first = (await alice.tasks.wait(by_deadline, timeout=5))["tasks"][0]
    second = (await alice.tasks.wait(by_watchdog, timeout=5))["tasks"][0]
    assert first["status"] == "failed" and first["error"]["code"] == "timeout"
    assert "did not answer within 0.5 s" in first["error"]["message"]
    assert second["status"] == "failed" and "inactivity" in second["error"]["message"]


async def test_subscribe_pushes_status_and_progress(join, agent):
    alice = await join()
    seen: list[tuple[str, dict]] = []
    alice.on("task.updated", lambda d: seen.append(("updated", d)))
    alice.on("task.progress", lambda d: seen.append(("progress", d)))
    await alice.tasks.subscribe(all=True)
    task_id = (await alice.tasks.start("llm-task-runner", {"prompt": "hi"}))["task_ids"][0]
    await alice.tasks.wait(task_id, timeout=10)
    await asyncio.sleep(0.1)
    statuses = [d["status"] for kind, d in seen if kind == "updated" and d["task_id"] == task_id]
    assert statuses[0] == "running" and statuses[-1] == "completed"
    assert any(kind == "progress" and d["data"]["kind"] == "llm.turn" for kind, d in seen)


async def test_direct_invocation_is_recorded_as_a_task(join, agent):
    alice = await join()
    answer = await alice.invoke_tool(
        "llm-task-runner", "run_llm-task-runner_task", {"prompt": "direct"}
    )
    assert "direct" in answer["result"]
    listed = await alice.tasks.list(agent="llm-task-runner")
    assert listed["tasks"][0]["arguments"] == {"prompt": "direct"}
    assert listed["tasks"][0]["status"] == "completed"


async def test_list_filters_and_paginates(join, agent):
    alice = await join()
    ids = []
    for i in range(5):
        ids.append((await alice.tasks.start("llm-task-runner", {"prompt": f"n{i}"}))["task_ids"][0])
        await asyncio.sleep(0.01)
    for task_id in ids:
        await alice.tasks.wait(task_id, timeout=10)
    page1 = await alice.tasks.list(limit=2)
    assert [t["id"] for t in page1["tasks"]] == ids[::-1][:2]
    page2 = await alice.tasks.list(limit=2, before=page1["next_before"])
    assert [t["id"] for t in page2["tasks"]] == ids[::-1][2:4]
    assert (await alice.tasks.list(status="running"))["tasks"] == []
    assert len((await alice.tasks.list(status="completed"))["tasks"]) == 5


async def test_tasks_follow_the_callers_grants(join, agent):
    alice = await join("alice")
    bob = await join("bob")
    admin = await join("root", "admin")
    task_id = (await alice.tasks.start("llm-task-runner", {"prompt": "mine"}))["task_ids"][0]
    await alice.tasks.wait(task_id, timeout=10)
    with pytest.raises(RoomError) as err:
        await bob.tasks.get(task_id)
    assert err.value.code == "not_found"
    assert (await bob.tasks.list())["tasks"] == []
    assert (await admin.tasks.get(task_id))["status"] == "completed"


async def test_bad_task_requests(join, agent):
    alice = await join()
    with pytest.raises(RoomError) as err:
        await alice.tasks.get("t_doesnotexist")
    assert err.value.code == "not_found"
    with pytest.raises(RoomError) as err:
        await alice.tasks.start("no-such-agent", {"prompt": "x"})
    assert err.value.code == "not_found" and "llm-task-runner" in str(err.value.details)
    with pytest.raises(RoomError) as err:
        await alice.tasks.start("llm-task-runner", {"prompt": 5})
    assert err.value.code == "invalid_request" and "prompt" in err.value.message
    task_id = (await alice.tasks.start("llm-task-runner", {"prompt": "x"}))["task_ids"][0]
    for bad in (-1, 10**7):
        with pytest.raises(RoomError) as err:
            await alice.tasks.wait(task_id, timeout=bad)
        assert err.value.code == "invalid_request" and "timeout" in err.value.message
    await alice.tasks.wait(task_id, timeout=10)
    with pytest.raises(RoomError) as err:
        await alice.tasks.cancel(task_id)
    assert err.value.code == "conflict" and "already finished" in err.value.message
    with pytest.raises(RoomError) as err:
        await alice.request("tasks.cancel", {"task_id": task_id, "batch_id": "b"})
    assert err.value.code == "invalid_request"


async def test_result_of_unfinished_task_is_a_conflict(join, agent, llm):
    llm.script(delay(0.5, json_output({"result": "late"})))
    alice = await join()
    task_id = (await alice.tasks.start("llm-task-runner", {"prompt": "x"}))["task_ids"][0]
    with pytest.raises(RoomError) as err:
        await alice.tasks.result(task_id)
    assert err.value.code == "conflict"
    await alice.tasks.wait(task_id, timeout=5)
    assert (await alice.tasks.result(task_id))["result"] == {"result": "late"}


class CountingRunner(TaskRunner):
    """Records every task it runs and how many run at once."""

    def __init__(self, seen: list[str], max_concurrency: int) -> None:
        super().__init__(name="counter", max_concurrency=max_concurrency)
        self.seen = seen
        self.active = 0
        self.peak = 0

    async def ask(self, context, arguments):
        self.active += 1
        self.peak = max(self.peak, self.active)
        self.seen.append(context.task_id)
        await asyncio.sleep(0.02)
        self.active -= 1
        return {"n": arguments.get("n")}


async def test_200_tasks_over_two_instances_none_lost_or_run_twice(join):
    seen: list[str] = []
    runners = [CountingRunner(seen, 10), CountingRunner(seen, 10)]
    for runner in runners:
        await runner.start(await join("counter", "agent"))
    alice = await join()
    started = await asyncio.gather(*(alice.tasks.start("counter", {"n": i}) for i in range(200)))
    ids = [s["task_ids"][0] for s in started]
    for task_id in ids:
        await alice.tasks.wait(task_id, timeout=30)
    results = [await alice.tasks.result(t) for t in ids]
    assert [r["result"]["n"] for r in results] == list(range(200))
    assert sorted(seen) == sorted(ids) and len(set(seen)) == 200
    assert all(r.peak <= 10 for r in runners)
    assert all(r.peak >= 2 for r in runners), "both instances should have taken work"


async def test_queued_task_runs_when_an_instance_joins(join, llm):
    alice = await join()
    with pytest.raises(RoomError):
        await alice.tasks.start("llm-task-runner", {"prompt": "early"})
    seen: list[str] = []
    runner = CountingRunner(seen, 1)
    await runner.start(await join("counter", "agent"))
    ids = [(await alice.tasks.start("counter", {"n": i}))["task_ids"][0] for i in range(3)]
    assert (await alice.tasks.get(ids[2]))["status"] == "pending"
    waited = [await alice.tasks.wait(t, timeout=5) for t in ids]
    assert all(w["tasks"][0]["status"] == "completed" for w in waited)
    assert runner.peak == 1


def test_corrupt_store_is_a_clear_error(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "tasks.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(TaskStoreError) as err:
        build_room_server(data_dir=data, secret=SECRET)
    assert "tasks.sqlite3" in str(err.value)


def test_locked_store_is_a_clear_error(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    holder = sqlite3.connect(data / "tasks.sqlite3", isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(TaskStoreError) as err:
            build_room_server(data_dir=data, secret=SECRET)
        assert "locked" in str(err.value)
    finally:
        holder.close()
