"""Schemas and values from other participants cannot fetch, stall or crash: each attack run
against the schema functions and, where the room checks the schema, against a real room."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from taskroom.agents import DynamicLLMTaskRunner, OpenAIChatCompletionsAdapter, TaskRunner
from taskroom.agents.testing import ScriptedLLMServer
from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.toolkits import Toolkit, schemas, tool
from taskroom.toolkits.schemas import (
    FORMAT_CHECKER,
    REGISTRY,
    SafeValidator,
    check_schema,
    schema_validator,
    validation_error,
)
from taskroom.toolkits.toolkit import check_schema as check_schema_from_toolkit

ROOM = "schemas"
REFUSED = "remote and file references are not allowed"
BACKTRACKING = "^(a+)+$"
EVIL_WORD = "a" * 40 + "!"  # Python's re needs about 2**40 steps to refuse it


@pytest.fixture
def room_name() -> str:
    return ROOM


class Listener:
    """An HTTP server that records every request it gets (none should arrive)."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        return web.json_response({"nope": {"const": "TOPSECRET"}})


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    state = Listener()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield state
    await runner.cleanup()


@pytest.fixture
def secret_file(tmp_path) -> str:
    path = tmp_path / "secret.json"
    path.write_text(json.dumps({"nope": {"const": "TOPSECRET"}}))
    return path.as_uri()


def outside_refs(listener: Listener, secret_file: str) -> list[str]:
    return [
        "file:///etc/passwd#/nope",
        f"{secret_file}#/nope",
        f"{listener.url}/x#/nope",
        f"{listener.url}/x",
        "other.json#/nope",  # relative: would be fetched against the base URI
    ]


def refusal(schema: Any) -> str:
    with pytest.raises(RoomError) as info:
        check_schema(schema, what="S")
    assert info.value.code is ErrorCode.INVALID_REQUEST
    return info.value.message


def nested_list(depth: int) -> list[Any]:
    value: list[Any] = []
    inner = value
    for _ in range(depth - 1):
        inner.append([])
        inner = inner[0]
    return value


# --- 1. no schema fetches anything --------------------------------------------------------


async def test_outside_references_are_refused_and_never_fetched(listener, secret_file):
    def attempt() -> list[str]:
        messages = []
        for ref in outside_refs(listener, secret_file):
            for schema in (
                {"$ref": ref},
                {"properties": {"a": {"$ref": ref}}},
                {"$defs": {"unused": {"$ref": ref}}},  # refused even where nothing reaches it
                {"$id": f"{listener.url}/root.json", "$ref": "x.json"},
            ):
                messages.append(refusal(schema))
                with pytest.raises(RoomError):
                    schema_validator(schema)
        return messages

    # in a thread, so a fetch (were one attempted) would reach the listener on this loop
    messages = await asyncio.wait_for(asyncio.to_thread(attempt), 10)
    assert all(REFUSED in m for m in messages)
    assert not any("TOPSECRET" in m or "root:" in m for m in messages)
    assert listener.hits == []


async def test_validators_refuse_retrieval_even_unchecked(listener, secret_file):
    """The registry itself refuses: a validator built without check_schema fetches nothing."""

    def attempt() -> list[str | None]:
        return [
            validation_error(1, SafeValidator({"$ref": ref}, registry=REGISTRY))
            for ref in outside_refs(listener, secret_file)
        ]

    messages = await asyncio.wait_for(asyncio.to_thread(attempt), 10)
    assert all(m is not None and REFUSED in m for m in messages)
    assert listener.hits == []


def test_local_references_keep_working():
    tree = {
        "$defs": {"node": {"$anchor": "node", "type": "object", "properties": {}}},
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "children": {"type": "array", "items": {"$ref": "#"}},
            "best": {"$ref": "#/properties/name"},
            "anchored": {"$ref": "#node"},
        },
        "required": ["name"],
    }
    validator = schema_validator(tree)
    good = {"name": "a", "best": "x", "anchored": {}, "children": [{"name": "b", "children": []}]}
    assert validation_error(good, validator) is None
    assert "'name' is a required property" in validation_error(
        {"name": "a", "children": [{}]}, validator
    )
    embedded = {
        "$id": "https://example.com/root.json",
        "$defs": {"word": {"$id": "word.json", "type": "string"}},
        "$ref": "word.json",
    }
    assert validation_error(3, schema_validator(embedded)) == "3 is not of type 'string'"


def test_unresolvable_and_non_schema_references_are_refused():
    assert "cannot be resolved within the schema" in refusal({"$ref": "#/$defs/missing"})
    assert "points outside the schema's own subschemas" in refusal(
        {"examples": [{"$ref": "http://x/"}], "$ref": "#/examples/0"}
    )


async def test_room_refuses_outside_references_everywhere(join, listener, secret_file):
    """schemas.put, a toolkit's tool schemas and an agent's input schema, in a real room."""
    alice = await join("alice")
    bad = [{"$ref": ref} for ref in outside_refs(listener, secret_file)]
    for schema in bad:
        with pytest.raises(RoomError) as info:
            await alice.put_schema("leak", schema)
        assert info.value.code is ErrorCode.INVALID_REQUEST
        assert REFUSED in info.value.message and "TOPSECRET" not in info.value.message

        for agent, key in (
            (False, "input_schema"),
            (False, "output_schema"),
            (True, "input_schema"),
        ):
            spec = agent_kit("sneaky") if agent else plain_kit("sneaky")
            spec["tools"][0][key] = schema
            with pytest.raises(RoomError) as info:
                await alice.request("toolkits.register", spec)
            assert info.value.code is ErrorCode.INVALID_REQUEST
            assert REFUSED in info.value.message
    assert await alice.list_schemas() == {}
    assert await alice.list_toolkits(name="sneaky") == []
    assert listener.hits == []


async def test_dynamic_output_schema_with_outside_reference(join, listener):
    agent = await join("dynamic", "agent")
    caller = await join("alice")
    async with ScriptedLLMServer(auto=False) as llm:
        adapter = OpenAIChatCompletionsAdapter(
            model="scripted-model", base_url=llm.base_url, api_key="test", max_retries=0
        )
        runner = DynamicLLMTaskRunner(llm_adapter=adapter)
        await runner.start(agent)
        try:
            with pytest.raises(RoomError) as info:
                await caller.invoke_tool(
                    runner.name,
                    f"run_{runner.name}_task",
                    {"prompt": "x", "output_schema": {"$ref": f"{listener.url}/x#/nope"}},
                )
        finally:
            await runner.stop()
        assert info.value.code is ErrorCode.INVALID_REQUEST
        assert REFUSED in info.value.message
        assert [r for r in llm.requests if r.path.startswith("/v1/chat")] == []
    assert listener.hits == []


def plain_kit(name: str) -> dict[str, Any]:
    @tool
    async def echo(text: str) -> str:
        """Echo."""
        return text

    return Toolkit(name=name, tools=[echo]).spec().model_dump(mode="json")


class Echo(TaskRunner):
    async def ask(self, context: Any, arguments: dict[str, Any]) -> Any:
        return {"ok": True}


def agent_kit(name: str, input_schema: dict[str, Any] | None = None) -> dict[str, Any]:
    runner = Echo(name=name, input_schema=input_schema)
    return runner.make_toolkit().spec().model_dump(mode="json")


# --- 2. no regex can stall ----------------------------------------------------------------


@pytest.mark.parametrize(
    "schema, value",
    [
        ({"pattern": BACKTRACKING}, EVIL_WORD),
        ({"patternProperties": {BACKTRACKING: {"type": "integer"}}}, {EVIL_WORD: "x"}),
        (
            {"patternProperties": {BACKTRACKING: {}}, "additionalProperties": False},
            {EVIL_WORD: 1},
        ),
        (
            {"patternProperties": {BACKTRACKING: {}}, "unevaluatedProperties": False},
            {EVIL_WORD: 1},
        ),
        ({"propertyNames": {"pattern": BACKTRACKING}}, {EVIL_WORD: 1}),
        (  # a subschema declaring another dialect must not get the stock validator
            {
                "$defs": {
                    "w": {
                        "$schema": "http://json-schema.org/draft-07/schema#",
                        "pattern": BACKTRACKING,
                    }
                },
                "$ref": "#/$defs/w",
            },
            EVIL_WORD,
        ),
    ],
    ids=["pattern", "patternProperties", "additional", "unevaluated", "propertyNames", "dialect"],
)
def test_backtracking_regex_is_linear(schema, value):
    validator = schema_validator(schema)
    started = time.perf_counter()
    problem = validation_error(value, validator)
    assert time.perf_counter() - started < 0.5
    matching = json.loads(json.dumps(value).replace("!", ""))
    assert (problem is None) != (validation_error(matching, validator) is None)


def test_regex_semantics_and_refusals():
    assert (
        validation_error("2024-01-05", schema_validator({"pattern": r"^\d{4}-\d\d-\d\d$"})) is None
    )
    assert validation_error("bé", schema_validator({"pattern": r"^\p{L}+$"})) is None
    assert validation_error("x\ud800y", schema_validator({"pattern": "^x.y$"})) is None
    for pattern in ("(?=a)", "(?<!a)b", r"(a)\1", "("):
        message = refusal({"pattern": pattern})
        assert repr(pattern) in message and "RE2" in message
        assert "RE2" in refusal({"patternProperties": {pattern: {}}})
    regex_format = schema_validator({"format": "regex"})
    assert validation_error(BACKTRACKING, regex_format) is None
    assert "is not a regex this room evaluates" in validation_error("(?=a)", regex_format)


async def test_backtracking_pattern_in_agent_input_does_not_stall_the_room(join):
    agent = await join("matcher", "agent")
    alice = await join("alice")
    bob = await join("bob")
    runner = Echo(
        name="matcher",
        input_schema={"type": "object", "properties": {"word": {"pattern": BACKTRACKING}}},
    )
    await runner.start(agent)
    try:
        started = time.perf_counter()
        attack = asyncio.create_task(alice.tasks.start("matcher", {"word": EVIL_WORD}))
        participants = await asyncio.wait_for(bob.list_participants(), 5)
        with pytest.raises(RoomError) as info:
            await asyncio.wait_for(attack, 5)
        assert time.perf_counter() - started < 5
    finally:
        await runner.stop()
    assert participants
    assert info.value.code is ErrorCode.INVALID_REQUEST
    assert "does not match" in info.value.message


# --- 3. bounded schemas, bounded validation -----------------------------------------------


def test_schema_depth_values_and_bytes_are_bounded():
    chain: dict[str, Any] = {"type": "string"}
    for _ in range(40):
        chain = {"anyOf": [chain, {"type": "integer"}]}
    assert f"limit of {schemas.MAX_SCHEMA_DEPTH}" in refusal(chain)

    wide = {"properties": {f"p{i}": {"type": "string"} for i in range(schemas.MAX_SCHEMA_NODES)}}
    assert f"limit of {schemas.MAX_SCHEMA_NODES} values" in refusal(wide)

    big = {"description": "x" * schemas.MAX_SCHEMA_BYTES}
    assert f"limit of {schemas.MAX_SCHEMA_BYTES} bytes" in refusal(big)

    deep = {"const": nested_list(970)}  # no RecursionError: refused by the walk
    assert "nested deeper than the limit" in refusal(deep)


def exponential(levels: int) -> dict[str, Any]:
    """A few hundred bytes whose validation would branch 2**levels ways."""
    defs = {
        f"a{i}": {"anyOf": [{"$ref": f"#/$defs/a{i + 1}"}, {"$ref": f"#/$defs/a{i + 1}"}]}
        for i in range(levels)
    }
    defs[f"a{levels}"] = {"type": "string"}
    return {"$defs": defs, "$ref": "#/$defs/a0"}


def test_exponential_schema_stops_at_the_time_limit(monkeypatch):
    monkeypatch.setattr(schemas, "VALIDATION_TIME_LIMIT", 0.05)
    validator = schema_validator(exponential(40))
    started = time.perf_counter()
    problem = validation_error(1, validator)
    assert time.perf_counter() - started < 2
    assert "took longer than the limit of 50 ms" in problem
    assert validation_error("fine", validator) is None  # the first branch that fits answers


async def test_exponential_agent_input_is_refused_and_the_room_keeps_answering(join):
    agent = await join("brancher", "agent")
    alice = await join("alice")
    bob = await join("bob")
    runner = Echo(name="brancher", input_schema=exponential(40))
    await runner.start(agent)
    try:
        attacks = [asyncio.create_task(alice.tasks.start("brancher", {})) for _ in range(3)]
        started = time.perf_counter()
        await asyncio.wait_for(bob.list_participants(), 5)
        answered = time.perf_counter() - started
        results = await asyncio.wait_for(asyncio.gather(*attacks, return_exceptions=True), 10)
    finally:
        await runner.stop()
    assert answered < 5
    for result in results:
        assert isinstance(result, RoomError) and result.code is ErrorCode.INVALID_REQUEST
        assert "took longer than the limit" in result.message


def test_unique_items_is_linear(monkeypatch):
    # A CPU-time limit with room to spare for a linear check on a loaded machine, far
    # below what comparing every pair of 20,000 items (200M comparisons) would need.
    monkeypatch.setattr(schemas, "VALIDATION_TIME_LIMIT", 10.0)
    validator = schema_validator({"uniqueItems": True})
    items = [{"a": i, "b": [i, {"c": str(i)}]} for i in range(20_000)]
    assert validation_error(items, validator) is None
    assert "non-unique" in validation_error([{"a": [1]}, {"a": [1.0]}], validator)
    assert validation_error([1, True], validator) is None
    assert validation_error([0, False, None, {}, []], validator) is None


# --- 4. deep values are an error, not a crash ---------------------------------------------


def test_deeply_nested_value_is_a_clear_error():
    recursive = schema_validator({"type": "array", "items": {"$ref": "#"}})
    value = nested_list(970)
    assert "nested too deeply" in validation_error(value, recursive)
    # refused before validation whatever the schema, so the CPU limit is never what answers
    assert "nested too deeply" in validation_error(value, schema_validator({"const": [1]}))
    assert "was expected" in validation_error(nested_list(150), schema_validator({"const": [1]}))
    assert validation_error(nested_list(20), recursive) is None


# --- the validator cache ------------------------------------------------------------------


def test_validators_are_cached_by_canonical_json_and_bounded():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    first = schema_validator(schema)
    same = json.loads(json.dumps(schema, sort_keys=True))
    assert schema_validator(dict(reversed(list(same.items())))) is first

    edited = copy.deepcopy(schema)
    schema["properties"]["n"]["type"] = "string"  # the caller edits its dict afterwards
    assert validation_error({"n": 1}, first) is None
    assert schema_validator(edited) is first

    for i in range(schemas.VALIDATOR_CACHE_SIZE + 1):
        schema_validator({"const": i})
    assert len(schemas._validators) == schemas.VALIDATOR_CACHE_SIZE
    assert schema_validator(edited) is not first


def test_toolkit_module_keeps_its_names():
    assert check_schema_from_toolkit is check_schema
    assert FORMAT_CHECKER.conforms("a+", "regex")
