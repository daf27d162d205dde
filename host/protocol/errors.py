"""The project's one exception tree, rooted in :class:`TaskroomError`.

Catch ``TaskroomError`` to handle anything taskroom raises on purpose; catch a subclass
for one failure. :class:`RoomError` is the one that crosses the wire: it becomes an
``error`` frame with one of the :class:`ErrorCode` codes, and an ``error`` frame becomes
a ``RoomError`` again on the other side.
"""

from __future__ import annotations

import enum
from typing import Any


class TaskroomError(Exception):
    """Base class of every exception taskroom raises on purpose."""


class ErrorCode(enum.StrEnum):
    """The small, closed set of error codes every error frame carries."""

    PERMISSION_DENIED = "permission_denied"
    INVALID_REQUEST = "invalid_request"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    FAILED = "failed"
    CANCELLED = "cancelled"


class RoomError(TaskroomError):
    """An error that travels over the wire as an ``error`` frame."""

    def __init__(
        self, code: ErrorCode | str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message
        self.details = details or {}

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"code": self.code.value, "message": self.message}
        if self.details:
            data["details"] = self.details
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> RoomError:
        try:
            code = ErrorCode(data.get("code", "failed"))
        except ValueError:
            code = ErrorCode.FAILED
        return cls(code, str(data.get("message", "")), data.get("details") or None)

    def __repr__(self) -> str:
        return f"RoomError({self.code.value!r}, {self.message!r})"
