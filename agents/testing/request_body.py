"""What an OpenAI request body asks for, read from either wire format.

Responses and Chat Completions spell tools, conversation and output format differently;
these helpers give auto mode one view of both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

JSON_OBJECT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {"result": {"type": "string"}},
    "required": ["result"],
}
"""What a ``json_object`` response format is answered with."""


def offered_tools(body: Mapping[str, Any]) -> dict[str, Any]:
    """Function tools the request lets the model call now: name -> parameters schema."""
    tools: dict[str, Any] = {}
    for tool in body.get("tools") or ():
        if not isinstance(tool, dict) or tool.get("type") != "function":
            continue
        # Chat nests the definition under "function"; Responses keeps it flat.
        spec = tool["function"] if isinstance(tool.get("function"), dict) else tool
        if isinstance(spec.get("name"), str):
            tools[spec["name"]] = spec.get("parameters") or {}
    choice = body.get("tool_choice")
    if choice == "none":
        return {}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("name") or (choice.get("function") or {}).get("name")
        return {name: tools[name]} if name in tools else {}
    return tools


def _conversation(body: Mapping[str, Any]) -> Any:
    return body["messages"] if "messages" in body else body.get("input")


def answered_tools(body: Mapping[str, Any], known: Mapping[str, str]) -> tuple[set[str], bool]:
    """Names of tools with a result in the conversation, and whether some result is unattributed.

    Both wire formats are read: Responses ``function_call``/``function_call_output`` items and
    Chat assistant ``tool_calls`` with ``tool`` messages.
    """
    items = _conversation(body)
    if not isinstance(items, list):
        return set(), False
    names: dict[Any, Any] = {}
    result_ids: list[Any] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "function_call":
            names[item.get("call_id")] = item.get("name")
        elif item.get("type") == "function_call_output":
            result_ids.append(item.get("call_id"))
        elif item.get("role") == "tool":
            result_ids.append(item.get("tool_call_id"))
        for call in item.get("tool_calls") or ():
            if isinstance(call, dict):
                names[call.get("id")] = (call.get("function") or {}).get("name")
    answered: set[str] = set()
    unknown = False
    for call_id in result_ids:
        name = names.get(call_id) or known.get(call_id)
        if isinstance(name, str):
            answered.add(name)
        else:
            unknown = True
    return answered, unknown


def last_user_text(body: Mapping[str, Any]) -> str:
    items = _conversation(body)
    if isinstance(items, str):
        return items
    listed: list[Any] = items if isinstance(items, list) else []
    for item in reversed(listed):
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                parts = [p.get("text") for p in content if isinstance(p, dict)]
                return " ".join(p for p in parts if isinstance(p, str))
            return ""
    return ""


def requested_schema(body: Mapping[str, Any]) -> Any:
    """The schema a structured answer must fit, or ``None`` when plain text is wanted."""
    fmt = body.get("response_format")  # Chat Completions
    if isinstance(fmt, dict):
        schema = (fmt.get("json_schema") or {}).get("schema")
    else:
        text_config = body.get("text")  # Responses
        fmt = text_config.get("format") if isinstance(text_config, dict) else None
        if not isinstance(fmt, dict):
            return None
        schema = fmt.get("schema")
    if fmt.get("type") == "json_schema":
        return schema or {}
    if fmt.get("type") == "json_object":
        return JSON_OBJECT_SCHEMA
    return None
