"""The room's wire protocol: JSON text frames ``{"id", "type", "data"}``.

A frame with an ``id`` is a request and is answered by exactly one ``response`` or
``error`` frame carrying the same id. A frame without an id is an event. Parsing is kept
apart from I/O so both the room server and the room client share it, and so it can be
tested without a socket.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from taskroom.host.protocol.errors import ErrorCode, RoomError

MAX_FRAME_BYTES = 4 * 1024 * 1024
"""Default cap on one text frame; a larger frame is refused with ``invalid_request``."""

DISMISSED_CLOSE_CODE = 4001
"""WebSocket close code of a room dismissing a participant: the client must not reconnect."""

ROOM_MOVED_CLOSE_CODE = 4307
"""WebSocket close code of a cluster node that does not own the room: the reason is the
owner's URL, which the client follows (``taskroom.host.client.redirect``)."""

RESPONSE = "response"
ERROR = "error"

M = TypeVar("M", bound=BaseModel)


class Frame(BaseModel):
    """One protocol frame. ``id`` is set on requests and on their answers."""

    model_config = ConfigDict(extra="forbid")

    id: str | int | None = None
    type: str = Field(min_length=1, max_length=128)
    data: dict[str, Any] = Field(default_factory=dict)


_encode_json = json.JSONEncoder(separators=(",", ":")).encode
"""One encoder for every frame: ``json.dumps`` with separators builds a new encoder per
call, half again the cost of encoding a small frame."""


def encode(type_: str, data: dict[str, Any] | None = None, id_: str | int | None = None) -> str:
    """Serialise a frame; plain ``json`` keeps the hot path cheap."""
    frame: dict[str, Any] = {"type": type_, "data": data if data is not None else {}}
    if id_ is not None:
        frame["id"] = id_
    return _encode_json(frame)


def response(id_: str | int, data: dict[str, Any] | None = None) -> str:
    return encode(RESPONSE, data, id_)


def error(
    id_: str | int | None,
    code: ErrorCode | str,
    message: str,
    details: dict[str, Any] | None = None,
) -> str:
    return encode(ERROR, RoomError(code, message, details).to_data(), id_)


def frame_size(text: str) -> int:
    """Size in UTF-8 bytes, the unit of the cap (cheap for ASCII, the common case)."""
    return len(text) if text.isascii() else len(text.encode())


_ID = r'"id"\s*:\s*(-?\d{1,18}|"[^"\\]{1,128}")'
_HEAD_ID = re.compile(r"\A\s*\{\s*" + _ID + r"\s*,")
_TAIL_ID = re.compile(r",\s*" + _ID + r"\s*\}\s*\Z")
_PEEK = 200


def recover_id(raw: str) -> str | int | None:
    """The id of a frame too big or too deep to parse, read from where encoders put it:
    the first or the last member of the top-level object. Only ends of the text are
    looked at, so the cost does not grow with the frame."""
    for pattern, part in ((_HEAD_ID, raw[:_PEEK]), (_TAIL_ID, raw[-_PEEK:])):
        found = pattern.search(part)
        if found:
            value = found.group(1)
            return value[1:-1] if value.startswith('"') else int(value)
    return None


def _refusal(message: str, raw: str) -> RoomError:
    frame_id = recover_id(raw)
    return RoomError(
        ErrorCode.INVALID_REQUEST, message, {"id": frame_id} if frame_id is not None else None
    )


def decode(raw: str | bytes, max_bytes: int = MAX_FRAME_BYTES) -> Frame:
    """Parse and check one frame, raising :class:`RoomError` with a precise reason.

    The id of a frame that fails the model, or is too big or too deep to parse, is kept
    in the error details when it can be recovered, so the sender can still match the
    error to its request.
    """
    if isinstance(raw, bytes):
        raise RoomError(
            ErrorCode.INVALID_REQUEST, "binary frames are not supported; send JSON text"
        )
    if len(raw) * 4 > max_bytes and frame_size(raw) > max_bytes:
        raise _refusal(
            f"frame of {frame_size(raw)} bytes exceeds the cap of {max_bytes} bytes", raw
        )
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise RoomError(ErrorCode.INVALID_REQUEST, f"malformed JSON: {exc}") from None
    except RecursionError:
        raise _refusal("frame is nested too deeply", raw) from None
    if not isinstance(obj, dict):
        raise RoomError(ErrorCode.INVALID_REQUEST, "a frame must be a JSON object")
    try:
        return Frame.model_validate(obj)
    except RecursionError:
        raise _refusal("frame is nested too deeply", raw) from None
    except ValidationError as exc:
        frame_id = obj.get("id") if isinstance(obj.get("id"), str | int) else None
        raise RoomError(
            ErrorCode.INVALID_REQUEST,
            f"invalid frame: {describe_validation(exc)}",
            {"id": frame_id} if frame_id is not None else None,
        ) from None


def parse_data(model: type[M], frame: Frame) -> M:
    """Validate a frame's data against its message model."""
    try:
        return model.model_validate(frame.data)
    except ValidationError as exc:
        raise RoomError(
            ErrorCode.INVALID_REQUEST, f"invalid {frame.type!r} data: {describe_validation(exc)}"
        ) from None


def describe_validation(exc: ValidationError) -> str:
    """The first few problems of a failed validation, each as ``field.path: message``."""
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(frame)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
