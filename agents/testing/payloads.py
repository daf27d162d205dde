"""Reply payloads in OpenAI's wire formats: Responses and Chat Completions, JSON and SSE."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from taskroom.agents.testing.sampler import estimate_tokens

_ERROR_KINDS: Mapping[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    409: ("invalid_request_error", "conflict"),
    413: ("invalid_request_error", "request_too_large"),
    422: ("invalid_request_error", "unprocessable_entity"),
    429: ("requests", "rate_limit_exceeded"),
}


@dataclass(frozen=True, slots=True)
class Call:
    """A tool call in a reply, with the id the client sends its result back under."""

    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Answer:
    """What a reply says: final text, or tool calls."""

    text: str | None = None
    calls: tuple[Call, ...] = ()


def new_id() -> str:
    """A random id suffix in the length OpenAI's ids have."""
    return uuid.uuid4().hex[:24]


def model_card(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 1700000000, "owned_by": "scripted"}


def error_response(status: int, message: str, *, retry_after: float | None = None) -> web.Response:
    """An error in OpenAI's shape, which the ``openai`` client maps to its exception classes."""
    kind, code = _ERROR_KINDS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", f"http_{status}")
    )
    headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def _usage(body: Mapping[str, Any], answer: Answer, keys: tuple[str, ...]) -> tuple[int, int]:
    prompt = estimate_tokens({k: body[k] for k in keys if body.get(k) is not None})
    completion = estimate_tokens(answer.text) + sum(
        estimate_tokens(call.name) + estimate_tokens(call.arguments) for call in answer.calls
    )
    return prompt, completion


def _pieces(text: str) -> list[str]:
    """Split text into word-sized deltas whose concatenation is the text."""
    return re.findall(r"\s*\S+|\s+$", text)


def responses_payload(body: Mapping[str, Any], model: str, answer: Answer) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    if answer.text is not None:
        output.append(
            {
                "id": f"msg_{new_id()}",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [
                    {"type": "output_text", "text": answer.text, "annotations": [], "logprobs": []}
                ],
            }
        )
    for call in answer.calls:
        output.append(
            {
                "id": f"fc_{new_id()}",
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
                "status": "completed",
            }
        )
    input_tokens, output_tokens = _usage(body, answer, ("instructions", "input", "tools", "text"))
    return {
        "id": f"resp_{new_id()}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "metadata": body.get("metadata") or {},
        "user": body.get("user"),
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
    }


def responses_events(final: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The Responses SSE events leading to ``final``, in the order OpenAI sends them."""
    started = {**final, "status": "in_progress", "output": [], "usage": None}
    yield {"type": "response.created", "response": started}
    yield {"type": "response.in_progress", "response": started}
    for index, item in enumerate(final["output"]):
        item_id = item["id"]
        where = {"item_id": item_id, "output_index": index}
        if item["type"] == "message":
            part = item["content"][0]
            yield {
                "type": "response.output_item.added",
                "output_index": index,
                "item": {**item, "status": "in_progress", "content": []},
            }
            empty_part = {**part, "text": ""}
            yield {
                "type": "response.content_part.added",
                **where,
                "content_index": 0,
                "part": empty_part,
            }
            for piece in _pieces(part["text"]):
                yield {
                    "type": "response.output_text.delta",
                    **where,
                    "content_index": 0,
                    "delta": piece,
                    "logprobs": [],
                }
            yield {
                "type": "response.output_text.done",
                **where,
                "content_index": 0,
                "text": part["text"],
                "logprobs": [],
            }
            yield {"type": "response.content_part.done", **where, "content_index": 0, "part": part}
        else:
            yield {
                "type": "response.output_item.added",
                "output_index": index,
                "item": {**item, "status": "in_progress", "arguments": ""},
            }
            for piece in _pieces(item["arguments"]):
                yield {"type": "response.function_call_arguments.delta", **where, "delta": piece}
            yield {
                "type": "response.function_call_arguments.done",
                **where,
                "name": item["name"],
                "arguments": item["arguments"],
            }
        yield {"type": "response.output_item.done", "output_index": index, "item": item}
    yield {"type": "response.completed", "response": final}


def chat_payload(body: Mapping[str, Any], model: str, answer: Answer) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.text, "refusal": None}
    if answer.calls:
        message["tool_calls"] = [
            {
                "id": call.call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in answer.calls
        ]
    prompt_tokens, completion_tokens = _usage(
        body, answer, ("messages", "tools", "response_format")
    )
    return {
        "id": f"chatcmpl-{new_id()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if answer.calls else "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }


def chat_chunks(final: dict[str, Any], *, include_usage: bool) -> Iterator[dict[str, Any]]:
    """``chat.completion.chunk`` objects for ``final``; usage only if the client asked for it."""
    head = {
        "id": final["id"],
        "object": "chat.completion.chunk",
        "created": final["created"],
        "model": final["model"],
        "system_fingerprint": None,
    }

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return {**head, "choices": [choice]}

    choice = final["choices"][0]
    message = choice["message"]
    yield chunk({"role": "assistant", "content": "" if message["content"] is not None else None})
    for piece in _pieces(message["content"] or ""):
        yield chunk({"content": piece})
    for index, call in enumerate(message.get("tool_calls") or ()):
        opening = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
        yield chunk({"tool_calls": [{"index": index, **opening}]})
        for piece in _pieces(call["function"]["arguments"]):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, choice["finish_reason"])
    if include_usage:
        yield {**head, "choices": [], "usage": final["usage"]}


async def write_sse(
    request: web.Request, events: Iterable[dict[str, Any]], *, done_marker: bool
) -> web.StreamResponse:
    """Stream ``events`` as SSE: Responses events are named and numbered, Chat ends in [DONE]."""
    response = web.StreamResponse(
        headers={"content-type": "text/event-stream", "cache-control": "no-cache"}
    )
    await response.prepare(request)
    for sequence, event in enumerate(events):
        if done_marker:
            frame = f"data: {json.dumps(event)}\n\n"
        else:
            event["sequence_number"] = sequence
            frame = f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"
        await response.write(frame.encode())
    if done_marker:
        await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response
