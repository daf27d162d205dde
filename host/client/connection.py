"""Opening a room's WebSocket: the URL, the handshake, and the room's greeting.

A refusal becomes a RoomError with the room's own reason; anything but ``room.ready`` as
the first frame closes the socket and fails the connect.
"""

from __future__ import annotations

import asyncio
import json

import websockets
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from taskroom.host import protocol
from taskroom.host.client.redirect import RoomMoved, moved_to
from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.protocol.frames import describe_validation
from taskroom.host.protocol.messages import RoomReady

GREETING_TIMEOUT = 10.0


def websocket_url(base_url: str, room: str) -> str:
    """``http://host:port`` (or ws://) to the room's WebSocket URL."""
    base = base_url.rstrip("/")
    if base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    elif base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    return f"{base}/rooms/{room}"


async def open_room(
    base_url: str,
    room: str,
    token: str,
    *,
    max_size: int,
    ping_interval: float | None,
) -> tuple[ClientConnection, RoomReady, dict[str, object]]:
    """Connect and read the greeting: the socket, ``room.ready`` and its raw data."""
    url = websocket_url(base_url, room)
    try:
        ws = await connect(
            url,
            additional_headers={"Authorization": f"Bearer {token}"},
            max_size=max_size,
            ping_interval=ping_interval,
            open_timeout=GREETING_TIMEOUT,
            compression=None,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        reason = _refusal_reason(exc)
        code = (
            ErrorCode.PERMISSION_DENIED
            if status in (401, 403)
            else ErrorCode.UNAVAILABLE  # e.g. a cluster node that takes no new rooms
            if status == 503
            else ErrorCode.INVALID_REQUEST
        )
        raise RoomError(code, f"room refused the connection ({status}): {reason}") from None
    except (OSError, TimeoutError, websockets.exceptions.InvalidHandshake) as exc:
        raise RoomError(ErrorCode.UNAVAILABLE, f"cannot reach room at {url}: {exc}") from None
    try:
        ready, data = await _greeting(ws, max_size)
    except RoomError:
        await ws.close()
        raise
    return ws, ready, data


async def _greeting(ws: ClientConnection, max_size: int) -> tuple[RoomReady, dict[str, object]]:
    """The room's first frame, ``room.ready``; an error frame instead raises its error."""
    try:
        first = protocol.decode(await asyncio.wait_for(ws.recv(), GREETING_TIMEOUT), max_size)
        if first.type == "room.ready":
            return RoomReady.model_validate(first.data), first.data
    except ValidationError as exc:
        reason = f"invalid 'room.ready': {describe_validation(exc)}"
    except RoomError as exc:
        reason = exc.message
    except ConnectionClosed as exc:
        owner = moved_to(exc)
        if owner is not None:
            raise RoomMoved(owner) from None
        reason = str(exc) or type(exc).__name__
    except TimeoutError as exc:
        reason = str(exc) or type(exc).__name__
    else:
        if first.type == protocol.ERROR:
            raise RoomError.from_data(first.data)
        reason = f"its first frame is {first.type!r}, not 'room.ready'"
    raise RoomError(ErrorCode.UNAVAILABLE, f"room did not greet the client: {reason}")


def _refusal_reason(exc: InvalidStatus) -> str:
    body = exc.response.body or b""
    try:
        return json.loads(body).get("error", body.decode(errors="replace"))
    except (ValueError, AttributeError):
        return body.decode(errors="replace") or "no reason given"
