"""ServiceHost: an HTTP service whose agents rooms call in by signed webhook.

A room's ``room.call`` posts a signed ``room.call`` webhook to one of the service's paths.
The service makes a new agent for that call, joins it to the room with the token the room
minted, and answers only once the agent has started, so the caller learns at once whether
the agent is really there. One service serves many rooms at once; each agent lives until
the room dismisses it, its connection is closed for good, or the service stops.

A path may also offer a :class:`~taskroom.toolkits.RemoteToolkit`: called into a room,
it hosts its tools there until dismissed, as an agent would.

Host and port come from the constructor, else TASKROOM_SERVICE_HOST / TASKROOM_SERVICE_PORT
(which ``taskroom service run`` sets for the file it runs), else 127.0.0.1 and a free
port. The webhook secret comes from the constructor, else TASKROOM_WEBHOOK_SECRET, else
TASKROOM_SECRET; a service with none still starts, and refuses every webhook.

Each webhook is accepted once: its signature binds method, path and body, and its id is
remembered until the signature expires. The token the room mints lives minutes; while
the agent is connected the service swaps it for a fresh one (``token.refresh``) well
before it expires, so a reconnect after a short outage joins with a valid token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import jwt
from aiohttp import web
from pydantic import BaseModel, Field, ValidationError

from taskroom.host.auth.webhooks import (
    ROOM_CALL_EVENT,
    SIGNATURE_HEADER,
    ReplayGuard,
    WebhookError,
    service_webhook_secret,
    verify_webhook,
)
from taskroom.host.client.room_client import RoomClient
from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.protocol.errors import TaskroomError
from taskroom.host.service.workers import WorkerPool, check_factory, start_workers

logger = logging.getLogger(__name__)

WELL_KNOWN_PATH = "/.well-known/taskroom-service.json"
HOST_ENV = "TASKROOM_SERVICE_HOST"
PORT_ENV = "TASKROOM_SERVICE_PORT"
DEFAULT_HOST = "127.0.0.1"
START_TIMEOUT = 50.0
"""Bound on joining and starting one agent; below the room's 60 s webhook deadline, so an
agent the room has given up on never joins late."""
MAX_BODY_BYTES = 1024 * 1024
REFRESH_FRACTION = 1 / 3
"""Refresh an agent's token once this fraction of its lifetime is left."""
REFRESH_RETRY = 5.0


class ServiceAgent(Protocol):
    """What a service hosts: anything started in a room and stopped again (a TaskRunner)."""

    async def start(self, room: RoomClient) -> None: ...

    async def stop(self) -> None: ...


class ServiceStartError(TaskroomError):
    """The service cannot listen where it was told to (a busy port, say)."""


class WebhookSecretMissing(WebhookError):
    """The service was started without a webhook secret, so it can accept no call."""


AgentFactory = Callable[[], ServiceAgent]
F = TypeVar("F", bound=AgentFactory)
InstanceKey = tuple[str, str, str]
"""(room_url, room_name, participant_id): one agent instance in one room."""


@dataclass(frozen=True)
class ServicePath:
    """An agent the service offers at ``path``; ``identity`` is the name it joins rooms as."""

    path: str
    factory: AgentFactory
    identity: str
    workers: int = 1
    """Processes serving each call's agent: this one plus ``workers - 1`` (see workers.py)."""


@dataclass
class ServiceInstance:
    """One agent called into one room."""

    service_path: ServicePath
    agent: ServiceAgent
    client: RoomClient
    arguments: dict[str, Any] = field(default_factory=dict)
    refresher: asyncio.Task[None] | None = None
    workers: WorkerPool | None = None


class _RoomCallData(BaseModel):
    room_url: str = Field(min_length=1)
    room_name: str = Field(min_length=1)
    token: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)


class ServiceHost:
    """Hosts agent classes (or zero-argument factories) at HTTP paths.

    ``GET /`` is health, ``GET /.well-known/taskroom-service.json`` describes each agent,
    and ``POST <path>`` is the webhook a room calls an agent in with.
    """

    def __init__(
        self, host: str | None = None, port: int | None = None, webhook_secret: str | None = None
    ) -> None:
        self.host = host or os.environ.get(HOST_ENV) or DEFAULT_HOST
        self.port = port if port is not None else _env_port()
        self._no_secret = ""
        try:
            self.webhook_secret: str | None = service_webhook_secret(webhook_secret)
        except WebhookError as exc:
            self.webhook_secret = None
            self._no_secret = str(exc)
        self.paths: dict[str, ServicePath] = {}
        self.instances: dict[InstanceKey, ServiceInstance] = {}
        self.base_url: str | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._descriptions: dict[str, dict[str, Any]] = {}
        self.replay_guard = ReplayGuard()

    # --- paths --------------------------------------------------------------------

    def path(self, path: str, *, identity: str | None = None, workers: int = 1) -> Callable[[F], F]:
        """Decorator form of :meth:`add_path`; returns the class or factory unchanged."""

        def register(factory: F) -> F:
            self.add_path(path, factory, identity, workers=workers)
            return factory

        return register

    def add_path(
        self,
        path: str,
        factory: AgentFactory,
        identity: str | None = None,
        *,
        workers: int = 1,
    ) -> None:
        """Offer ``factory``'s agents at ``path``; each room call builds a new one, in
        ``workers`` processes.

        Without ``identity`` the agents join as their own ``name`` (a runner's or a
        toolkit's), read off one instance built now.
        """
        if not path.startswith("/") or path == "/" or path == WELL_KNOWN_PATH:
            raise ValueError(f"invalid agent path {path!r}: use '/name', not '/' or the well-known")
        if path in self.paths:
            raise ValueError(f"path {path!r} is already taken by {self.paths[path].identity!r}")
        if identity is None:
            identity = getattr(factory(), "name", None)
            if not isinstance(identity, str):
                raise ValueError(f"the agent at {path!r} has no name; pass identity=")
        if not 1 <= len(identity) <= 128:
            raise ValueError(f"identity {identity!r} must have 1 to 128 characters")
        check_factory(factory, workers)
        self.paths[path] = ServicePath(path, factory, identity, workers)

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> str:
        """Serve on ``host:port`` (0 picks a free port); returns the base URL."""
        if self._runner is not None:
            raise RuntimeError("the service is already started")
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_get("/", self._health)
        app.router.add_get(WELL_KNOWN_PATH, self._well_known)
        app.router.add_post("/{path:.*}", self._webhook)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError as exc:
            await runner.cleanup()
            raise ServiceStartError(
                f"cannot serve on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from exc
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        self.base_url = f"http://{self.host}:{self.port}"
        logger.info("service listening on %s with %s", self.base_url, ", ".join(self.paths))
        if self.webhook_secret is None:
            logger.warning("%s; every room call will be refused", self._no_secret)
        return self.base_url

    async def run(self) -> None:
        """Serve until SIGINT or SIGTERM, then stop (every agent leaves its room)."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)
        for sig in signals:
            loop.add_signal_handler(sig, stop.set)
        try:
            await self.start()
            await stop.wait()
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            await self.stop()

    async def stop(self) -> None:
        """Stop taking calls, then stop every agent so each leaves its room."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        await asyncio.gather(
            *(self._stop_instance(key, "the service is stopping") for key in list(self.instances))
        )
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> ServiceHost:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- HTTP -----------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"status": "ok", "paths": sorted(self.paths), "instances": len(self.instances)}
        )

    async def _well_known(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"service": "taskroom", "agents": [self.describe(p) for p in self.paths.values()]}
        )

    def describe(self, service_path: ServicePath) -> dict[str, Any]:
        """What a room needs to know about a path's agent, read off a throwaway instance."""
        cached = self._descriptions.get(service_path.path)
        if cached is not None:
            return cached
        head: dict[str, Any] = {"path": service_path.path, "identity": service_path.identity}
        try:
            agent = _named(service_path.factory(), service_path.identity)
        except Exception as exc:
            logger.warning("cannot describe %s: %r", service_path.path, exc)
            return {**head, "error": f"the agent cannot be built: {_reason(exc)}"}
        described = {
            **head,
            "name": getattr(agent, "name", service_path.identity),
            "title": getattr(agent, "title", None),
            "description": getattr(agent, "description", ""),
            "input_schema": getattr(agent, "input_schema", None),
            "output_schema": getattr(agent, "output_schema", None),
            "kind": getattr(agent, "kind", None),
            "labels": list(getattr(agent, "labels", [])),
            "supports_tools": bool(getattr(agent, "supports_tools", False)),
        }
        self._descriptions[service_path.path] = described
        return described

    async def _webhook(self, request: web.Request) -> web.Response:
        service_path = self.paths.get(request.path)
        if service_path is None:
            offered = ", ".join(sorted(self.paths)) or "none"
            return _error(404, f"no agent at path {request.path!r}; this service has: {offered}")
        body = await request.read()
        try:
            if self.webhook_secret is None:
                raise WebhookSecretMissing(f"this service cannot check webhooks: {self._no_secret}")
            verify_webhook(
                request.method,
                request.path,
                body,
                request.headers.get(SIGNATURE_HEADER),
                self.webhook_secret,
                self.replay_guard,
            )
        except WebhookError as exc:
            logger.warning("refused a webhook to %s: %s", request.path, exc)
            return _error(401, str(exc))
        try:
            call = _parse_room_call(body)
        except ValueError as exc:
            return _error(400, str(exc))
        try:
            instance = await asyncio.wait_for(
                self._start_instance(service_path, call), START_TIMEOUT
            )
        except TimeoutError:
            return _error(
                500, f"agent {service_path.identity!r} did not start within {START_TIMEOUT:g} s"
            )
        except Exception as exc:
            logger.warning("agent %s failed to start: %r", service_path.identity, exc)
            return _error(500, f"agent {service_path.identity!r} failed to start: {_reason(exc)}")
        participant = instance.client.participant
        assert participant is not None
        return web.json_response({"participant_id": participant.id, "identity": participant.name})

    # --- instances ------------------------------------------------------------------

    async def _start_instance(
        self, service_path: ServicePath, call: _RoomCallData
    ) -> ServiceInstance:
        """Build, join and start one agent; on any failure its connection is closed."""
        agent = _named(service_path.factory(), service_path.identity)
        client = RoomClient(call.room_url, call.room_name, call.token)
        await client.connect()
        workers = None
        try:
            await agent.start(room=client)
            if client.closed:
                raise RoomError(
                    ErrorCode.UNAVAILABLE, "the room closed the connection during start"
                )
            if service_path.workers > 1:
                workers = await start_workers(
                    service_path.factory,
                    service_path.workers - 1,
                    call.room_url,
                    call.room_name,
                    call.token,
                    timeout=START_TIMEOUT,
                )
        except BaseException:
            await client.close()
            raise
        assert client.participant is not None
        key = (call.room_url, call.room_name, client.participant.id)
        instance = ServiceInstance(service_path, agent, client, call.arguments, workers=workers)
        instance.refresher = asyncio.get_running_loop().create_task(_keep_token_fresh(client))
        self.instances[key] = instance
        client.on("room.dismissed", lambda data: self._spawn(self._stop_instance(key, "dismissed")))
        client.on("closed", lambda data: self._spawn(self._stop_instance(key, "connection closed")))
        logger.info("%s joined room %s as %s", service_path.identity, call.room_name, key[2])
        return instance

    async def _stop_instance(self, key: InstanceKey, reason: str) -> None:
        instance = self.instances.pop(key, None)
        if instance is None:
            return
        logger.info("stopping %s in room %s (%s)", instance.service_path.identity, key[1], reason)
        if instance.refresher is not None:
            instance.refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await instance.refresher
        try:
            if not instance.client.connected.is_set():
                # A room that is away cannot be told; do not let stop() wait for a reconnect.
                await instance.client.close()
            await instance.agent.stop()
        except Exception:
            logger.exception("agent %s did not stop cleanly", instance.service_path.identity)
        finally:
            await instance.client.close()
            if instance.workers is not None:
                await instance.workers.stop()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _keep_token_fresh(client: RoomClient) -> None:
    """Swap the client's token for a fresh one before it expires, for as long as the
    agent is in the room; a token that cannot be refreshed is retried, then left to
    expire (the agent then stays only as long as its current connection)."""
    while not client.closed:
        expires_at = _expiry(client.token)
        if expires_at is None:
            return
        await asyncio.sleep(max(expires_at - time.time(), 0.0) * (1 - REFRESH_FRACTION))
        if client.closed:
            return
        try:
            await client.connected.wait()
            fresh = await client.request("token.refresh", {}, timeout=REFRESH_RETRY)
            client.token = fresh["token"]
        except RoomError as exc:
            logger.warning("cannot refresh the token of %s: %s", client.room_name, exc.message)
            if exc.code == ErrorCode.PERMISSION_DENIED or time.time() >= expires_at:
                return
            await asyncio.sleep(REFRESH_RETRY)


def _expiry(token: str) -> float | None:
    """When ``token`` expires, read without checking it (the room checks it)."""
    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    except jwt.PyJWTError:
        return None
    return float(exp) if isinstance(exp, int | float) else None


def _named(agent: ServiceAgent, identity: str) -> ServiceAgent:
    """A runner built without a name takes the identity it joins as (MeshAgent's rule)."""
    if getattr(agent, "name_given", True) is False:
        agent.name = identity  # type: ignore[attr-defined]
    return agent


def _env_port() -> int:
    raw = os.environ.get(PORT_ENV) or "0"
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"{PORT_ENV}={raw!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{PORT_ENV}={raw!r} is not a port number")
    return port


def _parse_room_call(body: bytes) -> _RoomCallData:
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"the webhook body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise ValueError("the webhook body must be a JSON object")
    event = payload.get("event")
    if event != ROOM_CALL_EVENT:
        raise ValueError(f"unsupported event {event!r}; this service takes {ROOM_CALL_EVENT!r}")
    try:
        return _RoomCallData.model_validate(payload.get("data"))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'data'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"invalid {ROOM_CALL_EVENT} data: {problems}") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RoomError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
