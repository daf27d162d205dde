"""Tools and toolkits without a room: schemas from type hints, validation, annotations."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ValidationError

from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.protocol.messages import ParticipantInfo, ToolkitSpec
from taskroom.toolkits import (
    FunctionTool,
    JsonResponse,
    TextResponse,
    Tool,
    ToolContext,
    Toolkit,
    check_schema,
    tool,
)

ALICE = ParticipantInfo(id="p_alice", name="alice", role="user")


def ctx(**kw: Any) -> ToolContext:
    return ToolContext(caller=ALICE, call_id="c_1", **kw)


class Weather(BaseModel):
    city: str
    celsius: float


@tool
async def add(a: int, context: ToolContext, b: int = 2) -> int:
    """Add two numbers.

    A longer explanation that is part of the summary.

    Args:
        a: The first number.
        b (int): The second number,
            added to the first.
        context: Never shown to callers.

    Returns:
        The sum.
    """
    return a + b + (100 if context.caller.name != "alice" else 0)


@tool(name="weather.get", title="Weather", read_only=True)
def weather(city: str, unit: Literal["C", "F"] = "C", tags: list[str] | None = None) -> Weather:
    """Look up the weather."""
    return Weather(city=city, celsius=21.5)


@tool(destructive=True, annotations={"idempotent": True, "audience": "ops"})
async def wipe(path: str):
    """Delete a path."""
    return {"deleted": path}


def test_input_schema_from_hints_and_docstring():
    assert isinstance(add, FunctionTool)
    assert add.name == "add"
    assert add.description == "Add two numbers. A longer explanation that is part of the summary."
    schema = add.input_schema
    assert schema["type"] == "object"
    assert schema["properties"] == {
        "a": {"type": "integer", "description": "The first number."},
        "b": {
            "type": "integer",
            "default": 2,
            "description": "The second number, added to the first.",
        },
    }
    assert schema["required"] == ["a"]
    assert schema["additionalProperties"] is False
    assert "context" not in schema["properties"]
    assert "title" not in schema


def test_output_schema_from_return_annotation():
    assert add.output_schema == {"type": "integer"}
    out = weather.output_schema
    assert out is not None
    assert out["properties"]["city"] == {"title": "City", "type": "string"}
    assert out["properties"]["celsius"]["type"] == "number"
    assert sorted(out["required"]) == ["celsius", "city"]
    assert wipe.output_schema is None  # no return annotation, no output schema

    @tool
    def nothing() -> None:
        """Return nothing."""

    assert nothing.output_schema is None
    assert nothing.input_schema["properties"] == {}


def test_input_schema_for_richer_types():
    props = weather.input_schema["properties"]
    assert props["unit"]["enum"] == ["C", "F"]
    assert props["unit"]["default"] == "C"
    tags = props["tags"]
    assert {"type": "array", "items": {"type": "string"}} in tags["anyOf"]
    assert weather.input_schema["required"] == ["city"]


def test_annotations_and_title():
    assert weather.name == "weather.get"
    assert weather.spec.title == "Weather"
    assert weather.annotations.title == "Weather"
    assert weather.annotations.read_only is True
    assert weather.annotations.destructive is False
    assert wipe.annotations.destructive is True
    assert wipe.annotations.read_only is False
    assert wipe.annotations.idempotent is True
    assert wipe.annotations.model_dump()["audience"] == "ops"
    assert add.annotations.read_only is False and add.annotations.title is None
    # the annotations travel in the toolkit spec the room sees
    spec = Toolkit(name="t", tools=[weather, wipe]).spec()
    dumped = {t.name: t.annotations.model_dump() for t in spec.tools}
    assert dumped["weather.get"]["read_only"] is True
    assert dumped["wipe"]["destructive"] is True


def test_tool_rejects_var_args_and_bad_names():
    with pytest.raises(TypeError, match=r"\*args or \*\*kwargs"):

        @tool
        def spread(*items: int) -> int:
            return sum(items)

    with pytest.raises(ValidationError):
        Tool(name="has spaces")


async def test_toolkit_validates_input_runs_and_validates_output():
    kit = Toolkit(name="maths", tools=[add, weather, wipe], description="Numbers.")
    assert await kit.execute(ctx(), "add", {"a": 1}) == 3
    assert await kit.execute(ctx(), "add", {"a": 1, "b": 5}) == 6
    bob = ToolContext(caller=ParticipantInfo(id="p_b", name="bob", role="user"))
    assert await kit.execute(bob, "add", {"a": 1}) == 103  # the context reaches the tool
    # a sync function returning a model is dumped to JSON data and checked
    assert await kit.execute(ctx(), "weather.get", {"city": "Oslo"}) == {
        "city": "Oslo",
        "celsius": 21.5,
    }

    cases = [
        ({"a": "one"}, "'one' is not of type 'integer' (at /a)"),
        ({}, "'a' is a required property"),
        (
            {"a": 1, "context": "sneaky"},
            "Additional properties are not allowed ('context' was unexpected)",
        ),
    ]
    for arguments, problem in cases:
        with pytest.raises(RoomError) as err:
            await kit.execute(ctx(), "add", arguments)
        assert err.value.code is ErrorCode.INVALID_REQUEST
        assert err.value.message == f"invalid arguments for maths.add: {problem}"

    with pytest.raises(RoomError) as err:
        await kit.execute(ctx(), "weather.get", {"city": "Oslo", "unit": "K"})
    assert "'K' is not one of ['C', 'F']" in err.value.message

    with pytest.raises(RoomError) as err:
        await kit.execute(ctx(), "divide", {})
    assert err.value.code is ErrorCode.NOT_FOUND
    assert err.value.details["available"] == ["add", "weather.get", "wipe"]


async def test_toolkit_refuses_output_that_breaks_the_schema():
    ran: list[dict[str, Any]] = []

    @tool
    async def count(text: str) -> int:
        """Claims an int, returns a string."""
        ran.append({"text": text})
        return text  # type: ignore[return-value]

    kit = Toolkit(name="k", tools=[count])
    with pytest.raises(RoomError) as err:
        await kit.execute(ctx(), "count", {"text": "abc"})
    assert ran == [{"text": "abc"}]
    assert err.value.code is ErrorCode.FAILED
    assert (
        err.value.message
        == "k.count returned output that breaks its schema: 'abc' is not of type 'integer'"
    )


async def test_hand_written_tool_subclass():
    class Shout(Tool):
        def __init__(self) -> None:
            super().__init__(
                name="shout",
                description="Upper-case the text.",
                input_schema={
                    "type": "object",
                    "properties": {"text": {"type": "string", "maxLength": 5}},
                    "required": ["text"],
                },
                output_schema={"type": "string"},
                annotations={"read_only": True},
            )

        async def execute(self, context: ToolContext, arguments: dict[str, Any]) -> Any:
            return arguments["text"].upper() + "!" * (context.on_behalf_of is not None)

    kit = Toolkit(name="voice", tools=[Shout()])
    assert await kit.execute(ctx(), "shout", {"text": "hey"}) == "HEY"
    assert await kit.execute(ctx(on_behalf_of=ALICE), "shout", {"text": "hey"}) == "HEY!"
    with pytest.raises(RoomError, match="is too long"):
        await kit.execute(ctx(), "shout", {"text": "far too long"})
    assert Shout().annotations.read_only is True
    assert Shout().input_schema["required"] == ["text"]

    # a bare Tool has a permissive object input schema and must implement execute
    bare = Tool(name="bare")
    assert bare.input_schema == {"type": "object", "additionalProperties": True}
    with pytest.raises(NotImplementedError):
        await bare.execute(ctx(), {})


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"input_schema": {"type": "not-a-type"}}, "input schema of tool 'bad' is not a valid"),
        ({"input_schema": {"properties": 5}}, "input schema of tool 'bad' is not a valid"),
        ({"output_schema": {"minimum": "zero"}}, "output schema of tool 'bad' is not a valid"),
    ],
)
def test_invalid_schema_is_refused_at_toolkit_construction(kwargs, words):
    bad = Tool(name="bad", **kwargs)
    with pytest.raises(RoomError) as err:
        Toolkit(name="k", tools=[bad])
    assert err.value.code is ErrorCode.INVALID_REQUEST
    assert words in err.value.message
    kit = Toolkit(name="k", tools=[])
    with pytest.raises(RoomError):
        kit.add_tool(bad)
    assert kit.tools == {}


def test_check_schema():
    check_schema({"type": "object"})
    check_schema(True)
    with pytest.raises(RoomError, match="must be a JSON object"):
        check_schema(["type", "object"], what="thing")
    with pytest.raises(RoomError, match="thing is not a valid JSON Schema"):
        check_schema({"type": 12}, what="thing")


def test_toolkit_spec_and_context():
    kit = Toolkit(
        name="private",
        title="Private",
        description="Only for bob.",
        tools=[add],
        public=False,
        allowed_callers=["bob"],
        metadata={"kind": "agent"},
    )
    spec = kit.spec()
    assert isinstance(spec, ToolkitSpec)
    assert (spec.name, spec.title, spec.public, spec.allowed_callers) == (
        "private",
        "Private",
        False,
        ["bob"],
    )
    assert spec.metadata == {"kind": "agent"}
    assert [t.name for t in spec.tools] == ["add"]
    # the spec is what goes on the wire; it survives a JSON round trip
    assert ToolkitSpec.model_validate(spec.model_dump(mode="json")) == spec

    boss = ParticipantInfo(id="p_boss", name="boss", role="user")
    assert ctx().principal == ALICE
    assert ctx(on_behalf_of=boss).principal == boss


async def test_context_progress_goes_to_its_sink():
    sent: list[dict[str, Any]] = []

    async def sink(event: dict[str, Any]) -> None:
        sent.append(event)

    @tool
    async def work(context: ToolContext) -> str:
        """Report progress."""
        await context.progress({"pct": 50})
        return "done"

    kit = Toolkit(name="w", tools=[work])
    assert await kit.execute(ToolContext(caller=ALICE, _progress=sink), "work", {}) == "done"
    assert sent == [{"pct": 50}]
    # without a sink, progress is dropped quietly
    assert await kit.execute(ctx(), "work", {}) == "done"


# --- MeshAgent-style tools ------------------------------------------------------------------


class Forecast(Tool):
    """Written as for MeshAgent's SDK: keyword constructor, ``execute(context, **kwargs)``."""

    def __init__(self, reply: Any = None) -> None:
        super().__init__(
            name="forecast",
            title="Forecast",
            description=None,
            input_schema={"type": "object", "properties": {"city": {"type": "string"}}},
            output_schema=None,
            rules=["Give the city in English."],
        )
        self.reply = reply

    async def execute(self, context: ToolContext, **kwargs: Any) -> Any:
        if self.reply is not None:
            return self.reply
        return JsonResponse(json={"city": kwargs["city"], "sky": "clear"})


class Named(Tool):
    def __init__(self) -> None:
        super().__init__(name="named", input_schema={"type": "object"})

    async def execute(self, context: ToolContext, city: str, days: int = 1) -> str:
        return f"{city}:{days}"


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (None, {"city": "Oslo", "sky": "clear"}),
        (TextResponse(text="clear skies"), "clear skies"),
        ({"sky": "grey"}, {"sky": "grey"}),
        ("plain text", "plain text"),
    ],
    ids=["JsonResponse", "TextResponse", "dict", "str"],
)
async def test_meshagent_style_tool_returns(reply: Any, expected: Any) -> None:
    kit = Toolkit(name="weather", tools=[Forecast(reply)])
    assert await kit.execute(ctx(), "forecast", {"city": "Oslo"}) == expected


async def test_execute_takes_arguments_as_keywords_unless_it_takes_one_dict() -> None:
    assert Forecast.keyword_arguments and Named.keyword_arguments
    assert not FunctionTool.keyword_arguments
    kit = Toolkit(name="k", tools=[Named()])
    assert await kit.execute(ctx(), "named", {"city": "Rome", "days": 3}) == "Rome:3"
    assert Forecast().description == "" and Forecast().rules == ["Give the city in English."]


async def test_a_tool_that_raises_is_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kit = Toolkit(name="k", tools=[Named()])
    with caplog.at_level("ERROR", logger="taskroom.toolkits.toolkit"), pytest.raises(TypeError):
        await kit.execute(ctx(), "named", {"town": "Rome"})
    [record] = caplog.records
    assert record.getMessage() == "tool k.named failed" and record.exc_info is not None
    # A RoomError is the tool's answer, not a bug: raised on, not logged.
    caplog.clear()
    with pytest.raises(RoomError):
        await kit.execute(ctx(), "nope", {})
    assert caplog.records == []


def test_toolkit_rules_and_defs() -> None:
    kit = Toolkit(name="k", tools=[Forecast()], rules=["Be brief."], description=None)
    assert kit.all_rules() == ["Be brief.", "Give the city in English."]
    assert kit.description == ""
    with_defs = Tool(name="t", input_schema={"type": "object"}, defs={"D": {"type": "string"}})
    assert with_defs.input_schema["$defs"] == {"D": {"type": "string"}}


async def test_meshagent_emit_and_tool_rules() -> None:
    sent: list[dict[str, Any]] = []

    async def sink(event: dict[str, Any]) -> None:
        await asyncio.sleep(0)  # a real sink awaits a socket
        sent.append(event)

    @tool(rules=["Count from one."])
    async def count(context: ToolContext, upto: int) -> int:
        """Count, reporting each step."""
        for n in range(1, upto + 1):
            context.emit({"n": n})
        return upto

    kit = Toolkit(name="c", tools=[count])
    assert kit.all_rules() == ["Count from one."]
    assert await kit.execute(ToolContext(caller=ALICE, _progress=sink), "count", {"upto": 3}) == 3
    assert sent == [{"n": 1}, {"n": 2}, {"n": 3}]  # all sent, in order, before the answer
