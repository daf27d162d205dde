"""JsonResponse and TextResponse: typed tool and agent answers, as MeshAgent's SDK has them.

A tool may return one of these, a dict or a str; the toolkit unwraps a response to its
JSON value before validation, so what travels through the room is always plain JSON.
``RoomClient.agents`` wraps answers in them, so code written against MeshAgent's
``response.json`` / ``response.text`` reads them unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class JsonResponse:
    """A JSON answer; ``json`` holds the value."""

    json: Any

    def to_json(self) -> dict[str, Any]:
        return {"type": "json", "json": self.json}


@dataclass(frozen=True)
class TextResponse:
    """A plain-text answer; ``text`` holds it."""

    text: str

    def to_json(self) -> dict[str, Any]:
        return {"type": "text", "text": self.text}


Response = JsonResponse | TextResponse


def unwrap_response(value: Any) -> Any:
    """The plain JSON value of a tool's answer: a response is unwrapped, anything else kept."""
    if isinstance(value, JsonResponse):
        return value.json
    if isinstance(value, TextResponse):
        return value.text
    return value


def wrap_response(value: Any) -> Response:
    """A room answer as a response: a str is text, any other JSON value is JSON."""
    if isinstance(value, JsonResponse | TextResponse):
        return value
    if isinstance(value, str):
        return TextResponse(text=value)
    return JsonResponse(json=value)
