"""Task runners end to end: a full room server (with tasks), the scripted LLM server over
HTTP with the real ``openai`` client, the agent hosted by one RoomClient and called by another.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from taskroom.agents import (
    ChatContext,
    DynamicLLMTaskRunner,
    LLMTaskRunner,
    OpenAIChatCompletionsAdapter,
    OpenAIResponsesAdapter,
    TaskContext,
    TaskRunner,
)
from taskroom.agents.llm_task_runner import DEFAULT_OUTPUT_SCHEMA
from taskroom.agents.openai_client import OpenAICompatibleAdapter
from taskroom.agents.testing import (
    ScriptedLLMServer,
    hang,
    http_error,
    invalid_json,
    json_output,
    tool_calls,
)
from taskroom.host.client.room_client import RoomClient
from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.server import RoomServer
from taskroom.toolkits import Tool, ToolContext, Toolkit, tool
from taskroom.toolkits.requirements import RequiredSchema, RequiredToolkit

from .conftest import ClientPool

ROOM = "tasks"
AGENT = "llm-task-runner"
RUN = f"run_{AGENT}_task"

ADAPTERS = [OpenAIResponsesAdapter, OpenAIChatCompletionsAdapter]

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def room_name() -> str:
    return ROOM


@pytest.fixture
def server(full_room: RoomServer) -> RoomServer:
    return full_room


@pytest.fixture
def connect(join: ClientPool) -> ClientPool:
    return join


@pytest.fixture
async def llm() -> AsyncIterator[ScriptedLLMServer]:
    async with ScriptedLLMServer(auto=False) as srv:
        yield srv


@pytest.fixture(params=ADAPTERS, ids=["responses", "chat"])
async def make_adapter(
    request: pytest.FixtureRequest, llm: ScriptedLLMServer
) -> AsyncIterator[Callable[..., OpenAICompatibleAdapter]]:
    made: list[OpenAICompatibleAdapter] = []

    def make(**kwargs: Any) -> OpenAICompatibleAdapter:
        kwargs.setdefault("max_retries", 1)
        kwargs.setdefault("timeout", 10.0)
        adapter = request.param(
            model="scripted-model", base_url=llm.base_url, api_key="test", **kwargs
        )
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
async def agent(connect: Callable[..., Any]) -> RoomClient:
    return await connect("agent", "agent")


@pytest.fixture
async def caller(connect: Callable[..., Any]) -> RoomClient:
    return await connect("alice", "user")


@pytest.fixture
async def start_runner(agent: RoomClient) -> AsyncIterator[Callable[..., Any]]:
    runners: list[TaskRunner] = []

    async def start(runner: TaskRunner, room: RoomClient | None = None) -> TaskRunner:
        await runner.start(room or agent)
        runners.append(runner)
        return runner

    yield start
    for runner in runners:
        await runner.stop()


# --------------------------------------------------------------------------- helpers


def llm_requests(llm: ScriptedLLMServer) -> list[Any]:
    return [r for r in llm.requests if r.path in ("/v1/responses", "/v1/chat/completions")]


def sent_tools(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Tool name -> definition, for either wire format."""
    return {
        entry.get("function", entry)["name"]: entry.get("function", entry)
        for entry in body.get("tools") or ()
    }


def sent_results(body: dict[str, Any]) -> list[str]:
    """The tool result texts a request sent back to the model, for either wire format."""
    if "input" in body:
        return [i["output"] for i in body["input"] if i.get("type") == "function_call_output"]
    return [m["content"] for m in body["messages"] if m.get("role") == "tool"]


def sent_schema(body: dict[str, Any]) -> Any:
    """The output schema a request asked for, for either wire format."""
    if "response_format" in body:
        return body["response_format"]["json_schema"]["schema"]
    return body["text"]["format"]["schema"]


def sent_text(body: dict[str, Any]) -> str:
    """Everything the model was shown as text (instructions and messages)."""
    parts = [body.get("instructions") or ""]
    for item in body.get("input") or body.get("messages") or ():
        content = item.get("content")
        if isinstance(content, str):
            parts.append(content)
    return "\n".join(parts)


async def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


# --------------------------------------------------------------------------- answers


async def test_default_schema_answer(make_adapter, llm, caller, start_runner):
    await start_runner(LLMTaskRunner(llm_adapter=make_adapter()))
    llm.script(json_output({"result": "Paris"}))

    result = await caller.invoke_tool(AGENT, RUN, {"prompt": "Capital of France?"}, timeout=10)

    assert result == {"result": "Paris"}
    [request] = llm_requests(llm)
    assert sent_schema(request.body) == DEFAULT_OUTPUT_SCHEMA
    assert "Capital of France?" in sent_text(request.body)


async def test_custom_output_schema_is_advertised_and_met(make_adapter, llm, caller, start_runner):
    runner = LLMTaskRunner(
        llm_adapter=make_adapter(),
        output_schema=PERSON,
        labels=("llm", "people"),
        supports_tools=True,
    )
    await start_runner(runner)
    llm.script(json_output({"name": "Ada", "age": 36}))

    [instance] = await caller.list_toolkits(name=AGENT)
    [spec] = instance.toolkit.tools
    assert spec.name == RUN
    assert spec.output_schema == PERSON
    meta = instance.toolkit.metadata
    assert meta["kind"] == "task_runner"
    assert meta["labels"] == ["llm", "people"]
    assert meta["supports_tools"] is True
    assert meta["agent"] is True

    result = await caller.invoke_tool(AGENT, RUN, {"prompt": "Who wrote the first program?"})
    assert result == {"name": "Ada", "age": 36}
    assert not list(Draft202012Validator(PERSON).iter_errors(result))
    assert sent_schema(llm_requests(llm)[0].body) == PERSON


async def test_dynamic_schema_per_call(make_adapter, llm, caller, start_runner):
    await start_runner(DynamicLLMTaskRunner(llm_adapter=make_adapter()))
    dyn = "dynamic-llm-task-runner"
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "required": ["n"],
        "additionalProperties": False,
    }
    llm.script(json_output({"n": 7}))

    result = await caller.invoke_tool(
        dyn, f"run_{dyn}_task", {"prompt": "A number", "output_schema": schema}
    )
    assert result == {"n": 7}
    assert sent_schema(llm_requests(llm)[0].body) == schema

    [instance] = await caller.list_toolkits(name=dyn)
    assert instance.toolkit.metadata["dynamic_output_schema"] is True


async def test_dynamic_refuses_a_non_schema_before_calling_the_llm(
    make_adapter, llm, caller, start_runner
):
    await start_runner(DynamicLLMTaskRunner(llm_adapter=make_adapter()))
    dyn = "dynamic-llm-task-runner"

    with pytest.raises(RoomError) as info:
        await caller.invoke_tool(
            dyn, f"run_{dyn}_task", {"prompt": "x", "output_schema": {"type": "nope"}}
        )
    assert info.value.code == ErrorCode.INVALID_REQUEST
    assert "output_schema" in info.value.message
    assert "not a valid JSON Schema" in info.value.message
    assert llm_requests(llm) == []


# --------------------------------------------------------------------------- tools


async def test_required_toolkit_acts_on_behalf_of_the_caller(
    make_adapter, llm, connect, caller, start_runner
):
    host = await connect("toolhost", "tool")
    seen: list[ToolContext] = []

    @tool
    async def lookup(key: str, context: ToolContext) -> str:
        """Look a key up."""
        seen.append(context)
        return f"value-of-{key}"

    await host.host_toolkit(Toolkit(name="kv", tools=[lookup]))
    runner = LLMTaskRunner(llm_adapter=make_adapter(), requires=[RequiredToolkit("kv", timeout=2)])
    await start_runner(runner)
    llm.script(tool_calls([("lookup", {"key": "k1"})]), json_output({"result": "done"}))

    events: list[dict[str, Any]] = []
    result = await caller.invoke_tool(
        AGENT, RUN, {"prompt": "look up k1"}, on_progress=events.append
    )

    assert result == {"result": "done"}
    [context] = seen
    assert context.caller.name == "agent"
    assert context.on_behalf_of is not None
    assert context.on_behalf_of.name == "alice"
    assert context.on_behalf_of.id == caller.participant.id
    assert context.task_id is not None
    await wait_until(lambda: any(e.get("kind") == "tool.result" for e in events))
    kinds = [e.get("kind") for e in events]
    assert "tool.started" in kinds
    call = next(e for e in events if e.get("kind") == "tool.started")
    assert call["toolkit"] == "kv" and call["tool"] == "lookup"
    assert call["arguments"] == {"key": "k1"}
    res = next(e for e in events if e.get("kind") == "tool.result")
    assert res["ok"] is True and "value-of-k1" in res["preview"]
    assert sent_results(llm_requests(llm)[1].body) == ["value-of-k1"]


async def test_caller_named_toolkits_with_supports_tools(
    make_adapter, llm, connect, caller, start_runner
):
    host = await connect("calc-host", "tool")
    added: list[tuple[int, int]] = []

    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        added.append((a, b))
        return a + b

    await host.host_toolkit(Toolkit(name="calc", tools=[add]))
    await start_runner(LLMTaskRunner(llm_adapter=make_adapter(), supports_tools=True))
    llm.script(tool_calls([("add", {"a": 2, "b": 3})]), json_output({"result": "5"}))

    result = await caller.invoke_tool(AGENT, RUN, {"prompt": "2+3?", "tools": ["calc"]})

    assert result == {"result": "5"}
    assert added == [(2, 3)]
    first, second = llm_requests(llm)
    assert set(sent_tools(first.body)) == {"add"}
    assert sent_results(second.body) == ["5"]

    # Without "tools" the model is offered nothing.
    llm.script(json_output({"result": "no tools"}))
    await caller.invoke_tool(AGENT, RUN, {"prompt": "plain"})
    assert sent_tools(llm_requests(llm)[-1].body) == {}

    # A named toolkit that is not in the room is refused clearly.
    with pytest.raises(RoomError) as info:
        await caller.invoke_tool(AGENT, RUN, {"prompt": "x", "tools": ["ghost"]})
    assert info.value.code == ErrorCode.NOT_FOUND
    assert "ghost" in info.value.message


async def test_caller_named_toolkits_refused_without_supports_tools(
    make_adapter, llm, connect, caller, start_runner
):
    host = await connect("calc-host", "tool")

    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    await host.host_toolkit(Toolkit(name="calc", tools=[add]))
    await start_runner(LLMTaskRunner(llm_adapter=make_adapter(), supports_tools=False))

    with pytest.raises(RoomError) as info:
        await caller.invoke_tool(AGENT, RUN, {"prompt": "2+3?", "tools": ["calc"]})
    assert info.value.code == ErrorCode.INVALID_REQUEST
    assert "tools" in info.value.message
    assert llm_requests(llm) == []


async def test_tool_calls_of_one_turn_overlap(make_adapter, llm, connect, caller, start_runner):
    host = await connect("sleeper", "tool")
    spans: dict[str, tuple[float, float]] = {}

    def sleeper(name: str) -> Tool:
        @tool(name=name)
        async def nap() -> str:
            """Sleep a little."""
            start = time.monotonic()
            await asyncio.sleep(0.3)
            spans[name] = (start, time.monotonic())
            return f"{name} done"

        return nap

    await host.host_toolkit(Toolkit(name="naps", tools=[sleeper("nap_a"), sleeper("nap_b")]))
    runner = LLMTaskRunner(llm_adapter=make_adapter(), requires=[RequiredToolkit("naps")])
    await start_runner(runner)
    llm.script(tool_calls([("nap_a", {}), ("nap_b", {})]), json_output({"result": "rested"}))

    result = await caller.invoke_tool(AGENT, RUN, {"prompt": "rest"})

    assert result == {"result": "rested"}
    (a_start, a_end), (b_start, b_end) = spans["nap_a"], spans["nap_b"]
    assert max(a_start, b_start) < min(a_end, b_end), "the two calls ran one after the other"
    assert max(a_end, b_end) - min(a_start, b_start) < 0.55
    assert sorted(sent_results(llm_requests(llm)[1].body)) == ["nap_a done", "nap_b done"]


async def test_made_up_tool_name_gets_error_text(make_adapter, llm, caller, start_runner):
    await start_runner(LLMTaskRunner(llm_adapter=make_adapter()))
    llm.script(tool_calls([("nope", {})]), json_output({"result": "recovered"}))

    events: list[dict[str, Any]] = []
    result = await caller.invoke_tool(AGENT, RUN, {"prompt": "x"}, on_progress=events.append)

    assert result == {"result": "recovered"}
    [error_text] = sent_results(llm_requests(llm)[1].body)
    assert "no tool named 'nope'" in error_text
    await wait_until(lambda: any(e.get("kind") == "tool.error" for e in events))


async def test_non_json_tool_arguments_get_error_text(make_adapter, llm, caller, start_runner):
    calls: list[str] = []

    @tool
    def echo(text: str) -> str:
        """Echo the text."""
        calls.append(text)
        return text

    runner = LLMTaskRunner(llm_adapter=make_adapter(), toolkits=[Toolkit(name="e", tools=[echo])])
    await start_runner(runner)
    llm.script(tool_calls([("echo", "{not json")]), json_output({"result": "ok"}))

    result = await caller.invoke_tool(AGENT, RUN, {"prompt": "x"})

    assert result == {"result": "ok"}
    assert calls == []
    [error_text] = sent_results(llm_requests(llm)[1].body)
    assert error_text.startswith("error:") and "not a JSON object" in error_text


# --------------------------------------------------------------------------- repair


async def test_repair_after_invalid_json(make_adapter, llm, caller, start_runner):
    await start_runner(LLMTaskRunner(llm_adapter=make_adapter()))
    llm.script(invalid_json(), json_output({"result": "fixed"}))

    events: list[dict[str, Any]] = []
    result = await caller.invoke_tool(AGENT, RUN, {"prompt": "x"}, on_progress=events.append)

    assert result == {"result": "fixed"}
    first, second = llm_requests(llm)
    assert "rejected" in sent_text(second.body)
    await wait_until(lambda: any(e.get("kind") == "output.invalid" for e in events))
    invalid = next(e for e in events if e.get("kind") == "output.invalid")
    assert invalid["attempt"] == 1 and "not valid JSON" in invalid["error"]


async def test_schema_broken_every_time_fails_after_max_repairs(
    make_adapter, llm, caller, start_runner
):
    await start_runner(LLMTaskRunner(llm_adapter=make_adapter(), max_repairs=2))
    llm.script(*[json_output({"result": 42})] * 3)

    with pytest.raises(RoomError) as info:
        await caller.invoke_tool(AGENT, RUN, {"prompt": "x"})

    assert info.value.code == ErrorCode.FAILED
    assert "OutputValidationError" in info.value.message
    assert "after 2 repairs" in info.value.message
    assert "42 is not of type 'string'" in info.value.message
    assert len(llm_requests(llm)) == 3


# --------------------------------------------------------------------------- requirements


async def test_missing_required_toolkit_fails_start_in_time(make_adapter, agent):
    runner = LLMTaskRunner(
        llm_adapter=make_adapter(), requires=[RequiredToolkit("never-there", timeout=0.5)]
    )
    started = time.monotonic()
    with pytest.raises(RoomError) as info:
        await asyncio.wait_for(runner.start(agent), 5)
    assert time.monotonic() - started < 2
    assert info.value.code == ErrorCode.NOT_FOUND
    assert "never-there" in info.value.message
    assert await agent.list_toolkits(name=AGENT) == []


async def test_meshagent_style_requirement_waits_with_no_limit(
    make_adapter, agent, connect, caplog
):
    """``callable=`` and ``timeout=None`` as MeshAgent programs write them: the agent waits
    (past the default 30 s bound, here past 0.5 s) until the toolkit is in the room, and says
    that a callable requirement is not called in."""
    runner = LLMTaskRunner(
        llm_adapter=make_adapter(),
        requires=[RequiredToolkit(name="late", callable=True, timeout=None)],
    )
    starting = asyncio.create_task(runner.start(agent))
    await asyncio.sleep(0.5)
    assert not starting.done()

    @tool()
    def ping() -> str:
        """Answer pong."""
        return "pong"

    host = await connect("late-host", "tool")
    await host.host_toolkit(Toolkit(name="late", tools=[ping]))
    await asyncio.wait_for(starting, 10)
    assert [t.participant_id for t in await agent.list_toolkits(name=AGENT)]
    assert "marked callable" in caplog.text
    await runner.stop()


async def test_required_schema_is_published(make_adapter, caller, start_runner):
    schema = {"type": "object", "properties": {"x": {"type": "number"}}}
    runner = LLMTaskRunner(llm_adapter=make_adapter(), requires=[RequiredSchema("point", schema)])
    await start_runner(runner)
    assert await caller.get_schema("point") == schema


async def test_required_schema_by_name_as_output_schema(
    make_adapter, llm, connect, caller, start_runner
):
    owner = await connect("schema-owner", "user")
    await owner.put_schema("person", PERSON)
    runner = LLMTaskRunner(llm_adapter=make_adapter(), output_schema=RequiredSchema("person"))
    await start_runner(runner)
    assert runner.output_schema == PERSON
    [instance] = await caller.list_toolkits(name=AGENT)
    assert instance.toolkit.tools[0].output_schema == PERSON

    llm.script(json_output({"name": "Grace", "age": 85}))
    result = await caller.invoke_tool(AGENT, RUN, {"prompt": "a person"})
    assert result == {"name": "Grace", "age": 85}
    assert sent_schema(llm_requests(llm)[0].body) == PERSON


# --------------------------------------------------------------------------- LLM failures


async def test_retry_after_429(make_adapter, llm, caller, start_runner):
    await start_runner(LLMTaskRunner(llm_adapter=make_adapter(max_retries=2)))
    llm.script(http_error(429, retry_after=0.1), json_output({"result": "after retry"}))

    result = await caller.invoke_tool(AGENT, RUN, {"prompt": "x"})

    assert result == {"result": "after retry"}
    assert len(llm_requests(llm)) == 2


async def test_llm_500_every_time_fails_clearly(make_adapter, llm, caller, start_runner):
    await start_runner(LLMTaskRunner(llm_adapter=make_adapter(max_retries=1)))
    llm.script(*[http_error(500, message="kaput")] * 2)

    with pytest.raises(RoomError) as info:
        await caller.invoke_tool(AGENT, RUN, {"prompt": "x"}, timeout=10)

    assert info.value.code == ErrorCode.FAILED
    assert "500" in info.value.message
    assert "kaput" in info.value.message
    assert len(llm_requests(llm)) == 2


async def test_hanging_llm_times_out_and_request_is_aborted(
    make_adapter, llm, caller, start_runner
):
    await start_runner(LLMTaskRunner(llm_adapter=make_adapter()))
    llm.script(hang())

    started = time.monotonic()
    with pytest.raises(RoomError) as info:
        await caller.invoke_tool(AGENT, RUN, {"prompt": "x"}, timeout=1)
    assert info.value.code == ErrorCode.TIMEOUT
    assert time.monotonic() - started < 3
    [request] = llm_requests(llm)
    await wait_until(lambda: request.finished_at is not None, timeout=2)


async def test_cancel_during_llm_call(make_adapter, llm, caller, start_runner):
    await start_runner(LLMTaskRunner(llm_adapter=make_adapter()))
    llm.script(hang())

    started = await caller.tasks.start(AGENT, {"prompt": "x"})
    [task_id] = started["task_ids"]
    await wait_until(lambda: len(llm_requests(llm)) == 1)
    [request] = llm_requests(llm)
    assert request.finished_at is None

    cancelled_at = time.monotonic()
    assert (await caller.tasks.cancel(task_id))["cancelled"] == [task_id]
    waited = await caller.tasks.wait(task_id, timeout=1)
    assert waited["tasks"][0]["status"] == "cancelled"
    assert time.monotonic() - cancelled_at < 1
    await wait_until(lambda: request.finished_at is not None, timeout=1)


# --------------------------------------------------------------------------- bad input, errors, usage


@pytest.mark.parametrize("arguments", [{}, {"prompt": 5}], ids=["missing", "mistyped"])
async def test_bad_prompt_is_invalid_request(make_adapter, llm, caller, start_runner, arguments):
    await start_runner(LLMTaskRunner(llm_adapter=make_adapter()))

    with pytest.raises(RoomError) as info:
        await caller.invoke_tool(AGENT, RUN, arguments)
    assert info.value.code == ErrorCode.INVALID_REQUEST
    assert "prompt" in info.value.message
    with pytest.raises(RoomError) as info:
        await caller.tasks.start(AGENT, arguments)
    assert info.value.code == ErrorCode.INVALID_REQUEST
    assert "prompt" in info.value.message
    assert llm_requests(llm) == []


async def test_ask_raising_reaches_the_caller(caller, start_runner):
    class Boom(TaskRunner):
        async def ask(self, context: TaskContext, arguments: dict[str, Any]) -> Any:
            raise ValueError("boom")

    await start_runner(Boom(name="boomer"))
    with pytest.raises(RoomError) as info:
        await caller.invoke_tool("boomer", "run_boomer_task", {})
    assert "ValueError" in info.value.message
    assert "boom" in info.value.message


async def test_completed_task_records_usage(make_adapter, llm, caller, start_runner):
    await start_runner(LLMTaskRunner(llm_adapter=make_adapter()))
    llm.script(tool_calls([("nope", {})]), json_output({"result": "counted"}))

    started = await caller.tasks.start(AGENT, {"prompt": "count my tokens"})
    [task_id] = started["task_ids"]
    waited = await caller.tasks.wait(task_id, timeout=10)
    assert waited["tasks"][0]["status"] == "completed"

    record = await caller.tasks.get(task_id)
    assert record["result"] == {"result": "counted"}
    usage = record["usage"]
    assert usage["input_tokens"] > 0
    assert usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["requests"] == 2


# --------------------------------------------------------------------------- MeshAgent-style runners


class KeywordAsk(TaskRunner):
    """As MeshAgent calls it: keywords only, with an attachment."""

    def __init__(self) -> None:
        super().__init__(
            name="kw",
            title=None,
            description=None,
            requires=None,
            supports_tools=None,
            toolkits=None,
            labels=None,
            input_schema=None,
            output_schema=None,
        )

    async def init_chat_context(self):
        chat = ChatContext()
        chat.append_rules(["made by an async init_chat_context"])
        return chat

    async def ask(self, *, context: TaskContext, arguments: dict, attachment: bytes = None):
        return {
            "rules": context.chat.instructions,
            "attachment": attachment,
            "arguments": arguments,
        }


class PositionalAsk(TaskRunner):
    """An override with its own parameter names is called positionally."""

    async def ask(self, ctx, args):
        return {"caller": ctx.caller.name, "args": args}


async def test_meshagent_style_runner_defaults_and_keyword_ask(caller, start_runner):
    runner = KeywordAsk()
    assert (runner.title, runner.description, runner.requires) == ("kw", "", [])
    assert (runner.supports_tools, runner.toolkits, runner.labels) == (False, [], [])
    await start_runner(runner)

    answer = await caller.agents.ask(agent="kw", arguments={"x": 1})

    assert answer.json == {
        "rules": ["made by an async init_chat_context"],
        "attachment": None,
        "arguments": {"x": 1},
    }


async def test_positional_ask_and_a_name_from_the_class(caller, start_runner):
    runner = PositionalAsk()
    assert runner.name == "positional-ask"
    await start_runner(runner)
    answer = await caller.agents.ask(agent="positional-ask", arguments={"y": 2})
    assert answer.json == {"caller": "alice", "args": {"y": 2}}


def test_llm_runners_take_tools_from_callers_by_default_as_meshagent_does(make_adapter):
    adapter = make_adapter()
    assert LLMTaskRunner(llm_adapter=adapter).supports_tools is True
    assert DynamicLLMTaskRunner(llm_adapter=adapter).supports_tools is True
    plain = LLMTaskRunner(llm_adapter=adapter, requires=None, toolkits=None, rules=None)
    assert plain.labels == ["llm"] and "tools" in plain.input_schema["properties"]
    named = LLMTaskRunner(llm_adapter=adapter, name="reporter", labels=None)
    assert named.title == "reporter" and named._llm_adapter is adapter
