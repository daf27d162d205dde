"""A service host, for real: rooms call its agents in by signed webhook.

A room server and ``taskroom service run invoke/llm_taskrunner_service.py`` run as separate
processes; the scripted OpenAI-compatible server (auto mode) runs in this process on its
own thread; every client is a real RoomClient or HTTP client.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest

from taskroom.agents.demo import DYNAMIC_OUTPUT_SCHEMA
from taskroom.agents.llm_task_runner import DEFAULT_OUTPUT_SCHEMA as FIXED_OUTPUT_SCHEMA
from taskroom.agents.testing import ScriptedLLMServer
from taskroom.host.auth.tokens import create_token
from taskroom.host.auth.webhooks import SIGNATURE_HEADER, sign_webhook
from taskroom.host.client.room_client import RoomClient
from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.invoke.invoke_llm_taskrunner import main as invoke_main
from tests.processes import BIN, ROOT, Process, free_port, start_room, wait_http

SECRET = "service-host-test-" + "s" * 32
ROOM = "alpha"
RUNNERS = ("llm-task-runner", "dynamic-llm-task-runner")
SERVICE = "llm_taskrunner_service"
"""The name `taskroom service run` registers the example file's service under."""


def token(room: str, identity: str = "tester", role: str = "user") -> str:
    return create_token(SECRET, room=room, identity=identity, role=role)


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)


async def toolkit_names(client: RoomClient) -> set[str]:
    return {i.toolkit.name for i in await client.list_toolkits()}


async def health(service_url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(service_url + "/") as resp:
        return await resp.json()


# --- processes -----------------------------------------------------------------------


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
def service_url(
    room_url: str, llm_server: ScriptedLLMServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`taskroom service run` on the example file, both runners called into ROOM."""
    log = tmp_path_factory.mktemp("service") / "service.log"
    port = free_port()
    proc = Process(
        [
            str(BIN / "taskroom"),
            "service",
            "run",
            str(ROOT / "invoke" / "llm_taskrunner_service.py"),
            "--room",
            ROOM,
            "--port",
            str(port),
            "--room-url",
            room_url,
            "--token",
            token(ROOM, "launcher", role="admin"),
        ],
        env={
            "TASKROOM_SECRET": SECRET,
            "TASKROOM_WEBHOOK_SECRET": "",
            "OPENAI_BASE_URL": llm_server.base_url,
            "OPENAI_API_KEY": "test",
        },
        log=log,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/")

        async def both_joined() -> None:
            async with RoomClient(room_url, ROOM, token(ROOM), reconnect=False) as client:

                async def joined() -> bool:
                    return set(RUNNERS) <= await toolkit_names(client)

                await eventually(joined, "both runners in the room")

        asyncio.run(both_joined())
        yield url
    except BaseException:
        sys.stderr.write(log.read_text())
        raise
    finally:
        proc.stop()


@pytest.fixture
async def join(room_url: str) -> AsyncIterator[Callable[..., Awaitable[RoomClient]]]:
    clients: list[RoomClient] = []

    async def open_client(room: str, identity: str = "tester") -> RoomClient:
        client = RoomClient(room_url, room, token(room, identity), reconnect=False)
        await client.connect()
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.close()


# --- calling agents in -------------------------------------------------------------------


async def test_room_calls_both_runners_in_by_webhook(service_url: str, join) -> None:
    client = await join(ROOM)
    found = {i.toolkit.name: i for i in await client.list_toolkits()}
    assert set(RUNNERS) <= set(found)
    roles = {p.name: p.role for p in await client.list_participants()}
    assert roles["llm-task-runner"] == roles["dynamic-llm-task-runner"] == "agent"
    assert found["llm-task-runner"].toolkit.tools[0].name == "run_llm-task-runner_task"


async def test_invoke_script_runs_both_runners(
    service_url: str, room_url: str, llm_server: ScriptedLLMServer
) -> None:
    before = len(llm_server.requests)
    results = await invoke_main(room_url, ROOM, token(ROOM, "invoker"))
    jsonschema.validate(results["llm-task-runner"], FIXED_OUTPUT_SCHEMA)
    jsonschema.validate(results["dynamic-llm-task-runner"], DYNAMIC_OUTPUT_SCHEMA)
    assert len(llm_server.requests) >= before + 2


async def test_well_known_describes_both_agents(service_url: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(service_url + "/.well-known/taskroom-service.json") as resp,
    ):
        assert resp.status == 200
        agents = {a["identity"]: a for a in (await resp.json())["agents"]}
    assert set(agents) == set(RUNNERS)
    fixed, dynamic = agents["llm-task-runner"], agents["dynamic-llm-task-runner"]
    assert fixed["path"] == "/llm-task-runner"
    assert fixed["output_schema"] == FIXED_OUTPUT_SCHEMA
    assert "prompt" in fixed["input_schema"]["properties"]
    assert dynamic["output_schema"] is None
    assert "output_schema" in dynamic["input_schema"]["required"]
    for agent in agents.values():
        assert agent["kind"] == "task_runner"
        assert agent["labels"] == ["llm"]
        assert agent["supports_tools"] is False
        assert agent["title"] and agent["description"]
    assert (await health(service_url))["paths"] == sorted("/" + r for r in RUNNERS)


async def test_one_service_serves_two_rooms(service_url: str, room_url: str, join) -> None:
    before = (await health(service_url))["instances"]
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "taskroom"),
        "call",
        "agent",
        "--room",
        "beta",
        "--service",
        SERVICE,
        "--agent",
        "llm-task-runner",
        "--room-url",
        room_url,
        "--token",
        token("beta"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    joined = json.loads(out)
    assert joined["identity"] == "llm-task-runner"

    alpha, beta = await join(ROOM), await join("beta")
    assert joined["participant_id"] in {p.id for p in await beta.list_participants()}
    prompt = {"prompt": "hello from two rooms"}
    in_alpha, in_beta = await asyncio.gather(
        alpha.invoke_tool("llm-task-runner", "run_llm-task-runner_task", prompt),
        beta.invoke_tool("llm-task-runner", "run_llm-task-runner_task", prompt),
    )
    assert isinstance(in_alpha["result"], str) and isinstance(in_beta["result"], str)
    assert (await health(service_url))["instances"] == before + 1


async def test_dismiss_makes_the_agent_leave(service_url: str, join) -> None:
    client = await join("gamma")
    before = (await health(service_url))["instances"]
    joined = await client.request(
        "room.call", {"service": SERVICE, "agent": "dynamic-llm-task-runner"}
    )
    pid = joined["participant_id"]
    assert "dynamic-llm-task-runner" in await toolkit_names(client)
    assert (await health(service_url))["instances"] == before + 1

    left = asyncio.ensure_future(
        client.wait_for_event("participant.left", lambda d: d["id"] == pid)
    )
    gone = asyncio.ensure_future(client.wait_for_event("toolkit.unregistered"))
    answer = await client.request("room.dismiss", {"participant_id": pid})
    assert answer == {"participant_id": pid, "name": "dynamic-llm-task-runner", "dismissed": True}
    await asyncio.wait_for(asyncio.gather(left, gone), 5)
    assert await toolkit_names(client) == set()

    async def stopped() -> bool:
        return (await health(service_url))["instances"] == before

    await eventually(stopped, "the service stopped the dismissed agent")
    await asyncio.sleep(0.5)  # a reconnecting client would be back by now
    assert pid not in {p.id for p in await client.list_participants()}


# --- webhooks the service must refuse ------------------------------------------------------


def room_call_body(room: str = ROOM, event: str = "room.call") -> bytes:
    data = {"room_url": "http://127.0.0.1:9", "room_name": room, "token": token(room, "x")}
    return json.dumps({"event": event, "data": data}).encode()


PATH = "/llm-task-runner"


def sign(body: bytes, secret: str = SECRET, path: str = PATH, **kw: Any) -> dict[str, str]:
    return {SIGNATURE_HEADER: sign_webhook("POST", path, body, secret, **kw)}


def unsigned() -> tuple[bytes, dict[str, str]]:
    return room_call_body(), {}


def forged() -> tuple[bytes, dict[str, str]]:
    body = room_call_body()
    return body, sign(body, "not-the-shared-secret-" + "f" * 32)


def tampered() -> tuple[bytes, dict[str, str]]:
    return room_call_body(room="elsewhere"), sign(room_call_body())


def expired() -> tuple[bytes, dict[str, str]]:
    body = room_call_body()
    return body, sign(body, ttl=-60)


def other_path() -> tuple[bytes, dict[str, str]]:
    body = room_call_body()
    return body, sign(body, path="/dynamic-llm-task-runner")


def other_event() -> tuple[bytes, dict[str, str]]:
    body = room_call_body(event="room.closed")
    return body, sign(body)


def bad_data() -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"event": "room.call", "data": {"room_name": ROOM}}).encode()
    return body, sign(body)


@pytest.mark.parametrize(
    ("make", "status", "reason"),
    [
        (unsigned, 401, "not signed"),
        (forged, 401, "does not match this service's webhook secret"),
        (tampered, 401, "body does not match its signature"),
        (expired, 401, "expired"),
        (other_path, 401, "signed for POST /dynamic-llm-task-runner, not POST /llm-task-runner"),
        (other_event, 400, "unsupported event 'room.closed'"),
        (bad_data, 400, "room_url"),
    ],
    ids=lambda v: v.__name__ if callable(v) else None,
)
async def test_service_refuses_bad_webhooks(
    service_url: str,
    make: Callable[[], tuple[bytes, dict[str, str]]],
    status: int,
    reason: str,
) -> None:
    body, headers = make()
    async with (
        aiohttp.ClientSession() as http,
        http.post(service_url + "/llm-task-runner", data=body, headers=headers) as resp,
    ):
        assert resp.status == status
        assert reason in (await resp.json())["error"]


async def test_unknown_path_is_404_and_names_the_paths(service_url: str) -> None:
    body = room_call_body()
    async with (
        aiohttp.ClientSession() as http,
        http.post(service_url + "/nope", data=body, headers=sign(body, path="/nope")) as resp,
    ):
        assert resp.status == 404
        assert "/llm-task-runner" in (await resp.json())["error"]


def test_service_run_refuses_a_file_without_a_service(tmp_path: Path) -> None:
    file = tmp_path / "empty_service.py"
    file.write_text("x = 1\n")
    done = subprocess.run(
        [str(BIN / "taskroom"), "service", "run", str(file), "--room", ROOM, "--token", "t"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "TASKROOM_WEBHOOK_SECRET": SECRET},
    )
    assert done.returncode == 1
    assert "defines no ServiceHost" in done.stderr
    assert "Traceback" not in done.stderr


# --- the documented command, as written ----------------------------------------------------


def test_documented_service_run_works_as_written(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    """`taskroom service run invoke/llm_taskrunner_service.py --room myroom` with nothing
    exported but where the room is: the secret comes from the room's data folder
    (TASKROOM_DATA_DIR here), the port is picked for the file, and Ctrl-C stops it all."""
    data_dir = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if k not in ("TASKROOM_SECRET", "TASKROOM_WEBHOOK_SECRET", "TASKROOM_TOKEN")
        },
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    log = tmp_path / "processes.log"
    procs: list[subprocess.Popen[bytes]] = []

    def start(command: str, **extra: str) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                command.split(),
                cwd=ROOT,
                env={**env, **extra},
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        procs.append(proc)
        return proc

    try:
        # The room makes its own secret in its data folder on first start.
        start(f"taskroom room serve --port {port} --data-dir {data_dir}")
        wait_http(url + "/healthz")
        service = start(
            "taskroom service run invoke/llm_taskrunner_service.py --room myroom",
            TASKROOM_URL=url,
            TASKROOM_DATA_DIR=str(data_dir),
            OPENAI_BASE_URL=llm_server.base_url,
            OPENAI_API_KEY="test",
        )
        secret = (data_dir / "secret.key").read_text().strip()
        user = create_token(secret, room="myroom", identity="tester")

        async def run_both() -> dict[str, Any]:
            async with RoomClient(url, "myroom", user, reconnect=False) as client:

                async def joined() -> bool:
                    return set(RUNNERS) <= await toolkit_names(client)

                await eventually(joined, "both runners in the room", timeout=30)
            return await invoke_main(url, "myroom", user)

        results = asyncio.run(run_both())
        jsonschema.validate(results["llm-task-runner"], FIXED_OUTPUT_SCHEMA)
        jsonschema.validate(results["dynamic-llm-task-runner"], DYNAMIC_OUTPUT_SCHEMA)

        os.killpg(service.pid, signal.SIGINT)  # Ctrl-C
        assert service.wait(30) == 0, log.read_text()

        async def left() -> None:
            async with RoomClient(url, "myroom", user, reconnect=False) as client:

                async def gone() -> bool:
                    return not set(RUNNERS) & await toolkit_names(client)

                await eventually(gone, "both runners left the room")

        asyncio.run(left())
        assert "Traceback" not in log.read_text()
    except BaseException:
        sys.stderr.write(log.read_text())
        raise
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(15)


# --- room.agents.make_call: only URLs the registry knows -------------------------------------


async def test_make_call_reaches_only_registered_services(service_url: str, room_url: str) -> None:
    admin = token("delta", "operator", role="admin")
    async with RoomClient(room_url, "delta", admin, reconnect=False) as client:
        joined = await client.agents.make_call(
            name="llm-task-runner", url=service_url + "/llm-task-runner", arguments={}
        )
        assert joined["identity"] == "llm-task-runner" and joined["service"] == SERVICE
        assert "llm-task-runner" in {a.name for a in await client.agents.list_agents()}
        answer = await client.agents.ask(
            agent="llm-task-runner", arguments={"prompt": "hello by URL"}
        )
        jsonschema.validate(answer.json, FIXED_OUTPUT_SCHEMA)

        # A URL no registered service serves is refused; nothing is posted to it.
        with pytest.raises(RoomError) as refused:
            await client.agents.make_call(name="x", url="http://127.0.0.1:9/agent")
        assert refused.value.code == ErrorCode.NOT_FOUND
        lookalike = service_url + "-evil/llm-task-runner"  # same prefix, another port
        with pytest.raises(RoomError) as refused:
            await client.agents.make_call(name="llm-task-runner", url=lookalike)
        assert refused.value.code == ErrorCode.NOT_FOUND

    # Without services.admin the registry's URLs stay hidden, so no URL can be matched.
    async with RoomClient(room_url, "delta", token("delta"), reconnect=False) as user:
        with pytest.raises(RoomError) as refused:
            await user.agents.make_call(name="llm-task-runner", url=service_url + "/x")
        assert refused.value.code == ErrorCode.PERMISSION_DENIED
        assert "services.admin" in refused.value.message


def test_service_run_on_a_busy_port_is_one_error_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        done = subprocess.run(
            [
                str(BIN / "taskroom"),
                "service",
                "run",
                str(ROOT / "invoke" / "llm_taskrunner_service.py"),
                "--room",
                ROOM,
                "--token",
                "t",
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "TASKROOM_WEBHOOK_SECRET": SECRET},
        )
    assert done.returncode == 1
    assert f"error: cannot serve on 127.0.0.1:{port}" in done.stderr
    assert "exited with code 1 before serving" in done.stderr
    assert "Traceback" not in done.stderr
