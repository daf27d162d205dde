"""MeshAgent's TaskRunner guide, followed as written, on taskroom.

The guide has its readers build LLMTaskRunner themselves on TaskRunner: an ``async
init_chat_context`` and an ``ask`` that calls ``self._llm_adapter.next(context=, room=,
toolkits=, tool_adapter=, output_schema=)``. That class runs here unchanged. So do Tool
subclasses with ``execute(self, context, **kwargs)``; one that raises is an error the
model sees, a ``tool.error`` event on the task, and a traceback in its host's log.

A full room server, the scripted LLM over HTTP with the real ``openai`` client; the
runner, the toolkit host and the caller are separate RoomClients.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from jsonschema import validate

from taskroom.agents import AgentCallContext, OpenAIResponsesAdapter, RequiredToolkit, TaskRunner
from taskroom.agents.testing import ScriptedLLMServer, json_output, text, tool_calls
from taskroom.host.client.room_client import RoomClient
from taskroom.host.protocol import RoomError
from taskroom.toolkits import JsonResponse, RemoteToolkit, Tool, ToolContext, Toolkit

from .conftest import ClientPool

ROOM = "guide"


@pytest.fixture
def room_name() -> str:
    return ROOM


@pytest.fixture
async def llm() -> AsyncIterator[ScriptedLLMServer]:
    async with ScriptedLLMServer(auto=False) as srv:
        yield srv


@pytest.fixture
async def adapter(llm: ScriptedLLMServer) -> AsyncIterator[OpenAIResponsesAdapter]:
    made = OpenAIResponsesAdapter(model="scripted", base_url=llm.base_url, api_key="test")
    yield made
    await made.aclose()


# --- the guide's classes, as a reader writes them ----------------------------------------


class LLMTaskRunner(TaskRunner):
    def __init__(
        self,
        *,
        name: str,
        llm_adapter,
        title=None,
        description=None,
        tool_adapter=None,
        toolkits=None,
        requires=None,
        supports_tools=True,
        input_prompt=True,
        input_schema=None,
        output_schema=None,
        rules=None,
        labels=None,
    ):
        if input_schema is None:
            if input_prompt:
                input_schema = {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["prompt"],
                    "properties": {"prompt": {"type": "string"}},
                }
            else:
                input_schema = {"type": "object"}
        if output_schema is None:
            output_schema = {
                "type": "object",
                "additionalProperties": False,
                "required": ["result"],
                "properties": {"result": {"type": "string"}},
            }
        super().__init__(
            name=name,
            title=title,
            description=description,
            input_schema=input_schema,
            output_schema=output_schema,
            requires=requires,
            supports_tools=supports_tools,
            labels=labels,
            toolkits=toolkits,
        )
        self._extra_rules = rules or []
        self._llm_adapter = llm_adapter
        self._tool_adapter = tool_adapter

    async def init_chat_context(self):
        chat = self._llm_adapter.create_chat_context()
        chat.append_rules(self._extra_rules)
        return chat

    async def ask(self, *, context: AgentCallContext, arguments: dict, attachment=None):
        prompt = arguments.get("prompt")
        if prompt is None:
            raise ValueError("`prompt` is required")
        context.chat.append_user_message(prompt)
        combined_toolkits = [*self.toolkits, *context.toolkits]
        response = await self._llm_adapter.next(
            context=context.chat,
            room=context.room,
            toolkits=combined_toolkits,
            tool_adapter=self._tool_adapter,
            output_schema=self.output_schema,
        )
        validate(response, self.output_schema)
        return response


class Lookup(Tool):
    def __init__(self):
        super().__init__(
            name="lookup",
            title="Look a word up",
            description="The meaning of a word",
            input_schema={
                "type": "object",
                "required": ["word"],
                "properties": {"word": {"type": "string"}},
            },
        )

    async def execute(self, context: ToolContext, **kwargs):
        return JsonResponse(json={"word": kwargs["word"], "meaning": "a small furry animal"})


class Divide(Tool):
    """Breaks on purpose: a wrong argument name is a TypeError, zero a ZeroDivisionError."""

    def __init__(self):
        super().__init__(
            name="divide",
            title="Divide",
            description="a / b",
            input_schema={"type": "object", "properties": {"a": {}, "b": {}}},
        )

    async def execute(self, context: ToolContext, a, b):
        return {"quotient": a / b}


# --- helpers --------------------------------------------------------------------------------


async def task_events(caller: RoomClient, agent: str) -> list[dict[str, Any]]:
    [task] = (await caller.tasks.list(agent=agent))["tasks"]
    full = await caller.tasks.get(task["id"])
    return [e["data"] for e in full["events"]]


def sent_outputs(llm: ScriptedLLMServer) -> list[str]:
    return [
        item["output"]
        for r in llm.requests
        if r.path == "/v1/responses"
        for item in r.body["input"]
        if item.get("type") == "function_call_output"
    ]


# --- tests ----------------------------------------------------------------------------------


async def test_the_guides_llm_task_runner_runs(
    join: ClientPool, llm: ScriptedLLMServer, adapter: OpenAIResponsesAdapter
) -> None:
    agent, caller = await join("agent", "agent"), await join("alice")
    runner = LLMTaskRunner(
        name="guide-runner",
        llm_adapter=adapter,
        toolkits=[Toolkit(name="dictionary", tools=[Lookup()])],
        rules=["Answer in one short sentence."],
    )
    await runner.start(room=agent)
    llm.script(
        tool_calls([("lookup", {"word": "vole"})]),
        json_output({"result": "A vole is a small furry animal."}),
    )

    answer = await caller.agents.ask(agent="guide-runner", arguments={"prompt": "What is a vole?"})

    assert answer.json == {"result": "A vole is a small furry animal."}
    first = llm.requests[0].body
    assert "Answer in one short sentence." in first["instructions"]
    assert [t["name"] for t in first["tools"]] == ["lookup"]  # once, though passed twice
    assert "a small furry animal" in sent_outputs(llm)[0]
    # The guide's ask passes no tool context, yet its tool calls are on the task's record.
    kinds = [e["kind"] for e in await task_events(caller, "guide-runner")]
    assert kinds == ["llm.turn", "tool.started", "tool.result", "llm.turn", "llm.answer"]
    await runner.stop()


async def test_the_guides_runner_refuses_what_breaks_its_schema(
    join: ClientPool, llm: ScriptedLLMServer, adapter: OpenAIResponsesAdapter
) -> None:
    agent, caller = await join("agent", "agent"), await join("alice")
    runner = LLMTaskRunner(name="guide-runner", llm_adapter=adapter)
    await runner.start(room=agent)
    llm.script(json_output({"result": 42}))

    with pytest.raises(RoomError, match="42 is not of type 'string'"):
        await caller.agents.ask(agent="guide-runner", arguments={"prompt": "Hi"})
    [task] = (await caller.tasks.list(agent="guide-runner"))["tasks"]
    assert task["status"] == "failed"
    await runner.stop()


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"x": 1, "y": 2}, "TypeError"),
        ({"a": 1, "b": 0}, "ZeroDivisionError"),
    ],
    ids=["type-error", "raises"],
)
async def test_a_failing_tool_is_a_tool_error_on_the_task_and_in_its_hosts_log(
    join: ClientPool,
    llm: ScriptedLLMServer,
    adapter: OpenAIResponsesAdapter,
    caplog: pytest.LogCaptureFixture,
    arguments: dict[str, Any],
    error: str,
) -> None:
    host, agent, caller = await join("maths", "agent"), await join("agent", "agent"), await join()
    toolkit = RemoteToolkit(name="maths", title="Maths", tools=[Divide()])
    await toolkit.start(room=host)
    runner = LLMTaskRunner(
        name="calculator", llm_adapter=adapter, requires=[RequiredToolkit(name="maths")]
    )
    await runner.start(room=agent)
    llm.script(
        tool_calls([("divide", arguments)]),
        json_output({"result": "I could not divide."}),
    )

    with caplog.at_level(logging.ERROR, logger="taskroom.toolkits.toolkit"):
        answer = await caller.agents.ask(agent="calculator", arguments={"prompt": "Divide."})

    assert answer.json == {"result": "I could not divide."}
    [output] = sent_outputs(llm)
    assert output.startswith("error:") and error in output  # the model was told
    events = await task_events(caller, "calculator")
    [failed] = [e for e in events if e["kind"] == "tool.error"]
    assert failed["toolkit"] == "maths" and failed["tool"] == "divide"
    assert error in failed["error"]
    [record] = [r for r in caplog.records if r.name == "taskroom.toolkits.toolkit"]
    assert record.getMessage() == "tool maths.divide failed"
    assert record.exc_info is not None and record.exc_info[0].__name__ == error
    await runner.stop()
    await toolkit.stop()
    assert "maths" not in {i.toolkit.name for i in await caller.list_toolkits()}


async def test_a_current_sdk_runner_is_named_after_its_identity(
    join: ClientPool, full_room, llm: ScriptedLLMServer, adapter: OpenAIResponsesAdapter
) -> None:
    """The current SDK names a runner after the identity its service path gives it, and
    its invoke scripts call ``run_<identity>_task`` with ``model: None``."""
    from taskroom.agents import LLMTaskRunner as SdkLLMTaskRunner
    from taskroom.host import ServiceHost

    from .conftest import SECRET

    service = ServiceHost(webhook_secret=SECRET)

    @service.path(path="/agent", identity="my-runner")
    class MyRunner(SdkLLMTaskRunner):
        def __init__(self):
            super().__init__(
                llm_adapter=adapter,
                title="My runner",
                description="Answers briefly",
                rules=["Be brief."],
                annotations=["meshagent.agent.type=TaskRunner"],
            )

    async with service:
        admin = await join("operator", "admin")
        await admin.request("services.register", {"name": "mine", "url": service.base_url})
        joined = await admin.agents.call(service="mine", agent="my-runner")
        assert joined["identity"] == "my-runner"
        llm.script(json_output({"result": "Brief."}))

        answer = await admin.agents.invoke_tool(
            toolkit="my-runner", tool="run_my-runner_task", input={"prompt": "Hi", "model": None}
        )

        assert answer.json == {"result": "Brief."}
        assert "Be brief." in llm.requests[0].body["instructions"]
        [described] = [a for a in await admin.agents.list_agents() if a.name == "my-runner"]
        assert described.title == "My runner"


class SessionRunner(TaskRunner):
    """A runner written on the current SDK's adapter API: a session and create_response."""

    def __init__(self, llm_adapter):
        super().__init__(name="session-runner", input_schema=None, output_schema=None)
        self._llm_adapter = llm_adapter
        self.seen: list[str] = []

    async def init_chat_context(self):
        return self._llm_adapter.create_session()

    async def ask(self, *, context: AgentCallContext, arguments: dict, attachment=None):
        context.session.append_user_message(arguments["prompt"])
        return await self._llm_adapter.create_response(
            context=context.session,
            caller=context.caller,
            toolkits=[Toolkit(name="dictionary", tools=[Lookup()])],
            output_schema=None,
            event_handler=lambda event: self.seen.append(event["kind"]),
        )


async def test_a_runner_on_the_current_sdks_create_response(
    join: ClientPool, llm: ScriptedLLMServer, adapter: OpenAIResponsesAdapter
) -> None:
    agent, caller = await join("agent", "agent"), await join("alice")
    runner = SessionRunner(adapter)
    await runner.start(room=agent)
    llm.script(tool_calls([("lookup", {"word": "vole"})]), text("A small furry animal."))

    answer = await caller.agents.ask(agent="session-runner", arguments={"prompt": "Vole?"})

    assert answer.text == "A small furry animal."
    expected = ["llm.turn", "tool.started", "tool.result", "llm.turn", "llm.answer"]
    assert runner.seen == expected
    assert [e["kind"] for e in await task_events(caller, "session-runner")] == expected
    await runner.stop()
