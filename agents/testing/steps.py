"""Script steps for the scripted LLM: what one model request answers.

A step is data, so a test reads as a list of answers (``text``, ``tool_calls``,
``json_output``...) and the server and the in-process test models play the same steps.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TextStep:
    """Answer with this assistant text (plain, JSON or deliberately broken JSON)."""

    content: str


@dataclass(frozen=True, slots=True)
class ToolCallsStep:
    """Answer with parallel function calls; each call is (tool name, raw arguments text)."""

    calls: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class HttpErrorStep:
    """Fail the request with an OpenAI-style error body, optionally asking for a retry delay."""

    status: int
    retry_after: float | None
    message: str


@dataclass(frozen=True, slots=True)
class DelayStep:
    """Wait ``seconds`` before playing ``step``, to exercise client timeouts and overlap."""

    seconds: float
    step: Step


@dataclass(frozen=True, slots=True)
class HangStep:
    """Never answer: the request ends only when the client goes away or the server stops."""


Step = TextStep | ToolCallsStep | HttpErrorStep | DelayStep | HangStep


def text(content: str) -> TextStep:
    """Step answering with ``content`` as the assistant's text."""
    return TextStep(content)


def tool_calls(calls: Iterable[tuple[str, Mapping[str, Any] | str]]) -> ToolCallsStep:
    """Step calling tools; a ``str`` argument is sent raw so tests can send non-JSON arguments."""
    return ToolCallsStep(
        tuple((name, args if isinstance(args, str) else json.dumps(args)) for name, args in calls)
    )


def json_output(obj: Any) -> TextStep:
    """Step answering with the JSON text of ``obj``."""
    return TextStep(json.dumps(obj))


def invalid_json(text: str = "{not json") -> TextStep:
    """Step answering with text that does not parse as JSON, to test output validation."""
    return TextStep(text)


def http_error(
    status: int, retry_after: float | None = None, message: str = "scripted HTTP error"
) -> HttpErrorStep:
    """Step failing with HTTP ``status``; ``retry_after`` seconds go in a ``retry-after`` header."""
    return HttpErrorStep(status, retry_after, message)


def delay(seconds: float, step: Step) -> DelayStep:
    """Step that waits ``seconds`` and then plays ``step``."""
    return DelayStep(seconds, step)


def hang() -> HangStep:
    """Step that never answers."""
    return HangStep()
