"""Calling agents into a room by signed webhook, and dismissing participants.

``room.call`` names a service in the server's :class:`ServiceRegistry` and an identity
that service declares at its well-known URL. The room mints a short-lived agent token
for that identity, scoped to this room and to what an agent needs, and posts a signed
``room.call`` webhook to the agent's path; the service joins the agent with the token
and answers once it has started. The room reaches only registered services, follows no
redirects, bounds time and concurrency, and never repeats what a service answered to
the caller: its errors are the room's own words (the room log has the details).

``token.refresh`` gives a called-in agent a fresh token over its live connection, so it
can rejoin after a lost connection although each token lives minutes.
``room.dismiss`` tells a participant it is dismissed, then closes its connection with
code 4001 so its client knows not to reconnect.
"""

from __future__ import annotations

import json
import logging
import os
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from pydantic import ValidationError

from taskroom.host import protocol
from taskroom.host.auth.tokens import (
    AGENT_GRANTS,
    AGENT_TOKEN_TTL,
    SECRET_ENV,
    SERVICES_ADMIN_GRANT,
    create_token,
)
from taskroom.host.auth.webhooks import (
    ROOM_CALL_EVENT,
    SIGNATURE_HEADER,
    WEBHOOK_SECRET_ENV,
    sign_webhook,
)
from taskroom.host.protocol import ErrorCode, Frame, RoomError
from taskroom.host.protocol.messages import (
    Dismiss,
    Empty,
    ServiceCall,
    ServiceName,
    ServiceRegistration,
)
from taskroom.host.server.participant import Participant
from taskroom.host.server.room import Room
from taskroom.host.server.service_registry import (
    GuardedResolver,
    ServiceEntry,
    ServiceRegistry,
    check_agent_path,
)

if TYPE_CHECKING:
    from taskroom.host.server.app import RoomServer

logger = logging.getLogger(__name__)

WELL_KNOWN_PATH = "/.well-known/taskroom-service.json"
CONNECT_TIMEOUT = 5.0
"""Seconds to open a connection to a service."""
WELL_KNOWN_TIMEOUT = 10.0
"""Seconds for the whole request that reads a service's declared agents."""
WEBHOOK_TIMEOUT = 60.0
"""Seconds for the whole webhook: the service answers once its agent has started."""
MAX_ANSWER_BYTES = 256 * 1024
"""The most the room reads of any answer from a service."""
MAX_CALLS_PER_ROOM = 4
MAX_CALLS_PER_SERVER = 32
"""Calls in progress at once; one more is refused at once, not queued."""
DISMISSED_EVENT = "room.dismissed"


@dataclass
class AgentCalls:
    """Per-server state: the registry and the count of calls in flight."""

    registry: ServiceRegistry
    in_flight: int = 0
    in_flight_by_room: dict[str, int] = field(default_factory=dict)


_state: weakref.WeakKeyDictionary[RoomServer, AgentCalls] = weakref.WeakKeyDictionary()


def agent_calls_state(server: RoomServer) -> AgentCalls:
    """The server's registry and call counters, made on first use."""
    state = _state.get(server)
    if state is None:
        state = _state[server] = AgentCalls(ServiceRegistry(server.data_dir))
    return state


def install_agent_calls(server: RoomServer, room: Room) -> None:
    """``room_setup`` hook: add agent calls, the service registry and dismissals to ``room``."""
    state = agent_calls_state(server)

    called_in: dict[str, str] = {}
    """Participant id of an agent called in → identity of whoever called it (may dismiss it)."""

    async def call(p: Participant, req: ServiceCall, frame: Frame) -> dict[str, Any]:
        answer = await call_agent(server, room, state, req)
        if isinstance(answer.get("participant_id"), str):
            called_in[answer["participant_id"]] = p.name
        return answer

    async def refresh(p: Participant, req: Empty, frame: Frame) -> dict[str, Any]:
        expires_at = time.time() + AGENT_TOKEN_TTL
        token = create_token(
            server.secret,
            room=p.token.room,
            identity=p.token.identity,
            role=p.token.role,
            grants=list(p.token.grants),
            ttl=AGENT_TOKEN_TTL,
        )
        return {"token": token, "expires_at": int(expires_at)}

    async def register(p: Participant, req: ServiceRegistration, frame: Frame) -> dict[str, Any]:
        try:
            entry = ServiceEntry.model_validate(req.model_dump())
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3]
            )
            raise RoomError(ErrorCode.INVALID_REQUEST, f"invalid service: {problems}") from None
        action = state.registry.register(entry)
        logger.info("%s %s service %s at %s", p, action, entry.name, entry.url)
        return {"name": entry.name, "action": action}

    async def remove(p: Participant, req: ServiceName, frame: Frame) -> dict[str, Any]:
        state.registry.remove(req.name)
        logger.info("%s removed service %s", p, req.name)
        return {"name": req.name, "action": "removed"}

    async def list_services(p: Participant, req: Empty, frame: Frame) -> dict[str, Any]:
        admin = p.allows(SERVICES_ADMIN_GRANT)
        return {
            "services": [
                e.model_dump() if admin else e.public_view() for e in state.registry.entries()
            ]
        }

    async def dismiss(p: Participant, req: Dismiss, frame: Frame) -> dict[str, Any]:
        target = room.participants.get(req.participant_id)
        allowed = (
            target is None
            or p.allows("*")
            or target.name == p.name
            or called_in.get(target.id) == p.name
        )
        if not allowed:
            raise RoomError(
                ErrorCode.PERMISSION_DENIED,
                "you can dismiss only your own connections and the agents you called in, "
                "unless your token grants '*'",
            )
        called_in.pop(req.participant_id, None)
        return await dismiss_participant(room, req.participant_id, f"dismissed by {p.name}")

    room.handle("room.call", call, background=True)
    room.handle("room.dismiss", dismiss, background=True)
    room.handle("token.refresh", refresh)
    room.handle("services.list", list_services)
    room.handle("services.register", register)
    room.handle("services.remove", remove)


def room_webhook_secret(server: RoomServer) -> str:
    """The server's ``webhook_secret``, else TASKROOM_WEBHOOK_SECRET, else its signing secret."""
    return server.webhook_secret or os.environ.get(WEBHOOK_SECRET_ENV) or server.secret


async def call_agent(
    server: RoomServer, room: Room, state: AgentCalls, req: ServiceCall
) -> dict[str, Any]:
    """Call ``req.agent`` of ``req.service`` in; returns its participant id and identity."""
    entry = state.registry.get(req.service)
    if entry.identities is not None and req.agent not in entry.identities:
        raise RoomError(
            ErrorCode.PERMISSION_DENIED,
            f"the service {entry.name!r} may not call agents in as {req.agent!r}",
            {"service": entry.name, "agent": req.agent},
        )
    room_url = server.public_url or server.base_url
    if room_url is None:
        raise RoomError(ErrorCode.UNAVAILABLE, "the room server is not listening on a URL yet")
    if state.in_flight >= MAX_CALLS_PER_SERVER:
        raise RoomError(
            ErrorCode.UNAVAILABLE,
            f"the room server has {MAX_CALLS_PER_SERVER} agent calls in progress; try again",
        )
    if state.in_flight_by_room.get(room.name, 0) >= MAX_CALLS_PER_ROOM:
        raise RoomError(
            ErrorCode.UNAVAILABLE,
            f"room {room.name!r} has {MAX_CALLS_PER_ROOM} agent calls in progress; try again",
        )
    state.in_flight += 1
    state.in_flight_by_room[room.name] = state.in_flight_by_room.get(room.name, 0) + 1
    try:
        return await _call(server, room, entry, req, room_url)
    finally:
        state.in_flight -= 1
        left = state.in_flight_by_room[room.name] - 1
        if left:
            state.in_flight_by_room[room.name] = left
        else:
            del state.in_flight_by_room[room.name]


async def _call(
    server: RoomServer, room: Room, entry: ServiceEntry, req: ServiceCall, room_url: str
) -> dict[str, Any]:
    resolver = GuardedResolver(entry)
    try:
        return await _call_with(server, room, entry, req, room_url, resolver)
    finally:
        await resolver.close()  # a connector does not close a resolver it was given


async def _call_with(
    server: RoomServer,
    room: Room,
    entry: ServiceEntry,
    req: ServiceCall,
    room_url: str,
    resolver: GuardedResolver,
) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
    async with aiohttp.ClientSession(connector=connector) as http:
        path = await _declared_path(http, entry, req.agent)
        token = create_token(
            server.secret,
            room=room.name,
            identity=req.agent,
            role="agent",
            grants=AGENT_GRANTS,
            ttl=AGENT_TOKEN_TTL,
        )
        body = json.dumps(
            {
                "event": ROOM_CALL_EVENT,
                "data": {
                    "room_url": room_url,
                    "room_name": room.name,
                    "token": token,
                    "arguments": req.arguments,
                },
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign_webhook("POST", path, body, room_webhook_secret(server)),
        }
        status, text = await _exchange(
            http, "POST", entry, path, WEBHOOK_TIMEOUT, data=body, headers=headers
        )
    return _answer(entry, req.agent, path, status, text)


async def _declared_path(http: aiohttp.ClientSession, entry: ServiceEntry, agent: str) -> str:
    """The path at which ``entry`` declares an agent with identity ``agent``."""
    status, text = await _exchange(http, "GET", entry, WELL_KNOWN_PATH, WELL_KNOWN_TIMEOUT)
    if status != 200:
        _log_answer(entry, WELL_KNOWN_PATH, status, text)
        raise RoomError(
            ErrorCode.FAILED,
            f"the service {entry.name!r} does not describe its agents "
            f"(HTTP {status} at {WELL_KNOWN_PATH})",
            {"service": entry.name, "status": status},
        )
    try:
        agents = json.loads(text)["agents"]
        declared = {a["identity"]: a.get("path") for a in agents if isinstance(a, dict)}
    except (ValueError, KeyError, TypeError):
        _log_answer(entry, WELL_KNOWN_PATH, status, text)
        raise RoomError(
            ErrorCode.FAILED,
            f"the service {entry.name!r} describes its agents in a form the room cannot read",
            {"service": entry.name},
        ) from None
    if agent not in declared:
        raise RoomError(
            ErrorCode.NOT_FOUND,
            f"the service {entry.name!r} declares no agent {agent!r}",
            {"service": entry.name, "agent": agent},
        )
    return check_agent_path(declared[agent])


async def _exchange(
    http: aiohttp.ClientSession,
    method: str,
    entry: ServiceEntry,
    path: str,
    total: float,
    **kw: Any,
) -> tuple[int, str]:
    """One request to a registered service: no redirects, bounded time and answer size.

    Failures are told in the room's words; nothing the peer sent reaches the caller.
    """
    url = entry.url + path
    details = {"service": entry.name, "path": path}
    timeout = aiohttp.ClientTimeout(total=total, sock_connect=CONNECT_TIMEOUT)
    try:
        async with http.request(method, url, allow_redirects=False, timeout=timeout, **kw) as resp:
            raw = await resp.content.read(MAX_ANSWER_BYTES)
            return resp.status, raw.decode("utf-8", errors="replace")
    except TimeoutError:
        raise RoomError(
            ErrorCode.TIMEOUT,
            f"the service {entry.name!r} did not answer within {total:g} s",
            details,
        ) from None
    except aiohttp.ClientConnectorError as exc:
        logger.info("cannot reach service %s at %s: %s", entry.name, url, exc)
        raise RoomError(
            ErrorCode.UNAVAILABLE, f"the service {entry.name!r} cannot be reached", details
        ) from None
    except aiohttp.ClientError as exc:
        logger.warning("service %s at %s spoke no valid HTTP: %r", entry.name, url, exc)
        raise RoomError(
            ErrorCode.FAILED,
            f"the service {entry.name!r} did not answer with valid HTTP",
            details,
        ) from None


def _log_answer(entry: ServiceEntry, path: str, status: int, text: str) -> None:
    logger.warning("service %s answered %s %s: %r", entry.name, path, status, text.strip()[:500])


def _answer(entry: ServiceEntry, agent: str, path: str, status: int, text: str) -> dict[str, Any]:
    """The joined participant on success, else a RoomError in the room's own words."""
    details = {"service": entry.name, "agent": agent, "status": status}
    if 200 <= status < 300:
        try:
            payload = json.loads(text)
            participant_id = payload["participant_id"]
        except (ValueError, KeyError, TypeError):
            participant_id = None
        if not isinstance(participant_id, str):
            _log_answer(entry, path, status, text)
            raise RoomError(
                ErrorCode.FAILED,
                f"the service {entry.name!r} answered without the agent's participant id",
                details,
            )
        return {"participant_id": participant_id, "identity": agent, "service": entry.name}
    _log_answer(entry, path, status, text)
    if 300 <= status < 400:
        raise RoomError(
            ErrorCode.FAILED,
            f"the service {entry.name!r} answered with a redirect (HTTP {status}); "
            "the room follows none",
            details,
        )
    if status == 404:
        raise RoomError(
            ErrorCode.NOT_FOUND,
            f"the service {entry.name!r} has no agent at the path it declared (HTTP 404)",
            details,
        )
    if status in (401, 403):
        raise RoomError(
            ErrorCode.PERMISSION_DENIED,
            f"the service {entry.name!r} refused the room's webhook (HTTP {status}); the room "
            f"and the service must share the webhook secret ({WEBHOOK_SECRET_ENV}, else "
            f"{SECRET_ENV})",
            details,
        )
    if status >= 500:
        raise RoomError(
            ErrorCode.FAILED,
            f"the agent {agent!r} of service {entry.name!r} failed to start (HTTP {status}); "
            "the service's log says why",
            details,
        )
    raise RoomError(
        ErrorCode.INVALID_REQUEST,
        f"the service {entry.name!r} refused the call (HTTP {status})",
        details,
    )


async def dismiss_participant(room: Room, participant_id: str, reason: str) -> dict[str, Any]:
    """Tell the participant why, then close its connection for good (it leaves the room)."""
    target = room.participants.get(participant_id)
    if target is None:
        raise RoomError(
            ErrorCode.NOT_FOUND, f"no participant {participant_id!r} is in room {room.name!r}"
        )
    target.send(protocol.encode(DISMISSED_EVENT, {"reason": reason}))
    await target.peer.close(protocol.DISMISSED_CLOSE_CODE, "dismissed")
    return {"participant_id": target.id, "name": target.name, "dismissed": True}
