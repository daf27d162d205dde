"""A MeshAgent program ported by changing only its import, token and connection lines.

The ported service (``tests/fixtures/meshagent_program/main.py``: a Tool subclass, a
RemoteToolkit, a TaskRunner with its own ``ask``, an LLMTaskRunner with rules and a
RequiredToolkit, a DynamicLLMTaskRunner, ``asyncio.run(service.run())``) runs under
``taskroom service run`` against a room server process; its invoke script runs as a
process too. The LLM is the scripted OpenAI-compatible server (auto mode), in this process.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from taskroom.agents.llm_task_runner import DEFAULT_OUTPUT_SCHEMA
from taskroom.agents.testing import ScriptedLLMServer
from taskroom.host.auth.tokens import create_token
from taskroom.host.client.room_client import RoomClient
from tests.processes import BIN, ROOT, free_port, start_room

SECRET = "meshagent-port-test-" + "p" * 32
ROOM = "myroom"
PROGRAM = ROOT / "tests" / "fixtures" / "meshagent_program"
CALLED_IN = {"weather", "shout", "weather-reporter", "planner"}
PLAN_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["steps"],
    "properties": {"steps": {"type": "array", "items": {"type": "string"}}},
}


def admin_token() -> str:
    return create_token(SECRET, room=ROOM, identity="inspector", role="admin")


async def toolkits_by_host(url: str) -> dict[str, str]:
    async with RoomClient(url, ROOM, admin_token(), reconnect=False) as client:
        return {i.toolkit.name: i.participant_name for i in await client.list_toolkits()}


def wait_until(check: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def llm_server() -> Iterator[ScriptedLLMServer]:
    """The scripted LLM server on a loop of its own, so it outlives each test's loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = ScriptedLLMServer(auto=True)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    yield server
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


@pytest.fixture(scope="module")
def room_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("room")
    port = free_port()
    proc = start_room(port, tmp / "data", SECRET, log=tmp / "room.log")
    yield f"http://127.0.0.1:{port}"
    proc.stop()


@pytest.fixture(scope="module")
def service(
    room_url: str, llm_server: ScriptedLLMServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """`taskroom service run main.py --room myroom`, as a user runs it (no token given)."""
    log = tmp_path_factory.mktemp("service") / "service.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "taskroom"), "service", "run", str(PROGRAM / "main.py"), "--room", ROOM],
            cwd=ROOT,
            env={
                **os.environ,
                "TASKROOM_URL": room_url,
                "TASKROOM_SECRET": SECRET,
                "OPENAI_BASE_URL": llm_server.base_url,
                "OPENAI_API_KEY": "test",
            },
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        wait_until(
            lambda: CALLED_IN <= set(asyncio.run(toolkits_by_host(room_url))),
            "the toolkit and the three runners in the room",
        )
        yield proc, log
    except BaseException:
        sys.stderr.write(log.read_text())
        raise
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)


def run_invoke_script(room_url: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(PROGRAM / "invoke.py")],
        cwd=ROOT,
        env={
            **os.environ,
            "TASKROOM_URL": room_url,
            "TASKROOM_ROOM": ROOM,
            "TASKROOM_SECRET": SECRET,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_ported_program_answers_all_three(service, room_url: str, llm_server) -> None:
    answers = run_invoke_script(room_url)
    assert answers["shout"] == {"shout": "HELLO ROOM"}
    jsonschema.validate(answers["weather-reporter"], DEFAULT_OUTPUT_SCHEMA)
    jsonschema.validate(answers["planner"], PLAN_SCHEMA)
    assert answers["greet"] == "Hello, Ada!"
    assert CALLED_IN <= set(answers["toolkits"])

    # The reporter answered after calling the required toolkit's tool, which the
    # RemoteToolkit (joined as participant "weather") served.
    assert asyncio.run(toolkits_by_host(room_url))["weather"] == "weather"
    events = asyncio.run(reporter_events(room_url))
    kinds = [e["kind"] for e in events]
    started = kinds.index("tool.started")
    assert events[started]["toolkit"] == "weather" and events[started]["tool"] == "get_weather"
    result = events[kinds.index("tool.result")]
    assert result["ok"] is True and "sunny" in result["preview"]
    assert kinds.index("llm.answer") > kinds.index("tool.result")
    outputs = [
        item.get("output", "")
        for r in llm_server.requests
        for item in (r.body or {}).get("input", [])
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    ]
    assert any('"forecast":"sunny"' in o for o in outputs)
    # The runner's rules reached the model as instructions.
    assert any(
        "get_weather before you answer" in str((r.body or {}).get("instructions"))
        for r in llm_server.requests
    )


async def reporter_events(url: str) -> list[dict[str, Any]]:
    async with RoomClient(url, ROOM, admin_token(), reconnect=False) as client:
        listed = await client.tasks.list(agent="weather-reporter")
        [task] = [t for t in listed["tasks"] if t["status"] == "completed"][:1]
        full = await client.tasks.get(task["id"])
    return [e["data"] for e in full["events"]]


def test_only_import_token_and_connection_lines_name_taskroom() -> None:
    """The port's promise, checked on the files: every line that names taskroom (or the
    helpers a connection needs) is an import, token or connection line."""
    for name, allowed in {
        "main.py": (),
        "invoke.py": ("token = create_token(", "async with RoomClient("),
    }.items():
        code = [
            line
            for line in (PROGRAM / name).read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
        import_block = False
        for line in code:
            if line.startswith(("from ", "import ")):
                import_block = line.rstrip().endswith("(")
                continue
            if import_block:
                import_block = line.strip() != ")"
                continue
            if re.search(r"taskroom|create_token|load_secret|RoomClient\(", line):
                assert line.strip().startswith(allowed), f"{name}: {line.strip()}"


def test_ctrl_c_stops_the_service_and_its_agents_leave(service, room_url: str) -> None:
    proc, log = service
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends
    assert proc.wait(30) == 0, log.read_text()
    wait_until(
        lambda: not CALLED_IN & set(asyncio.run(toolkits_by_host(room_url))),
        "every agent and the toolkit left the room",
    )
