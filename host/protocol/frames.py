"""The room's wire protocol: JSON text frames ``{"id", "type", "data"}``.

A frame with an ``id`` is a request and is answered by exactly one ``response`` or
``error`` frame carrying the same id. A frame without an id is an event. Parsing is kept
apart from I/O so both the room server and the room client share it, and so it can be
tested without a socket.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from taskroom.host.protocol.errors import ErrorCode, RoomError

MAX_FRAME_BYTES = 4 * 1024 * 1024
"""Default cap on one text frame; a larger frame is refused with ``invalid_request``."""

DISMISSED_CLOSE_CODE = 4001
"""WebSocket close code of a room dismissing a participant: the client must not reconnect."""

RESPONSE = "response"
ERROR = "error"

M = TypeVar("M", bound=BaseModel)


class Frame(BaseModel):
    """One protocol frame. ``id`` is set on requests and on their answers."""

    model_config = ConfigDict(extra="forbid")

    id: str | int | None = None
    type: str = Field(min_length=1, max_length=128)
    data: dict[str, Any] = Field(default_factory=dict)


def encode(type_: str, data: dict[str, Any] | None = None, id_: str | int | None = None) -> str:
    """Serialise a frame; plain ``json`` keeps the hot path cheap."""
    frame: dict[str, Any] = {"type": type_, "data": data if data is not None else {}}
    if id_ is not None:
        frame["id"] = id_
    return json.dumps(frame, separators=(",", ":"))


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


def decode(raw: str | bytes, max_bytes: int = MAX_FRAME_BYTES) -> Frame:
    """Parse and check one frame, raising :class:`RoomError` with a precise reason.

    The id of a frame that parses as JSON but fails the model is preserved in the error
    details so the sender can still match the error to its request.
    """
    if isinstance(raw, bytes):
        raise RoomError(
            ErrorCode.INVALID_REQUEST, "binary frames are not supported; send JSON text"
        )
    if len(raw) * 4 > max_bytes and frame_size(raw) > max_bytes:
        raise RoomError(
            ErrorCode.INVALID_REQUEST,
            f"frame of {frame_size(raw)} bytes exceeds the cap of {max_bytes} bytes",
        )
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise RoomError(ErrorCode.INVALID_REQUEST, f"malformed JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise RoomError(ErrorCode.INVALID_REQUEST, "a frame must be a JSON object")
    try:
        return Frame.model_validate(obj)
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
