"""room.call and room.dismiss, from the room's side: each failure is a clear error.

The room server runs as a separate process; the services it calls run in this process
(ServiceHost on a free loopback port), so a test can shape exactly what the service does.
An admin registers each service with the room server under a name; users call by name.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator

import pytest

from taskroom.agents import OpenAIResponsesAdapter
from taskroom.agents.llm_task_runner import LLMTaskRunner
from taskroom.host.auth.tokens import create_token
from taskroom.host.client.room_client import RoomClient
from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.service.service_host import ServiceHost
from taskroom.toolkits.requirements import RequiredToolkit
from tests.processes import free_port, start_room

SECRET = "agent-calls-test-" + "k" * 32
_rooms = itertools.count()


def runner(name: str = "llm-task-runner", **kw) -> LLMTaskRunner:
    """A runner that never reaches an LLM: these tests only call agents in."""
    adapter = OpenAIResponsesAdapter(base_url="http://127.0.0.1:9/v1", api_key="test")
    return LLMTaskRunner(llm_adapter=adapter, name=name, **kw)


def needs_missing_toolkit() -> LLMTaskRunner:
    return runner("needs-toolkit", requires=[RequiredToolkit("missing-toolkit", timeout=0.5)])


def broken() -> LLMTaskRunner:
    raise RuntimeError("no model configured for this agent")


@pytest.fixture(scope="module")
def room_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("room")
    port = free_port()
    proc = start_room(port, tmp / "data", SECRET, log=tmp / "room.log")
    yield f"http://127.0.0.1:{port}"
    proc.stop()


async def register(room_url: str, name: str, url: str) -> None:
    """Register a service with the room server, as an admin does."""
    token = create_token(SECRET, room="admin", identity="operator", role="admin")
    async with RoomClient(room_url, "admin", token, reconnect=False) as admin:
        await admin.request("services.register", {"name": name, "url": url})


@pytest.fixture
async def service(room_url: str) -> AsyncIterator[ServiceHost]:
    host = ServiceHost(webhook_secret=SECRET)
    host.add_path("/agent", runner, "llm-task-runner")
    host.add_path("/needs-toolkit", needs_missing_toolkit, "needs-toolkit")
    host.add_path("/broken", broken, "broken")
    async with host:
        await register(room_url, "svc", host.base_url)
        yield host


@pytest.fixture
async def client(room_url: str) -> AsyncIterator[RoomClient]:
    """A user in a fresh room of its own."""
    room = f"calls-{next(_rooms)}"
    token = create_token(SECRET, room=room, identity="alice", role="user")
    async with RoomClient(room_url, room, token, reconnect=False) as c:
        yield c


async def call_error(client: RoomClient, service: str, agent: str) -> RoomError:
    with pytest.raises(RoomError) as caught:
        await client.request("room.call", {"service": service, "agent": agent})
    return caught.value


async def test_a_call_joins_the_agent_and_answers_its_participant(
    client: RoomClient, service: ServiceHost
) -> None:
    joined = await client.request("room.call", {"service": "svc", "agent": "llm-task-runner"})
    assert joined["identity"] == "llm-task-runner"
    assert joined["service"] == "svc"
    participants = {p.id: p for p in await client.list_participants()}
    assert participants[joined["participant_id"]].role == "agent"
    assert [i.participant_id for i in await client.list_toolkits(name="llm-task-runner")] == [
        joined["participant_id"]
    ]
    [(room_url, room_name, pid)] = service.instances
    assert (room_name, pid) == (client.room_name, joined["participant_id"])


async def test_nothing_listening_is_unavailable(client: RoomClient, room_url: str) -> None:
    await register(room_url, "gone", f"http://127.0.0.1:{free_port()}")
    err = await call_error(client, "gone", "helper")
    assert err.code == ErrorCode.UNAVAILABLE
    assert err.message == "the service 'gone' cannot be reached"


async def test_an_unregistered_service_is_not_found(client: RoomClient) -> None:
    err = await call_error(client, "no-such-service", "helper")
    assert err.code == ErrorCode.NOT_FOUND
    assert "no service 'no-such-service' is registered" in err.message


async def test_an_agent_the_service_does_not_declare_is_not_found(
    client: RoomClient, service: ServiceHost
) -> None:
    err = await call_error(client, "svc", "helper")
    assert err.code == ErrorCode.NOT_FOUND
    assert err.message == "the service 'svc' declares no agent 'helper'"
    assert service.instances == {}


async def test_another_webhook_secret_is_permission_denied(
    client: RoomClient, room_url: str
) -> None:
    async with ServiceHost(webhook_secret="a-different-secret-" + "d" * 32) as other:
        other.add_path("/agent", runner, "llm-task-runner")
        await register(room_url, "other", other.base_url)
        err = await call_error(client, "other", "llm-task-runner")
    assert err.code == ErrorCode.PERMISSION_DENIED
    assert "webhook secret" in err.message


async def test_an_agent_that_cannot_start_fails_and_leaves_nothing(
    client: RoomClient, service: ServiceHost
) -> None:
    err = await call_error(client, "svc", "needs-toolkit")
    assert err.code == ErrorCode.FAILED
    assert err.message == (
        "the agent 'needs-toolkit' of service 'svc' failed to start (HTTP 500); "
        "the service's log says why"
    )
    assert "needs-toolkit" not in {p.name for p in await client.list_participants()}
    assert await client.list_toolkits() == []
    assert service.instances == {}


async def test_an_agent_whose_constructor_raises_fails(
    client: RoomClient, service: ServiceHost
) -> None:
    err = await call_error(client, "svc", "broken")
    assert err.code == ErrorCode.FAILED
    assert "RuntimeError" not in err.message  # the service's words stay in its own log
    assert "broken" not in {p.name for p in await client.list_participants()}


async def test_invoking_an_agent_not_in_the_room_is_not_found(client: RoomClient) -> None:
    with pytest.raises(RoomError) as caught:
        await client.invoke_tool("llm-task-runner", "run_llm-task-runner_task", {"prompt": "hi"})
    assert caught.value.code == ErrorCode.NOT_FOUND


async def test_dismissing_an_unknown_participant_is_not_found(client: RoomClient) -> None:
    with pytest.raises(RoomError) as caught:
        await client.request("room.dismiss", {"participant_id": "p_nobody"})
    assert caught.value.code == ErrorCode.NOT_FOUND
    assert "p_nobody" in caught.value.message


async def test_a_dismissed_client_closes_instead_of_reconnecting(
    client: RoomClient, room_url: str
) -> None:
    token = create_token(SECRET, room=client.room_name, identity="bob", role="agent")
    bob = RoomClient(room_url, client.room_name, token, reconnect=True, backoff=(0.05, 0.1))
    await bob.connect()
    closed: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
    bob.on("closed", lambda data: closed.done() or closed.set_result(data))
    assert bob.participant is not None
    # an agent that joined on its own belongs to no one else: a user cannot dismiss it
    with pytest.raises(RoomError) as denied:
        await client.request("room.dismiss", {"participant_id": bob.participant.id})
    assert denied.value.code == ErrorCode.PERMISSION_DENIED
    admin_token = create_token(SECRET, room=client.room_name, identity="root", role="admin")
    async with RoomClient(room_url, client.room_name, admin_token) as admin:
        await admin.request("room.dismiss", {"participant_id": bob.participant.id})
    assert "dismissed by root" in (await asyncio.wait_for(closed, 5))["reason"]
    await asyncio.sleep(0.3)  # three backoffs: a reconnect would have happened
    assert "bob" not in {p.name for p in await client.list_participants()}
    assert bob.closed
    await bob.close()


async def test_a_user_cannot_dismiss_another_user(client: RoomClient, room_url: str) -> None:
    token = create_token(SECRET, room=client.room_name, identity="carol", role="user")
    async with RoomClient(room_url, client.room_name, token, reconnect=False) as carol:
        assert carol.participant is not None
        with pytest.raises(RoomError) as err:
            await client.request("room.dismiss", {"participant_id": carol.participant.id})
        assert err.value.code == ErrorCode.PERMISSION_DENIED
        assert "carol" in {p.name for p in await client.list_participants()}


@pytest.mark.parametrize(
    ("request_data", "code", "text"),
    [
        ({"name": "x", "url": "http://127.0.0.1:9/a"}, ErrorCode.INVALID_REQUEST, "service"),
        ({"service": "svc", "agent": "x", "role": "admin"}, ErrorCode.INVALID_REQUEST, "role"),
        ({"service": "svc"}, ErrorCode.INVALID_REQUEST, "agent"),
        ({"service": "../etc", "agent": "x"}, ErrorCode.INVALID_REQUEST, "service"),
    ],
)
async def test_bad_call_requests_are_invalid(
    client: RoomClient, request_data: dict, code: ErrorCode, text: str
) -> None:
    with pytest.raises(RoomError) as caught:
        await client.request("room.call", request_data)
    assert caught.value.code == code
    assert text in caught.value.message


async def test_calling_agents_in_needs_the_grant(room_url: str) -> None:
    token = create_token(SECRET, room="calls-grant", identity="watcher", role="observer")
    async with RoomClient(room_url, "calls-grant", token, reconnect=False) as watcher:
        for type_, data in [
            ("room.call", {"service": "svc", "agent": "x"}),
            ("room.dismiss", {"participant_id": watcher.participant.id}),
        ]:
            with pytest.raises(RoomError) as caught:
                await watcher.request(type_, data)
            assert caught.value.code == ErrorCode.PERMISSION_DENIED
