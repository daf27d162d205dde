"""Calling agents into a room by signed webhook, and dismissing participants.

``room.call`` mints a token for the agent and posts a signed ``room.call`` webhook to the
agent's service, which joins the agent with that token and answers once it has started.
``room.dismiss`` tells a participant it is dismissed, then closes its connection with
code 4001 so its client knows not to reconnect.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from taskroom.host import protocol
from taskroom.host.auth.tokens import SECRET_ENV, create_token
from taskroom.host.auth.webhooks import (
    ROOM_CALL_EVENT,
    SIGNATURE_HEADER,
    WEBHOOK_SECRET_ENV,
    sign_webhook,
)
from taskroom.host.protocol import ErrorCode, Frame, RoomError
from taskroom.host.protocol.messages import Dismiss, RoomCall
from taskroom.host.server.participant import Participant
from taskroom.host.server.room import Room

if TYPE_CHECKING:
    from taskroom.host.server.app import RoomServer

WEBHOOK_TIMEOUT = 60.0
DISMISSED_EVENT = "room.dismissed"


def install_agent_calls(server: RoomServer, room: Room) -> None:
    """``room_setup`` hook: add ``room.call`` and ``room.dismiss`` to ``room``."""

    async def call(p: Participant, req: RoomCall, frame: Frame) -> dict[str, Any]:
        return await call_agent(server, room, req)

    async def dismiss(p: Participant, req: Dismiss, frame: Frame) -> dict[str, Any]:
        target = room.participants.get(req.participant_id)
        if target is not None and target.info.role not in ("agent", "tool") and not p.allows("*"):
            raise RoomError(
                ErrorCode.PERMISSION_DENIED,
                "only agents and tool hosts can be dismissed, unless your token grants '*'",
            )
        return await dismiss_participant(room, req.participant_id, f"dismissed by {p.name}")

    room.handle("room.call", RoomCall, call, background=True, grant="room.call")
    room.handle("room.dismiss", Dismiss, dismiss, background=True, grant="room.call")


def room_webhook_secret(server: RoomServer) -> str:
    """The server's ``webhook_secret``, else TASKROOM_WEBHOOK_SECRET, else its signing secret."""
    return server.webhook_secret or os.environ.get(WEBHOOK_SECRET_ENV) or server.secret


async def call_agent(server: RoomServer, room: Room, req: RoomCall) -> dict[str, Any]:
    """Post the signed webhook that calls ``req.name`` in; returns the service's answer."""
    url = req.url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RoomError(ErrorCode.INVALID_REQUEST, f"{url!r} is not an http(s) URL")
    room_url = server.public_url or server.base_url
    if room_url is None:
        raise RoomError(ErrorCode.UNAVAILABLE, "the room server is not listening on a URL yet")
    token = create_token(server.secret, room=room.name, identity=req.name, role=req.role)
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
        SIGNATURE_HEADER: sign_webhook(body, room_webhook_secret(server)),
    }
    details = {"url": url, "name": req.name}
    try:
        timeout = aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, data=body, headers=headers) as resp,
        ):
            status = resp.status
            text = await resp.text(errors="replace")
    except aiohttp.ClientConnectorError:
        raise RoomError(
            ErrorCode.UNAVAILABLE, f"no service is listening at {url}", details
        ) from None
    except TimeoutError:
        raise RoomError(
            ErrorCode.TIMEOUT,
            f"the service at {url} did not answer within {WEBHOOK_TIMEOUT:g} s",
            details,
        ) from None
    except aiohttp.ClientError as exc:
        raise RoomError(
            ErrorCode.UNAVAILABLE, f"calling the service at {url} failed: {exc!r}", details
        ) from None
    return _answer(url, parts.path or "/", status, text, {**details, "status": status})


def _answer(url: str, path: str, status: int, text: str, details: dict[str, Any]) -> dict[str, Any]:
    """The service's JSON on success, else a RoomError that says what went wrong where."""
    try:
        payload: Any = json.loads(text)
    except ValueError:
        payload = None
    if 200 <= status < 300:
        if not isinstance(payload, dict):
            raise RoomError(
                ErrorCode.FAILED, f"the service at {url} answered with no JSON object", details
            )
        return payload
    message = payload.get("error") if isinstance(payload, dict) else None
    message = str(message or text.strip()[:500] or f"HTTP {status}")
    if status == 404:
        raise RoomError(
            ErrorCode.NOT_FOUND, f"the service has no path {path!r} ({message})", details
        )
    if status in (401, 403):
        raise RoomError(
            ErrorCode.PERMISSION_DENIED,
            f"the service at {url} refused the webhook: {message}; the room and the service "
            f"must share the webhook secret ({WEBHOOK_SECRET_ENV}, else {SECRET_ENV})",
            details,
        )
    if status >= 500:
        raise RoomError(ErrorCode.FAILED, f"the service at {url} failed: {message}", details)
    raise RoomError(
        ErrorCode.INVALID_REQUEST,
        f"the service at {url} refused the call (HTTP {status}): {message}",
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
