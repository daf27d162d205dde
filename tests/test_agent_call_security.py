"""Attacks on room.call and on webhooks, each written as a test against a real room.

A user token must not be able to make the room mint a token for another identity, post
to a URL of the user's choosing, act as a port scanner or proxy, or leak what a service
answered; a captured webhook must not be accepted twice or on another path. Every
"service" here is a real HTTP (or raw TCP) listener on loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web

from taskroom.agents import OpenAIResponsesAdapter
from taskroom.agents.llm_task_runner import LLMTaskRunner
from taskroom.host.auth.tokens import AGENT_GRANTS, create_token
from taskroom.host.client.room_client import RoomClient
from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.server import agent_calls
from taskroom.host.server.app import RoomServer
from taskroom.host.server.build import build_room_server
from taskroom.host.service.service_host import WELL_KNOWN_PATH, ServiceHost
from tests.conftest import SECRET

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Listener:
    """A real HTTP server on loopback that records every request it gets."""

    def __init__(self, routes: dict[tuple[str, str], Handler]) -> None:
        self.routes = routes
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append((request.method, request.path, dict(request.headers), body))
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            return web.json_response({"error": "no such route"}, status=404)
        return await handler(request)

    async def __aenter__(self) -> Listener:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    @property
    def posts(self) -> list[tuple[str, str, dict[str, str], bytes]]:
        return [r for r in self.requests if r[0] == "POST"]


def declares(*identities: str) -> Handler:
    """A well-known handler declaring ``identities`` at ``/<identity>``."""

    async def well_known(request: web.Request) -> web.Response:
        agents = [{"identity": i, "path": "/" + i} for i in identities]
        return web.json_response({"service": "taskroom", "agents": agents})

    return well_known


async def joined(request: web.Request) -> web.Response:
    return web.json_response({"participant_id": "p_fake", "identity": "helper"})


def fake_service(**posts: Handler) -> Listener:
    """A service declaring one agent per keyword, each answered by its handler."""
    routes: dict[tuple[str, str], Handler] = {("GET", WELL_KNOWN_PATH): declares(*posts)}
    routes.update({("POST", "/" + name): handler for name, handler in posts.items()})
    return Listener(routes)


def runner() -> LLMTaskRunner:
    adapter = OpenAIResponsesAdapter(base_url="http://127.0.0.1:9/v1", api_key="test")
    return LLMTaskRunner(llm_adapter=adapter)


@pytest.fixture
async def admin(join) -> RoomClient:
    return await join("operator", "admin", room="ops")


@pytest.fixture
def register(admin: RoomClient) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def register_service(name: str, url: str, **entry: Any) -> dict[str, Any]:
        return await admin.request("services.register", {"name": name, "url": url, **entry})

    return register_service


async def refused(client: RoomClient, type_: str, data: dict[str, Any]) -> RoomError:
    with pytest.raises(RoomError) as caught:
        await client.request(type_, data, timeout=30)
    return caught.value


# --- 1. become anyone --------------------------------------------------------------------


async def test_a_user_cannot_have_a_token_posted_to_a_url_of_theirs(join) -> None:
    mallory = await join("mallory")
    async with Listener({("POST", "/steal"): joined}) as mine:
        err = await refused(mallory, "room.call", {"name": "alice", "url": mine.url + "/steal"})
        err2 = await refused(mallory, "room.call", {"service": mine.url, "agent": "alice"})
    assert err.code == err2.code == ErrorCode.INVALID_REQUEST
    assert mine.requests == []


async def test_a_user_cannot_register_a_service(join, full_room: RoomServer) -> None:
    mallory = await join("mallory")
    async with fake_service(alice=joined) as mine:
        err = await refused(mallory, "services.register", {"name": "evil", "url": mine.url})
        assert err.code == ErrorCode.PERMISSION_DENIED
        assert "services.admin" in err.message
        err = await refused(mallory, "room.call", {"service": "evil", "agent": "alice"})
        assert err.code == ErrorCode.NOT_FOUND
    assert mine.requests == []
    assert not (full_room.data_dir / "services.json").exists()


async def test_only_an_admin_removes_a_service(join, register, admin: RoomClient) -> None:
    mallory = await join("mallory")
    await register("svc", "http://127.0.0.1:9")
    err = await refused(mallory, "services.remove", {"name": "svc"})
    assert err.code == ErrorCode.PERMISSION_DENIED
    assert await admin.request("services.remove", {"name": "svc"}) == {
        "name": "svc",
        "action": "removed",
    }
    err = await refused(mallory, "room.call", {"service": "svc", "agent": "helper"})
    assert err.code == ErrorCode.NOT_FOUND


async def test_the_identity_is_one_the_service_declares(join, register) -> None:
    mallory = await join("mallory")
    async with fake_service(helper=joined) as svc:
        await register("svc", svc.url)
        err = await refused(mallory, "room.call", {"service": "svc", "agent": "alice"})
        assert err.code == ErrorCode.NOT_FOUND
        assert err.message == "the service 'svc' declares no agent 'alice'"
        assert svc.posts == []


async def test_a_registry_entry_limits_the_identities(join, register) -> None:
    mallory = await join("mallory")
    async with fake_service(alice=joined) as svc:
        await register("svc", svc.url, identities=["helper"])
        err = await refused(mallory, "room.call", {"service": "svc", "agent": "alice"})
    assert err.code == ErrorCode.PERMISSION_DENIED
    assert svc.requests == []


async def test_the_minted_token_is_short_lived_and_scoped(
    join, register, full_room: RoomServer
) -> None:
    alice = await join("alice")
    async with fake_service(helper=joined) as svc:
        await register("svc", svc.url)
        answer = await alice.request("room.call", {"service": "svc", "agent": "helper"})
    assert answer == {"participant_id": "p_fake", "identity": "helper", "service": "svc"}
    [(_, path, _, body)] = svc.posts
    assert path == "/helper"
    token = json.loads(body)["data"]["token"]
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], issuer="taskroom")
    assert (claims["sub"], claims["role"], claims["room"]) == ("helper", "agent", "test")
    assert claims["grants"] == AGENT_GRANTS
    assert "tasks.start" not in claims["grants"] and "room.call" not in claims["grants"]
    assert claims["exp"] - claims["iat"] <= 300
    with pytest.raises(RoomError) as caught:
        async with RoomClient(full_room.base_url, "other", token, reconnect=False):
            pass
    assert caught.value.code == ErrorCode.PERMISSION_DENIED


async def test_a_service_listed_in_the_data_folder_can_be_called(tmp_path) -> None:
    async with fake_service(helper=joined) as svc:
        data = tmp_path / "configured"
        data.mkdir()
        entry = {"name": "configured", "url": svc.url, "identities": ["helper"]}
        (data / "services.json").write_text(json.dumps({"services": [entry]}))
        server = build_room_server(data_dir=data, secret=SECRET)
        url = await server.start("127.0.0.1", 0)
        try:
            token = create_token(SECRET, room="r", identity="alice")
            async with RoomClient(url, "r", token, reconnect=False) as alice:
                answer = await alice.request(
                    "room.call", {"service": "configured", "agent": "helper"}
                )
                listed = await alice.request("services.list", {})
        finally:
            await server.stop()
    assert answer["participant_id"] == "p_fake"
    assert listed == {"services": [{"name": "configured", "identities": ["helper"]}]}


async def test_an_edited_registry_file_is_read_again(join, register, full_room: RoomServer) -> None:
    alice = await join("alice")
    await register("first", "http://127.0.0.1:9")
    path = full_room.data_dir / "services.json"
    async with fake_service(helper=joined) as svc:
        entry = {"name": "edited", "url": svc.url}
        path.write_text(json.dumps({"services": [entry]}))
        os.utime(path, (time.time() + 5, time.time() + 5))  # a later mtime, whatever the clock
        answer = await alice.request("room.call", {"service": "edited", "agent": "helper"})
        path.write_text("{not json")
        os.utime(path, (time.time() + 10, time.time() + 10))
        err = await refused(alice, "room.call", {"service": "edited", "agent": "helper"})
    assert answer["service"] == "edited"
    assert err.code == ErrorCode.UNAVAILABLE
    assert err.message == "the room server's service registry is invalid; its log says why"


async def test_an_agent_keeps_rejoining_past_its_first_tokens_life(
    join, register, full_room: RoomServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_calls, "AGENT_TOKEN_TTL", 3.0)
    alice = await join("alice")
    service = ServiceHost(webhook_secret=SECRET)
    service.add_path("/runner", runner, "llm-task-runner")
    async with service:
        await register("svc", service.base_url)
        first = await alice.request("room.call", {"service": "svc", "agent": "llm-task-runner"})
        [instance] = service.instances.values()
        original = instance.client.token
        await asyncio.sleep(4.0)  # the first token has expired by now
        with pytest.raises(RoomError, match="expired"):
            await RoomClient(full_room.base_url, "test", original, reconnect=False).connect()
        assert instance.client.token != original
        # The room drops the agent's connection; it rejoins with its refreshed token.
        room = full_room.rooms["test"]
        back = asyncio.ensure_future(alice.wait_for_event("participant.joined"))
        await room.participants[first["participant_id"]].peer.close(1011, "test drop")
        rejoined = await asyncio.wait_for(back, 10)
    assert rejoined["name"] == "llm-task-runner"
    assert rejoined["role"] == "agent"


async def test_token_refresh_needs_the_grant(join) -> None:
    alice = await join("alice")
    err = await refused(alice, "token.refresh", {})
    assert err.code == ErrorCode.PERMISSION_DENIED


# --- 2. the room as a proxy ------------------------------------------------------------------


async def test_redirects_are_not_followed(join, register) -> None:
    alice = await join("alice")
    async with Listener({("POST", "/steal"): joined}) as target:

        async def redirect(request: web.Request) -> web.Response:
            raise web.HTTPTemporaryRedirect(target.url + "/steal")

        async with fake_service(helper=redirect) as svc:
            await register("svc", svc.url)
            err = await refused(alice, "room.call", {"service": "svc", "agent": "helper"})
    assert err.code == ErrorCode.FAILED
    assert (
        err.message
        == "the service 'svc' answered with a redirect (HTTP 307); the room follows none"
    )
    assert target.requests == []


async def test_a_service_answer_is_never_echoed(join, register) -> None:
    alice = await join("alice")

    async def leak(request: web.Request) -> web.Response:
        return web.Response(status=500, text="SECRET-BODY internal=10.0.0.7")

    async with fake_service(helper=leak) as svc:
        await register("svc", svc.url)
        err = await refused(alice, "room.call", {"service": "svc", "agent": "helper"})
    assert err.code == ErrorCode.FAILED
    assert "SECRET" not in err.message and "10.0.0.7" not in json.dumps(err.details)


async def test_a_non_http_greeting_is_never_echoed(join, register) -> None:
    alice = await join("alice")

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.6 secret-banner\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(greet, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        await register("ssh", f"http://127.0.0.1:{port}")
        err = await refused(alice, "room.call", {"service": "ssh", "agent": "helper"})
    assert err.code == ErrorCode.FAILED
    assert err.message == "the service 'ssh' did not answer with valid HTTP"
    assert "SSH" not in json.dumps(err.details)


@pytest.mark.parametrize("host", ["localhost", "0x7f.0.0.1"])
async def test_a_host_name_reaching_loopback_needs_allow_private(join, register, host: str) -> None:
    alice = await join("alice")
    async with fake_service(helper=joined) as svc:
        await register("named", f"http://{host}:{svc.port}")
        err = await refused(alice, "room.call", {"service": "named", "agent": "helper"})
        assert err.code == ErrorCode.UNAVAILABLE
        assert svc.requests == []
        await register("named", f"http://{host}:{svc.port}", allow_private=True)
        answer = await alice.request("room.call", {"service": "named", "agent": "helper"})
    assert answer["participant_id"] == "p_fake"


@pytest.mark.parametrize("host", ["2130706433", "127.1", "017700000001"])
async def test_numeric_host_spellings_are_refused_at_registration(register, host: str) -> None:
    with pytest.raises(RoomError) as caught:
        await register("numeric", f"http://{host}:8080")
    assert caught.value.code == ErrorCode.INVALID_REQUEST
    assert "not a plain IP address" in caught.value.message


async def test_a_silent_service_times_out(join, register, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent_calls, "WEBHOOK_TIMEOUT", 1.0)
    alice = await join("alice")

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.json_response({})

    async with fake_service(helper=hang) as svc:
        await register("svc", svc.url)
        started = time.monotonic()
        err = await refused(alice, "room.call", {"service": "svc", "agent": "helper"})
        elapsed = time.monotonic() - started
    assert err.code == ErrorCode.TIMEOUT
    assert err.message == "the service 'svc' did not answer within 1 s"
    assert elapsed < 3.0


async def test_calls_in_progress_are_bounded_per_room_and_per_server(
    join, register, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_calls, "MAX_CALLS_PER_ROOM", 2)
    monkeypatch.setattr(agent_calls, "MAX_CALLS_PER_SERVER", 3)
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return await joined(request)

    a, b = await join("alice"), await join("bob", room="second")
    call = {"service": "svc", "agent": "helper"}
    async with fake_service(helper=slow) as svc:
        await register("svc", svc.url)
        busy = [asyncio.ensure_future(a.request("room.call", call)) for _ in range(2)]
        while len(svc.posts) < 2:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        per_room = await refused(a, "room.call", call)
        refused_in = time.monotonic() - started
        busy.append(asyncio.ensure_future(b.request("room.call", call)))
        while len(svc.posts) < 3:
            await asyncio.sleep(0.01)
        per_server = await refused(b, "room.call", call)
        release.set()
        answers = await asyncio.gather(*busy)
    assert per_room.code == per_server.code == ErrorCode.UNAVAILABLE
    assert per_room.message == "room 'test' has 2 agent calls in progress; try again"
    assert per_server.message == "the room server has 3 agent calls in progress; try again"
    assert refused_in < 0.5
    assert len(svc.posts) == 3
    assert all(answer["participant_id"] == "p_fake" for answer in answers)


# --- 3. webhooks are single-use ----------------------------------------------------------------


@pytest.fixture
async def captured(join, register) -> AsyncIterator[tuple[ServiceHost, tuple[str, dict, bytes]]]:
    """A real ServiceHost behind a proxy that records the room's real signed webhook."""
    alice = await join("alice")
    service = ServiceHost(webhook_secret=SECRET)
    service.add_path("/runner", runner, "llm-task-runner")
    service.add_path("/other", runner, "other-runner")
    async with service:

        async def forward(request: web.Request) -> web.Response:
            async with (
                aiohttp.ClientSession() as http,
                http.request(
                    request.method,
                    service.base_url + request.path,
                    data=await request.read(),
                    headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
                ) as resp,
            ):
                return web.Response(status=resp.status, body=await resp.read())

        routes = {("GET", WELL_KNOWN_PATH): forward, ("POST", "/runner"): forward}
        async with Listener(routes) as proxy:
            await register("svc", proxy.url)
            await alice.request("room.call", {"service": "svc", "agent": "llm-task-runner"})
            [(_, path, headers, body)] = proxy.posts
            yield service, (path, headers, body)


async def replay(service: ServiceHost, path: str, headers: dict, body: bytes) -> tuple[int, str]:
    keep = {k: v for k, v in headers.items() if k.lower() in ("content-type", "taskroom-signature")}
    async with (
        aiohttp.ClientSession() as http,
        http.post(service.base_url + path, data=body, headers=keep) as resp,
    ):
        return resp.status, (await resp.json())["error"]


async def test_a_captured_webhook_is_refused_when_replayed(captured) -> None:
    service, (path, headers, body) = captured
    assert len(service.instances) == 1
    assert await replay(service, path, headers, body) == (
        401,
        "the webhook was already delivered once (a replay?)",
    )
    assert len(service.instances) == 1


async def test_a_captured_webhook_is_refused_on_another_path(captured) -> None:
    service, (path, headers, body) = captured
    status, error = await replay(service, "/other", headers, body)
    assert status == 401
    assert error == "the webhook was signed for POST /runner, not POST /other"
    assert len(service.instances) == 1
