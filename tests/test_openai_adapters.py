"""Both OpenAI adapters against the scripted OpenAI-compatible server, over real HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from taskroom.agents import (
    ChatContext,
    LLMError,
    OpenAIChatCompletionsAdapter,
    OpenAIResponsesAdapter,
    ToolResponseAdapter,
)
from taskroom.agents.adapter import InvalidOutputError
from taskroom.agents.openai_client import (
    LLMRequestError,
    OpenAICompatibleAdapter,
    create_openai_client,
    default_model,
)
from taskroom.agents.testing import (
    ScriptedLLMServer,
    hang,
    http_error,
    invalid_json,
    json_output,
    text,
    tool_calls,
)
from taskroom.toolkits import Toolkit, tool

ADAPTERS = [OpenAIResponsesAdapter, OpenAIChatCompletionsAdapter]
PATHS = {
    OpenAIResponsesAdapter: "/v1/responses",
    OpenAIChatCompletionsAdapter: "/v1/chat/completions",
}

STRICT_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}
LOOSE_SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}}


@pytest.fixture
async def server() -> AsyncIterator[ScriptedLLMServer]:
    async with ScriptedLLMServer(auto=False) as srv:
        yield srv


@pytest.fixture(params=ADAPTERS, ids=["responses", "chat"])
def adapter_cls(request: pytest.FixtureRequest) -> type[OpenAICompatibleAdapter]:
    return request.param


@pytest.fixture
async def make_adapter(
    server: ScriptedLLMServer, adapter_cls: type[OpenAICompatibleAdapter]
) -> AsyncIterator[Any]:
    made: list[OpenAICompatibleAdapter] = []

    def make(**kwargs: Any) -> OpenAICompatibleAdapter:
        kwargs.setdefault("max_retries", 0)
        adapter = adapter_cls(
            model="scripted-model",
            base_url=server.base_url,
            api_key="test-key",
            timeout=10.0,
            **kwargs,
        )
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.aclose()


def user_context(prompt: str = "hi", *, rules: list[str] | None = None) -> ChatContext:
    context = ChatContext()
    context.append_rules(rules or [])
    context.append_user_message(prompt)
    return context


@tool
def echo(text: str) -> str:
    """Echo the text back."""
    return text


ECHO = Toolkit(name="basics", tools=[echo])


def llm_requests(server: ScriptedLLMServer) -> list[Any]:
    return [r for r in server.requests if r.path.startswith("/v1/")]


def sent_results(body: dict[str, Any]) -> dict[str, str]:
    """Tool name -> the result text a request sent back to the model (either wire format)."""
    names: dict[str, str] = {}
    outputs: dict[str, str] = {}
    if "input" in body:
        for item in body["input"]:
            if item.get("type") == "function_call":
                names[item["call_id"]] = item["name"]
            elif item.get("type") == "function_call_output":
                outputs[item["call_id"]] = item["output"]
    else:
        for message in body["messages"]:
            for call in message.get("tool_calls") or ():
                names[call["id"]] = call["function"]["name"]
            if message.get("role") == "tool":
                outputs[message["tool_call_id"]] = message["content"]
    return {names[call_id]: output for call_id, output in outputs.items()}


def sent_tools(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Tool name -> its definition flattened to name/description/parameters/strict."""
    tools = {}
    for entry in body.get("tools") or ():
        spec = entry.get("function", entry)
        tools[spec["name"]] = spec
    return tools


# --------------------------------------------------------------------------- answers


async def test_plain_text_answer(server: ScriptedLLMServer, make_adapter: Any, adapter_cls: Any):
    server.script(text("Hello there."))
    context = user_context("Say hello.", rules=["Be brief.", "Be kind."])

    answer = await make_adapter().next(context=context)

    assert answer == "Hello there."
    assert context.items[-1].role == "assistant"
    assert context.items[-1].content == "Hello there."
    [request] = llm_requests(server)
    assert request.path == PATHS[adapter_cls]
    body = request.body
    assert body["model"] == "scripted-model"
    assert "tools" not in body and "parallel_tool_calls" not in body
    if adapter_cls is OpenAIResponsesAdapter:
        assert body["instructions"] == "Be brief.\nBe kind."
        assert body["input"] == [{"type": "message", "role": "user", "content": "Say hello."}]
    else:
        assert body["messages"] == [
            {"role": "system", "content": "Be brief.\nBe kind."},
            {"role": "user", "content": "Say hello."},
        ]


@pytest.mark.parametrize(
    ("schema", "strict"), [(STRICT_SCHEMA, True), (LOOSE_SCHEMA, False)], ids=["strict", "loose"]
)
async def test_output_schema(
    server: ScriptedLLMServer, make_adapter: Any, adapter_cls: Any, schema: Any, strict: bool
):
    server.script(json_output({"answer": "42"}))

    answer = await make_adapter().next(context=user_context(), output_schema=schema)

    assert answer == {"answer": "42"}
    body = llm_requests(server)[0].body
    if adapter_cls is OpenAIResponsesAdapter:
        assert body["text"] == {
            "format": {"type": "json_schema", "name": "output", "schema": schema, "strict": strict}
        }
    else:
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema, "strict": strict},
        }


async def test_answer_that_is_not_json_is_invalid_output(
    server: ScriptedLLMServer, make_adapter: Any
):
    server.script(invalid_json("{nope"))
    with pytest.raises(InvalidOutputError) as info:
        await make_adapter().next(context=user_context(), output_schema=STRICT_SCHEMA)
    assert info.value.text == "{nope"


async def test_request_options_are_merged(server: ScriptedLLMServer, make_adapter: Any):
    server.script(text("ok"))
    adapter = make_adapter(request_options={"temperature": 0.25, "top_k": 5})

    assert await adapter.next(context=user_context()) == "ok"

    body = llm_requests(server)[0].body
    assert body["temperature"] == 0.25
    assert body["top_k"] == 5  # unknown to the openai client: sent through extra_body


# --------------------------------------------------------------------------- tools


async def test_two_tools_run_concurrently_and_results_go_back(
    server: ScriptedLLMServer, make_adapter: Any, adapter_cls: Any
):
    spans: dict[str, tuple[float, float]] = {}

    async def slow(name: str, value: int) -> dict[str, Any]:
        started = time.monotonic()
        await asyncio.sleep(0.3)
        spans[name] = (started, time.monotonic())
        return {"tool": name, "value": value}

    @tool
    async def slow_a(x: int) -> dict[str, Any]:
        """First slow tool."""
        return await slow("a", x)

    @tool
    async def slow_b(x: int) -> dict[str, Any]:
        """Second slow tool."""
        return await slow("b", x)

    toolkit = Toolkit(name="slow", tools=[slow_a, slow_b])
    server.script(tool_calls([("slow_a", {"x": 1}), ("slow_b", {"x": 2})]), text("both done"))
    context = user_context("Run both.")

    answer = await make_adapter().next(context=context, toolkits=[toolkit])

    assert answer == "both done"
    (a_start, a_end), (b_start, b_end) = spans["a"], spans["b"]
    assert a_start < b_end and b_start < a_end, "the two tool calls did not overlap"
    assert max(a_end, b_end) - min(a_start, b_start) < 0.55

    first, second = llm_requests(server)
    assert all(r.path == PATHS[adapter_cls] for r in (first, second))
    tools = sent_tools(first.body)
    assert set(tools) == {"slow_a", "slow_b"}
    assert tools["slow_a"]["description"] == "First slow tool."
    assert tools["slow_a"]["strict"] is True  # pydantic closes the object, x is required
    assert first.body["parallel_tool_calls"] is True
    assert sent_results(second.body) == {
        "slow_a": '{"tool":"a","value":1}',
        "slow_b": '{"tool":"b","value":2}',
    }
    if adapter_cls is OpenAIChatCompletionsAdapter:
        # Both calls travel in one assistant message, followed by one tool message each.
        roles = [m["role"] for m in second.body["messages"]]
        assert roles == ["user", "assistant", "tool", "tool"]
        assert len(second.body["messages"][1]["tool_calls"]) == 2


async def test_unknown_tool_is_reported_to_the_model(server: ScriptedLLMServer, make_adapter: Any):
    server.script(tool_calls([("made_up", {"q": 1})]), text("sorry"))

    answer = await make_adapter().next(context=user_context(), toolkits=[ECHO])

    assert answer == "sorry"
    output = sent_results(llm_requests(server)[1].body)["made_up"]
    assert "no tool named 'made_up'" in output
    assert "available tools: echo" in output


async def test_arguments_that_are_not_json(server: ScriptedLLMServer, make_adapter: Any):
    server.script(tool_calls([("echo", "{text: oops")]), text("fixed"))

    answer = await make_adapter().next(context=user_context(), toolkits=[ECHO])

    assert answer == "fixed"
    output = sent_results(llm_requests(server)[1].body)["echo"]
    assert output.startswith("error: the arguments for echo are not a JSON object")


async def test_tool_that_raises(server: ScriptedLLMServer, make_adapter: Any):
    @tool
    def explode(reason: str) -> str:
        """Always fails."""
        raise RuntimeError(f"kaput: {reason}")

    server.script(tool_calls([("explode", {"reason": "disk full"})]), text("it failed"))

    answer = await make_adapter().next(
        context=user_context(), toolkits=[Toolkit(name="bad", tools=[explode])]
    )

    assert answer == "it failed"
    output = sent_results(llm_requests(server)[1].body)["explode"]
    assert output == "error: RuntimeError: kaput: disk full"


async def test_huge_tool_result_is_truncated(server: ScriptedLLMServer, make_adapter: Any):
    @tool
    def dump() -> str:
        """Returns a lot."""
        return "x" * 5000

    server.script(tool_calls([("dump", {})]), text("read it"))

    await make_adapter().next(
        context=user_context(),
        toolkits=[Toolkit(name="big", tools=[dump])],
        tool_adapter=ToolResponseAdapter(max_chars=100),
    )

    output = sent_results(llm_requests(server)[1].body)["dump"]
    assert output.startswith("x" * 100 + "\n[truncated: 4900 more characters")
    assert len(output) < 200


async def test_usage_is_summed_over_turns(server: ScriptedLLMServer, make_adapter: Any):
    server.script(tool_calls([("echo", {"text": "ping"})]), text("pong"))
    adapter = make_adapter()
    reported: list[Any] = []
    request = adapter._request

    async def recording_request(create: Any, fields: dict[str, Any]) -> Any:
        response = await request(create, fields)
        reported.append(response.usage)
        return response

    adapter._request = recording_request
    context = user_context()

    await adapter.next(context=context, toolkits=[ECHO])

    assert len(reported) == 2
    usage = context.usage
    assert usage.requests == 2
    if isinstance(adapter, OpenAIResponsesAdapter):
        expected_in = sum(u.input_tokens for u in reported)
        expected_out = sum(u.output_tokens for u in reported)
    else:
        expected_in = sum(u.prompt_tokens for u in reported)
        expected_out = sum(u.completion_tokens for u in reported)
    assert expected_in > 0 and expected_out > 0
    assert (usage.input_tokens, usage.output_tokens) == (expected_in, expected_out)
    assert usage.total_tokens == expected_in + expected_out


async def test_max_turns_exceeded(server: ScriptedLLMServer, make_adapter: Any):
    server.script(
        tool_calls([("echo", {"text": "1"})]),
        tool_calls([("echo", {"text": "2"})]),
        tool_calls([("echo", {"text": "3"})]),
    )
    with pytest.raises(LLMError, match="no final answer within 2 turns"):
        await make_adapter(max_turns=2).next(context=user_context(), toolkits=[ECHO])
    assert len(llm_requests(server)) == 2


# --------------------------------------------------------------------------- failures


async def test_rate_limit_is_retried_by_the_client(server: ScriptedLLMServer, make_adapter: Any):
    server.script(http_error(429, retry_after=0.1, message="slow down"), text("made it"))

    answer = await make_adapter(max_retries=2).next(context=user_context())

    assert answer == "made it"
    first, second = llm_requests(server)
    assert second.started_at - first.finished_at >= 0.08  # retry-after was honoured


async def test_server_error_after_retries(
    server: ScriptedLLMServer, make_adapter: Any, adapter_cls: Any
):
    server.script(*[http_error(500, retry_after=0.01, message="model overloaded")] * 3)

    with pytest.raises(LLMError) as info:
        await make_adapter(max_retries=1).next(context=user_context())

    error = info.value
    assert isinstance(error, LLMRequestError)
    assert error.status_code == 500
    assert error.server_message == "model overloaded"
    message = str(error)
    assert "HTTP 500" in message and "model overloaded" in message
    assert adapter_cls.api_name in message and "'scripted-model'" in message
    assert "after 1 retries" in message
    assert len(llm_requests(server)) == 2


async def test_client_error_is_not_retried(server: ScriptedLLMServer, make_adapter: Any):
    server.script(http_error(400, message="bad schema"), text("unused"))

    with pytest.raises(LLMRequestError, match=r"HTTP 400: bad schema") as info:
        await make_adapter(max_retries=3).next(context=user_context())

    assert info.value.status_code == 400
    assert len(llm_requests(server)) == 1


async def test_connection_refused(adapter_cls: Any):
    async with ScriptedLLMServer() as srv:
        base_url = srv.base_url
    adapter = adapter_cls(model="m", base_url=base_url, api_key="k", max_retries=0)
    try:
        with pytest.raises(LLMRequestError, match="could not connect") as info:
            await adapter.next(context=user_context())
        assert info.value.status_code is None
    finally:
        await adapter.aclose()


async def test_cancellation_during_a_hanging_request(server: ScriptedLLMServer, make_adapter: Any):
    server.script(hang())
    task = asyncio.create_task(make_adapter().next(context=user_context()))
    for _ in range(500):  # until the server holds the request (a loaded machine is slow)
        if llm_requests(server):
            break
        await asyncio.sleep(0.02)
    assert not task.done()

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    # The HTTP request was abandoned too: the server sees its client go away.
    [request] = llm_requests(server)
    for _ in range(250):
        if request.finished_at is not None:
            break
        await asyncio.sleep(0.02)
    assert request.finished_at is not None


# --------------------------------------------------------------------------- configuration


def test_default_model(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("TASKROOM_MODEL", raising=False)
    assert default_model() == "gpt-5-mini"
    assert OpenAIResponsesAdapter().model == "gpt-5-mini"
    monkeypatch.setenv("TASKROOM_MODEL", "gpt-4.1")
    assert default_model() == "gpt-4.1"
    assert OpenAIChatCompletionsAdapter().model == "gpt-4.1"


async def test_client_from_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    client = create_openai_client()
    assert client.api_key == "env-key"
    assert str(client.base_url) == "http://127.0.0.1:9/v1/"
    assert client.max_retries == 4
    assert client.timeout == 120.0
    await client.close()

    client = create_openai_client(api_key="arg-key", base_url="http://localhost:1/v1")
    assert client.api_key == "arg-key"
    assert str(client.base_url) == "http://localhost:1/v1/"
    await client.close()

    monkeypatch.delenv("OPENAI_API_KEY")
    client = create_openai_client()  # a local server needs no key
    assert client.api_key
    await client.close()

    monkeypatch.delenv("OPENAI_BASE_URL")
    with pytest.raises(LLMError, match="OPENAI_API_KEY"):
        create_openai_client()
