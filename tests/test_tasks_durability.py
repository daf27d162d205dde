"""Tasks outlive processes: the room is killed and restarted, an agent dies mid-task."""

from __future__ import annotations

import asyncio
import subprocess
import time

from taskroom.agents.testing import ScriptedLLMServer, hang
from taskroom.host.auth.tokens import create_token
from taskroom.host.client.room_client import RoomClient

from .conftest import SECRET
from .processes import BIN, ROOT, Process, free_port, start_agent, start_room, wait_http

ROOM = "durable"


def token(identity: str, role: str = "user") -> str:
    return create_token(SECRET, room=ROOM, identity=identity, role=role)


async def wait_for_agent(
    client: RoomClient, name: str = "llm-task-runner", timeout: float = 20
) -> None:
    deadline = time.monotonic() + timeout
    while not await client.list_toolkits(name=name):
        assert time.monotonic() < deadline, f"agent {name} never joined"
        await asyncio.sleep(0.1)


async def test_finished_results_survive_a_room_kill_and_restart(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = tmp_path / "room"
    async with ScriptedLLMServer() as llm:
        room = start_room(port, data, SECRET, log=tmp_path / "room.log")
        agent = start_agent(url, ROOM, token("llm-task-runner", "agent"), llm.base_url)
        try:
            async with RoomClient(url, ROOM, token("alice"), reconnect=False) as alice:
                await wait_for_agent(alice)
                done = []
                for i in range(3):
                    started = await alice.tasks.start("llm-task-runner", {"prompt": f"job {i}"})
                    done.append(started["task_ids"][0])
                for task_id in done:
                    await alice.tasks.wait(task_id, timeout=10)
                llm.script(hang())
                running = (await alice.tasks.start("llm-task-runner", {"prompt": "stuck"}))[
                    "task_ids"
                ][0]
                while len(llm.requests) < 4:
                    await asyncio.sleep(0.05)
            room.kill()
            room = start_room(port, data, SECRET, log=tmp_path / "room.log")
            async with RoomClient(url, ROOM, token("alice"), reconnect=False) as alice:
                for i, task_id in enumerate(done):
                    result = await alice.tasks.result(task_id)
                    assert result["status"] == "completed"
                    assert f"job {i}" in result["result"]["result"]
                lost = await alice.tasks.get(running)
                assert lost["status"] == "failed"
                assert "stopped while this task was running" in lost["error"]["message"]
        finally:
            agent.stop()
            room.stop()


async def test_agent_killed_mid_task_fails_the_task_quickly(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with ScriptedLLMServer() as llm:
        llm.script(hang())
        room = start_room(port, tmp_path / "room", SECRET)
        agent = start_agent(url, ROOM, token("llm-task-runner", "agent"), llm.base_url)
        try:
            async with RoomClient(url, ROOM, token("alice"), reconnect=False) as alice:
                await wait_for_agent(alice)
                task_id = (await alice.tasks.start("llm-task-runner", {"prompt": "x"}))["task_ids"][
                    0
                ]
                while not llm.requests:
                    await asyncio.sleep(0.05)
                assert (await alice.tasks.get(task_id))["status"] == "running"
                killed_at = time.monotonic()
                agent.kill()
                waited = await alice.tasks.wait(task_id, timeout=10)
                assert time.monotonic() - killed_at < 5
                task = waited["tasks"][0]
                assert task["status"] == "failed"
                assert "left the room mid-call" in task["error"]["message"]
        finally:
            agent.stop()
            room.stop()


def test_a_room_with_an_emptied_task_file_refuses_to_start(tmp_path):
    """A 0-byte task file means every task is gone: say so and keep the file, don't serve."""
    data = tmp_path / "room"
    data.mkdir()
    (data / "tasks.sqlite3").write_bytes(b"")
    serve = [str(BIN / "taskroom"), "room", "serve", "--port", str(free_port())]
    done = subprocess.run(
        [*serve, "--data-dir", str(data)],
        cwd=ROOT,
        env={"TASKROOM_SECRET": SECRET, "PATH": str(BIN)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert str(data / "tasks.sqlite3") in lines[0] and "empty" in lines[0]
    assert [p.name for p in data.iterdir()] == ["tasks.sqlite3"]


def test_on_damage_fresh_starts_a_room_over_an_emptied_task_file(tmp_path):
    data = tmp_path / "room"
    data.mkdir()
    (data / "tasks.sqlite3").write_bytes(b"")
    port = free_port()
    room = Process(
        [
            str(BIN / "taskroom"),
            "room",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data),
            "--on-damage",
            "fresh",
        ],
        env={"TASKROOM_SECRET": SECRET},
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
    finally:
        room.stop()
    names = sorted(p.name for p in data.iterdir())
    assert "tasks.sqlite3" in names
    assert any(n.startswith("tasks.sqlite3.damaged") for n in names), names
    assert (data / "tasks.sqlite3").stat().st_size > 0


def test_on_damage_takes_only_its_three_choices(tmp_path):
    done = subprocess.run(
        [str(BIN / "taskroom"), "room", "serve", "--on-damage", "ignore"],
        cwd=ROOT,
        env={"TASKROOM_SECRET": SECRET, "PATH": str(BIN)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert "ignore" in done.stderr and "Traceback" not in done.stderr
