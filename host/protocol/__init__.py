"""The room's wire protocol, with no I/O: frames, message models, task types, errors.

``from taskroom.host import protocol`` gives the frame functions (``encode``,
``decode``, ``response``, ``error``) and the error types; the message models live in
:mod:`~taskroom.host.protocol.messages` and :mod:`~taskroom.host.protocol.tasks`.
"""

from taskroom.host.protocol.frames import (
    DISMISSED_CLOSE_CODE,
    ERROR,
    MAX_FRAME_BYTES,
    RESPONSE,
    ErrorCode,
    Frame,
    RoomError,
    decode,
    encode,
    error,
    frame_size,
    parse_data,
    response,
)

__all__ = [
    "DISMISSED_CLOSE_CODE",
    "ERROR",
    "MAX_FRAME_BYTES",
    "RESPONSE",
    "ErrorCode",
    "Frame",
    "RoomError",
    "decode",
    "encode",
    "error",
    "frame_size",
    "parse_data",
    "response",
]
