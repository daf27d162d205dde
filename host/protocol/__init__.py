"""The room's wire protocol, with no I/O: frames, the message table, task types, errors.

``from taskroom.host import protocol`` gives the frame functions (``encode``,
``decode``, ``response``, ``error``), the message table lookups (``MESSAGES``,
``model_for``, ``grant_for``, ``decode_data``) and the exception tree rooted in
:class:`TaskroomError`. The message models live in
:mod:`~taskroom.host.protocol.messages`, :mod:`~taskroom.host.protocol.tasks` and
:mod:`~taskroom.host.protocol.progress`.

Names are imported on first use, so importing an exception class does not load pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from taskroom.host.protocol.errors import ErrorCode, RoomError, TaskroomError

if TYPE_CHECKING:
    from taskroom.host.protocol.frames import (
        DISMISSED_CLOSE_CODE,
        ERROR,
        MAX_FRAME_BYTES,
        RESPONSE,
        Frame,
        decode,
        encode,
        error,
        frame_size,
        parse_data,
        response,
    )
    from taskroom.host.protocol.table import (
        MESSAGES,
        MessageSpec,
        decode_data,
        grant_for,
        model_for,
        request_types,
    )

_LAZY = {
    "DISMISSED_CLOSE_CODE": "frames",
    "ERROR": "frames",
    "MAX_FRAME_BYTES": "frames",
    "RESPONSE": "frames",
    "Frame": "frames",
    "decode": "frames",
    "encode": "frames",
    "error": "frames",
    "frame_size": "frames",
    "parse_data": "frames",
    "response": "frames",
    "MESSAGES": "table",
    "MessageSpec": "table",
    "decode_data": "table",
    "grant_for": "table",
    "model_for": "table",
    "request_types": "table",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DISMISSED_CLOSE_CODE",
    "ERROR",
    "MAX_FRAME_BYTES",
    "MESSAGES",
    "RESPONSE",
    "ErrorCode",
    "Frame",
    "MessageSpec",
    "RoomError",
    "TaskroomError",
    "decode",
    "decode_data",
    "encode",
    "error",
    "frame_size",
    "grant_for",
    "model_for",
    "parse_data",
    "request_types",
    "response",
]
