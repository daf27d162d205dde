"""Readable one-line descriptions of task progress events, for the CLI and the MCP gateway."""

from __future__ import annotations

import json
from typing import Any


def describe_event(data: dict[str, Any]) -> str:
    """One short line for a progress event, whatever agent emitted it."""
    kind = data.get("kind")
    if kind == "llm.turn":
        return f"model turn {data.get('turn')} ({data.get('model') or 'default model'})"
    if kind == "llm.answer":
        return f"answer received ({data.get('chars')} chars)"
    if kind == "tool.call":
        return (
            f"calling {data.get('toolkit')}.{data.get('tool')} {json.dumps(data.get('arguments'))}"
        )
    if kind == "tool.result":
        outcome = "done" if data.get("ok") else f"failed: {data.get('error')}"
        return f"{data.get('toolkit')}.{data.get('tool')} {outcome}"
    if kind == "tool.error":
        return f"tool {data.get('tool')} failed: {data.get('error')}"
    if kind == "tool.progress":
        return f"{data.get('toolkit')} › {describe_event(data.get('event') or {})}"
    if kind == "output.invalid":
        return f"answer rejected (attempt {data.get('attempt')}): {data.get('error')}"
    for key in ("message", "text", "status"):
        if isinstance(data.get(key), str):
            return data[key]
    return str(kind) if kind else json.dumps(data, ensure_ascii=False)[:200]
