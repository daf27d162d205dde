"""Tests of the scripted LLM server, driven over real HTTP by the real ``openai`` client."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import jsonschema
import openai
import pydantic
import pytest

from taskroom.agents.testing import (
    NO_STEP_LEFT,
    ScriptedLLMServer,
    delay,
    hang,
    http_error,
    invalid_json,
    json_output,
    sample_for_schema,
    serve,
    text,
    tool_calls,
)

WEATHER_PARAMS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 2},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "days", "unit"],
    "additionalProperties": False,
}
SEARCH_PARAMS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "query": {"type": "string"},
        "filters": {"$ref": "#/$defs/Filters"},
    },
    "required": ["query", "filters"],
    "$defs": {
        "Filters": {
            "type": "object",
            "properties": {
                "since": {"type": "string", "format": "date"},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
                "exact": {"type": "boolean"},
            },
            "required": ["since", "tags", "exact"],
        }
    },
}
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "result": {"type": "string"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "sources": {"type": "array", "items": {"type": "string", "format": "uri"}},
    },
    "required": ["result", "confidence", "sources"],
    "additionalProperties": False,
}


@pytest.fixture
async def server() -> AsyncIterator[ScriptedLLMServer]:
    async with ScriptedLLMServer() as running:
        yield running


@pytest.fixture
async def client(server: ScriptedLLMServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with client_for(server) as opened:
        yield opened


def client_for(server: ScriptedLLMServer, **kwargs: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0, **kwargs)


async def eventually(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def validate(instance: Any, schema: dict[str, Any]) -> None:
    jsonschema.validate(instance, schema, format_checker=jsonschema.FormatChecker())


async def test_base_url_and_models(server: ScriptedLLMServer, client: openai.AsyncOpenAI) -> None:
    assert server.base_url.startswith("http://127.0.0.1:")
    assert server.base_url.endswith("/v1")
    models = [model.id async for model in client.models.list()]
    assert {"scripted-model", "gpt-5", "gpt-5-mini", "o3"} <= set(models)


async def test_text_answer_on_responses_api(
    server: ScriptedLLMServer, client: openai.AsyncOpenAI
) -> None:
    server.script(text("Hello from the script."))
    response = await client.responses.create(model="my-own-model", input="Hi")
    assert response.output_text == "Hello from the script."
    assert response.model == "my-own-model"
    assert response.status == "completed"
    assert response.usage is not None
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens


async def test_text_answer_on_chat_api(
    server: ScriptedLLMServer, client: openai.AsyncOpenAI
) -> None:
    server.script(text("Hello from the script."))
    completion = await client.chat.completions.create(
        model="gpt-5-mini", messages=[{"role": "user", "content": "Hi"}]
    )
    choice = completion.choices[0]
    assert choice.message.content == "Hello from the script."
    assert choice.finish_reason == "stop"
    assert completion.model == "gpt-5-mini"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


async def test_streaming_responses_api(
    server: ScriptedLLMServer, client: openai.AsyncOpenAI
) -> None:
    content = "One two three, a streamed answer."
    server.script(text(content), tool_calls([("lookup", {"key": "value"})]))
    stream = await client.responses.create(model="gpt-5", input="Hi", stream=True)
    events = [event async for event in stream]
    types = [event.type for event in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert {"response.output_item.added", "response.output_item.done"} <= set(types)
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == content
    assert [e.sequence_number for e in events] == list(range(len(events)))
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output_text == content
    assert completed.response.usage is not None

    # The client's stream helper accumulates function-call argument deltas.
    async with client.responses.stream(model="gpt-5", input="Hi") as helper:
        final = await helper.get_final_response()
    [call] = final.output
    assert call.type == "function_call"
    assert call.name == "lookup" and json.loads(call.arguments) == {"key": "value"}


async def test_streaming_chat_api(server: ScriptedLLMServer, client: openai.AsyncOpenAI) -> None:
    content = "One two three, a streamed answer."
    server.script(text(content), tool_calls([("a", {"x": 1}), ("b", "raw")]))
    stream = await client.chat.completions.create(
        model="o3",
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) > 1 and "".join(pieces) == content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0

    async with client.chat.completions.stream(
        model="o3", messages=[{"role": "user", "content": "Hi"}]
    ) as helper:
        final = await helper.get_final_completion()
    message = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls"
    assert [(c.function.name, c.function.arguments) for c in message.tool_calls or []] == [
        ("a", '{"x": 1}'),
        ("b", "raw"),
    ]


async def test_tool_calls_step_on_both_apis(
    server: ScriptedLLMServer, client: openai.AsyncOpenAI
) -> None:
    calls = [("get_weather", {"city": "Paris"}), ("broken", "{not json")]
    server.script(tool_calls(calls), tool_calls(calls))

    response = await client.responses.create(model="gpt-5", input="Weather?")
    items = [item for item in response.output if item.type == "function_call"]
    assert [(i.name, i.arguments) for i in items] == [
        ("get_weather", '{"city": "Paris"}'),
        ("broken", "{not json"),
    ]
    assert len({i.call_id for i in items}) == 2

    completion = await client.chat.completions.create(
        model="gpt-5", messages=[{"role": "user", "content": "Weather?"}]
    )
    chat_calls = completion.choices[0].message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in chat_calls] == [
        ("get_weather", '{"city": "Paris"}'),
        ("broken", "{not json"),
    ]
    assert all(c.id.startswith("call_") for c in chat_calls)


async def test_json_output_and_invalid_json_steps(
    server: ScriptedLLMServer, client: openai.AsyncOpenAI
) -> None:
    server.script(json_output({"answer": 42}), invalid_json())
    first = await client.responses.create(model="gpt-5", input="Q")
    assert json.loads(first.output_text) == {"answer": 42}
    second = await client.responses.create(model="gpt-5", input="Q")
    with pytest.raises(json.JSONDecodeError):
        json.loads(second.output_text)


async def test_auto_mode_on_responses_api(
    server: ScriptedLLMServer, client: openai.AsyncOpenAI
) -> None:
    tools: list[Any] = [
        {"type": "function", "name": "get_weather", "parameters": WEATHER_PARAMS},
        {"type": "function", "name": "search", "parameters": SEARCH_PARAMS},
    ]
    answer_format: Any = {
        "format": {"type": "json_schema", "name": "answer", "schema": ANSWER_SCHEMA}
    }
    conversation: list[Any] = [{"role": "user", "content": "What is the weather in Paris today?"}]

    first = await client.responses.create(
        model="gpt-5", input=conversation, tools=tools, text=answer_format
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert sorted(call.name for call in calls) == ["get_weather", "search"]
    schemas = {"get_weather": WEATHER_PARAMS, "search": SEARCH_PARAMS}
    for call in calls:
        validate(json.loads(call.arguments), schemas[call.name])

    conversation += [call.model_dump(exclude_none=True) for call in calls]
    conversation += [
        {"type": "function_call_output", "call_id": call.call_id, "output": "ok"} for call in calls
    ]
    second = await client.responses.create(
        model="gpt-5", input=conversation, tools=tools, text=answer_format
    )
    assert not [item for item in second.output if item.type == "function_call"]
    answer = json.loads(second.output_text)
    validate(answer, ANSWER_SCHEMA)
    assert answer["result"] == "Scripted answer to: What is the weather in Paris today?"

    # Results sent with previous_response_id only (no function_call items) still count.
    third = await client.responses.create(
        model="gpt-5",
        previous_response_id=first.id,
        input=[
            {"type": "function_call_output", "call_id": call.call_id, "output": "ok"}
            for call in calls
        ],
        tools=tools,
    )
    assert third.output_text == "Scripted answer."


async def test_auto_mode_on_chat_api(server: ScriptedLLMServer, client: openai.AsyncOpenAI) -> None:
    tools: list[Any] = [
        {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_PARAMS}}
    ]
    messages: list[Any] = [{"role": "user", "content": "Weather in Oslo?"}]
    first = await client.chat.completions.create(model="gpt-5", messages=messages, tools=tools)
    [call] = first.choices[0].message.tool_calls or []
    validate(json.loads(call.function.arguments), WEATHER_PARAMS)

    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    second = await client.chat.completions.create(
        model="gpt-5",
        messages=messages,
        tools=tools,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": ANSWER_SCHEMA},
        },
    )
    assert second.choices[0].finish_reason == "stop"
    answer = json.loads(second.choices[0].message.content or "")
    validate(answer, ANSWER_SCHEMA)
    assert answer["result"] == "Scripted answer to: Weather in Oslo?"

    plain = await client.chat.completions.create(
        model="gpt-5", messages=messages, tools=tools, tool_choice="none"
    )
    assert plain.choices[0].message.content == "Scripted answer to: Weather in Oslo?"
    json_mode = await client.chat.completions.create(
        model="gpt-5", messages=messages, response_format={"type": "json_object"}
    )
    assert json.loads(json_mode.choices[0].message.content or "") == {
        "result": "Scripted answer to: Weather in Oslo?"
    }


class Step(pydantic.BaseModel):
    title: str
    minutes: int


class Plan(pydantic.BaseModel):
    result: str
    steps: list[Step]
    status: str | None


async def test_auto_mode_satisfies_client_parse_helpers(
    server: ScriptedLLMServer, client: openai.AsyncOpenAI
) -> None:
    parsed = await client.responses.parse(model="gpt-5", input="Plan a day", text_format=Plan)
    assert parsed.output_parsed is not None
    assert parsed.output_parsed.result == "Scripted answer to: Plan a day"
    assert len(parsed.output_parsed.steps) == 1
    chat = await client.chat.completions.parse(
        model="gpt-5", messages=[{"role": "user", "content": "Plan"}], response_format=Plan
    )
    assert isinstance(chat.choices[0].message.parsed, Plan)


def test_sample_for_schema_covers_common_keywords() -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 3},
            "code": {"type": "string", "minLength": 20},
            "mode": {"enum": ["fast", "slow"]},
            "kind": {"const": "fixed"},
            "when": {"type": "string", "format": "date-time"},
            "mail": {"type": "string", "format": "email"},
            "ratio": {"type": "number", "exclusiveMinimum": 2, "exclusiveMaximum": 3},
            "count": {"type": "integer", "exclusiveMinimum": 10},
            "small": {"type": "integer", "maximum": -5},
            "flag": {"type": ["boolean", "null"]},
            "maybe": {"anyOf": [{"type": "null"}, {"$ref": "#/definitions/Item"}]},
            "either": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
            "both": {
                "allOf": [
                    {"$ref": "#/definitions/Item"},
                    {"properties": {"extra": {"type": "boolean"}}, "required": ["extra"]},
                ]
            },
            "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}]},
            "tree": {"$ref": "#/definitions/Tree"},
            "optional": {"type": "string"},
        },
        "required": [
            "name",
            "code",
            "mode",
            "kind",
            "when",
            "mail",
            "ratio",
            "count",
            "small",
            "flag",
            "maybe",
            "either",
            "both",
            "pair",
            "tree",
        ],  # fmt: skip
        "additionalProperties": False,
        "definitions": {
            "Item": {
                "type": "object",
                "properties": {"id": {"type": "integer", "multipleOf": 5, "minimum": 7}},
                "required": ["id"],
            },
            "Tree": {
                "type": "object",
                "properties": {
                    "children": {"type": "array", "items": {"$ref": "#/definitions/Tree"}}
                },
                "required": ["children"],
            },
        },
    }
    value = sample_for_schema(schema)
    validate(value, schema)
    assert "optional" not in value
    assert value["both"]["id"] == 10
    assert sample_for_schema({"type": "string"}, answer="Hi.") == "Hi."
    with pytest.raises(ValueError):
        sample_for_schema({"$ref": "#/$defs/Missing"})


async def test_http_error_with_retry_after(
    server: ScriptedLLMServer, client: openai.AsyncOpenAI
) -> None:
    server.script(http_error(429, retry_after=2, message="slow down"), http_error(503))
    with pytest.raises(openai.RateLimitError) as caught:
        await client.responses.create(model="gpt-5", input="Hi")
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.code == "rate_limit_exceeded"
    assert "slow down" in caught.value.message
    with pytest.raises(openai.InternalServerError) as caught_503:
        await client.chat.completions.create(
            model="gpt-5", messages=[{"role": "user", "content": "Hi"}]
        )
    assert caught_503.value.status_code == 503
    assert "retry-after" not in caught_503.value.response.headers


async def test_client_retries_after_retry_after(server: ScriptedLLMServer) -> None:
    server.script(http_error(429, retry_after=0.05), text("second try"))
    async with openai.AsyncOpenAI(
        base_url=server.base_url, api_key="test", max_retries=1
    ) as client:
        response = await client.responses.create(model="gpt-5", input="Hi")
    assert response.output_text == "second try"
    assert len(server.requests) == 2


async def test_delay_is_honoured_and_abandoned_cleanly(
    server: ScriptedLLMServer, client: openai.AsyncOpenAI
) -> None:
    server.script(delay(0.2, text("late")), delay(30, text("never sent")))
    started = time.monotonic()
    response = await client.responses.create(model="gpt-5", input="Hi")
    assert response.output_text == "late"
    assert time.monotonic() - started >= 0.2

    async with client_for(server, timeout=0.2) as impatient:
        with pytest.raises(openai.APITimeoutError):
            await impatient.responses.create(model="gpt-5", input="Hi")
    # The server notices the client went away and ends the request instead of waiting 30 s.
    abandoned = server.requests[-1]
    await eventually(lambda: abandoned.finished_at is not None)
    assert abandoned.finished_at is not None
    assert abandoned.finished_at - abandoned.started_at < 5


async def test_hang_until_timeout_or_stop() -> None:
    server = ScriptedLLMServer()
    await server.start()
    server.script(hang(), hang())
    async with client_for(server, timeout=0.2) as impatient:
        with pytest.raises(openai.APITimeoutError):
            await impatient.chat.completions.create(
                model="gpt-5", messages=[{"role": "user", "content": "Hi"}]
            )
    async with client_for(server) as patient:
        pending = asyncio.create_task(patient.responses.create(model="gpt-5", input="Hi"))
        await eventually(lambda: len(server.requests) == 2)
        started = time.monotonic()
        await server.stop()
        assert time.monotonic() - started < 1.5
        with pytest.raises(openai.InternalServerError) as caught:
            await pending
    assert caught.value.status_code == 503


async def test_requests_are_recorded_with_overlapping_times() -> None:
    async with ScriptedLLMServer(latency=0.2) as server, client_for(server) as client:
        await asyncio.gather(
            client.responses.create(model="gpt-5", input="one"),
            client.responses.create(model="gpt-5", input="two"),
        )
        await client.models.list()
    first, second, listing = server.requests
    assert {first.path, second.path} == {"/v1/responses"}
    assert {first.body["input"], second.body["input"]} == {"one", "two"}
    assert first.headers["Authorization"] == "Bearer test"
    assert first.method == "POST" and listing.method == "GET" and listing.path == "/v1/models"
    assert first.finished_at is not None and second.finished_at is not None
    assert first.finished_at - first.started_at >= 0.2
    assert first.started_at < second.finished_at and second.started_at < first.finished_at


async def test_latency_scales_to_many_concurrent_requests() -> None:
    async with ScriptedLLMServer(latency=0.3) as server:
        url = f"{server.base_url}/chat/completions"
        body = {"model": "gpt-5", "messages": [{"role": "user", "content": "Hi"}]}
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def ask() -> int:
                async with session.post(url, json=body) as response:
                    await response.read()
                    return response.status

            started = time.monotonic()
            statuses = await asyncio.gather(*(ask() for _ in range(300)))
            elapsed = time.monotonic() - started
    assert statuses == [200] * 300
    assert 0.3 <= elapsed < 3


async def test_per_model_scripts_take_precedence(
    server: ScriptedLLMServer, client: openai.AsyncOpenAI
) -> None:
    server.script(text("shared 1"), text("shared 2"))
    server.script_for("gpt-5-mini", text("mini 1"))

    async def ask(model: str) -> str:
        return (await client.responses.create(model=model, input="Hi")).output_text

    assert await ask("gpt-5-mini") == "mini 1"
    assert await ask("gpt-5") == "shared 1"
    assert await ask("gpt-5-mini") == "shared 2"
    server.script(text("dropped"))
    server.script_for("o3", text("dropped too"))
    server.clear()
    assert await ask("o3") == "Scripted answer to: Hi"


async def test_no_step_left_without_auto_mode() -> None:
    async with ScriptedLLMServer(auto=False) as server, client_for(server) as client:
        server.script(text("only one"))
        assert (await client.responses.create(model="gpt-5", input="Hi")).output_text == "only one"
        with pytest.raises(openai.InternalServerError) as caught:
            await client.responses.create(model="gpt-5", input="Hi")
    assert caught.value.status_code == 500
    assert NO_STEP_LEFT in caught.value.message


async def test_invalid_request_body_is_rejected(server: ScriptedLLMServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.base_url}/responses", data=b"{oops") as response:
            assert response.status == 400
            assert "error" in await response.json()
    assert server.requests[-1].body == "{oops"


async def test_serve_runs_until_cancelled(unused_tcp_port: int) -> None:
    task = asyncio.create_task(serve("127.0.0.1", unused_tcp_port))
    base_url = f"http://127.0.0.1:{unused_tcp_port}/v1"
    async with openai.AsyncOpenAI(base_url=base_url, api_key="test", max_retries=0) as client:
        for _ in range(100):
            try:
                response = await client.responses.create(model="gpt-5", input="Hi")
                break
            except openai.APIConnectionError:
                await asyncio.sleep(0.02)
    assert response.output_text == "Scripted answer to: Hi"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
