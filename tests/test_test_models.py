"""TestModel and FunctionModel drive real task runners in a real room, with no HTTP to an LLM.

The runners are hosted by one RoomClient, the tools by another, and tasks are started by
a third through the room's task API, exactly as with the OpenAI adapters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import jsonschema
import pytest

from taskroom.agents import DynamicLLMTaskRunner, LLMError, LLMTaskRunner, TaskRunner
from taskroom.agents.adapter import Turn
from taskroom.agents.chat_context import ChatContext, Message, ToolResultItem
from taskroom.agents.testing import (
    FunctionModel,
    TestModel,
    TurnInfo,
    json_output,
    text,
    tool_calls,
)
from taskroom.host.client.room_client import RoomClient
from taskroom.toolkits import RequiredToolkit, Toolkit, tool

from .conftest import ClientPool

RECIPE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 3},
        "steps": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "servings": {"type": "integer", "minimum": 2, "maximum": 8},
        "difficulty": {"type": "string", "enum": ["easy", "hard"]},
    },
    "required": ["title", "steps", "servings", "difficulty"],
    "additionalProperties": False,
}


class Kitchen:
    """A toolkit host in the room that records every call it serves."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

        @tool
        def weigh(item: str, grams: int) -> str:
            """Weigh an ingredient."""
            self.calls.append(("weigh", {"item": item, "grams": grams}))
            return f"{item}: {grams} g"

        @tool
        def taste(dish: str) -> dict[str, Any]:
            """Taste a dish."""
            self.calls.append(("taste", {"dish": dish}))
            return {"dish": dish, "salty": False}

        self.toolkit = Toolkit(name="kitchen", tools=[weigh, taste])


@pytest.fixture
async def kitchen(join: ClientPool) -> Kitchen:
    kitchen = Kitchen()
    host = await join("kitchen-host", "tool")
    await host.host_toolkit(kitchen.toolkit)
    return kitchen


@pytest.fixture
async def caller(join: ClientPool) -> RoomClient:
    return await join("alice", "user")


@pytest.fixture
async def host_runner(join: ClientPool) -> AsyncIterator[Callable[[TaskRunner], Any]]:
    runners: list[TaskRunner] = []

    async def host(runner: TaskRunner) -> TaskRunner:
        await runner.start(await join(runner.name, "agent"))
        runners.append(runner)
        return runner

    yield host
    for runner in runners:
        await runner.stop()


async def run_task(caller: RoomClient, agent: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Start a task through the room's task API and return its finished record."""
    started = await caller.tasks.start(agent, arguments)
    [task_id] = started["task_ids"]
    waited = await caller.tasks.wait(task_id, timeout=10)
    [task] = waited["tasks"]
    assert task["status"] == "completed", task["error"]
    return await caller.tasks.get(task_id)


def tool_events(record: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in record["events"] if e["data"].get("kind") == kind]


# --------------------------------------------------------------------------- TestModel


async def test_test_model_calls_each_tool_then_answers_the_output_schema(
    caller, kitchen, host_runner
):
    runner = LLMTaskRunner(
        llm_adapter=TestModel(),
        name="chef",
        output_schema=RECIPE,
        requires=[RequiredToolkit("kitchen", timeout=2)],
    )
    await host_runner(runner)

    record = await run_task(caller, "chef", {"prompt": "Bake bread"})

    jsonschema.validate(record["result"], RECIPE)
    assert sorted(name for name, _ in kitchen.calls) == ["taste", "weigh"]
    [weighed] = [args for name, args in kitchen.calls if name == "weigh"]
    assert isinstance(weighed["item"], str) and isinstance(weighed["grams"], int)
    assert {e["tool"] for e in tool_events(record, "tool.result") if e["ok"]} == {"weigh", "taste"}
    assert record["usage"]["requests"] == 2  # one turn of tool calls, one answer


async def test_test_model_answers_a_dynamic_runner_with_the_callers_schema(
    caller, kitchen, host_runner
):
    runner = DynamicLLMTaskRunner(llm_adapter=TestModel(), name="planner", supports_tools=True)
    await host_runner(runner)

    record = await run_task(
        caller,
        "planner",
        {"prompt": "Plan dinner", "output_schema": RECIPE, "tools": ["kitchen"]},
    )

    jsonschema.validate(record["result"], RECIPE)
    assert sorted(name for name, _ in kitchen.calls) == ["taste", "weigh"]


async def test_test_model_call_tools_limits_what_it_calls(caller, kitchen, host_runner):
    runner = LLMTaskRunner(
        llm_adapter=TestModel(call_tools=["taste"]),
        name="taster",
        requires=[RequiredToolkit("kitchen", timeout=2)],
    )
    await host_runner(runner)

    record = await run_task(caller, "taster", {"prompt": "Is it salty?"})

    assert [name for name, _ in kitchen.calls] == ["taste"]
    assert record["result"] == {"result": "Scripted answer to: Is it salty?"}


async def test_test_model_reports_a_schema_it_cannot_sample():
    model = TestModel()
    impossible = {"type": "object", "properties": {"x": False}, "required": ["x"]}
    with pytest.raises(LLMError, match="cannot sample"):
        await model.next(context=ChatContext(), output_schema=impossible)


# --------------------------------------------------------------------------- FunctionModel


async def test_function_model_reacts_to_tool_results(caller, kitchen, host_runner):
    seen: list[TurnInfo] = []

    def chef(context: ChatContext, info: TurnInfo) -> Any:
        seen.append(info)
        results = [i.output for i in context.items if isinstance(i, ToolResultItem)]
        if not results:
            return tool_calls([("weigh", {"item": "flour", "grams": 500})])
        return json_output(
            {"title": results[0], "steps": ["mix", "bake"], "servings": 4, "difficulty": "easy"}
        )

    runner = LLMTaskRunner(
        llm_adapter=FunctionModel(chef),
        name="chef",
        output_schema=RECIPE,
        requires=[RequiredToolkit("kitchen", timeout=2)],
    )
    await host_runner(runner)

    record = await run_task(caller, "chef", {"prompt": "Bake bread"})

    assert kitchen.calls == [("weigh", {"item": "flour", "grams": 500})]
    assert record["result"]["title"] == "flour: 500 g"
    assert len(seen) == 2
    assert set(seen[0].function_names) == {"weigh", "taste"}
    assert seen[0].output_schema == RECIPE
    assert seen[0].function("weigh").toolkit.name == "kitchen"


async def test_function_model_output_is_repaired_by_the_dynamic_runner(
    caller, kitchen, host_runner
):
    answers = iter(
        [
            text("{not json"),
            json_output({"title": "Tea", "steps": ["boil"], "servings": 1, "difficulty": "easy"}),
            json_output(
                {"title": "Tea", "steps": ["boil", "steep"], "servings": 2, "difficulty": "easy"}
            ),
        ]
    )
    prompts: list[str] = []

    async def brewer(context: ChatContext, info: TurnInfo) -> Any:
        last = context.items[-1]
        assert isinstance(last, Message) and last.role == "user"
        prompts.append(last.content)
        return next(answers)

    runner = DynamicLLMTaskRunner(llm_adapter=FunctionModel(brewer), name="brewer")
    await host_runner(runner)

    record = await run_task(caller, "brewer", {"prompt": "Brew tea", "output_schema": RECIPE})

    assert record["result"]["steps"] == ["boil", "steep"]
    assert prompts[0] == "Brew tea"
    assert "not valid JSON" in prompts[1]
    assert "breaks the output schema" in prompts[2]
    assert [e["attempt"] for e in tool_events(record, "output.invalid")] == [1, 2]
    assert kitchen.calls == []


async def test_function_model_may_return_a_turn_or_plain_text():
    replies = iter([Turn(text="first"), "second"])
    model = FunctionModel(lambda context, info: next(replies))

    assert await model.next(context=ChatContext()) == "first"
    assert await model.next(context=ChatContext()) == "second"


async def test_function_model_rejects_a_reply_it_cannot_play():
    model = FunctionModel(lambda context, info: 42)
    with pytest.raises(TypeError, match="got int"):
        await model.next(context=ChatContext())
