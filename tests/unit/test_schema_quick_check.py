"""The quick schema check says yes only where jsonschema does, and covers tool schemas."""

from __future__ import annotations

import itertools
from typing import Literal

import pytest

from taskroom.toolkits import schemas, tool
from taskroom.toolkits.schema_fast_path import BUDGET, compile_quick_check
from taskroom.toolkits.schemas import schema_validator, validation_error

SCHEMAS = [
    True,
    {},
    {"type": "string"},
    {"type": "string", "minLength": 2, "maxLength": 3},
    {"type": "integer", "minimum": 0, "exclusiveMaximum": 10},
    {"type": "number", "exclusiveMinimum": 0, "maximum": 1.5},
    {"type": ["string", "null"]},
    {"type": "boolean"},
    {"type": "string", "enum": ["a", "b"]},
    {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
    {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 2},
    {"type": "array"},
    {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
        "required": ["a"],
        "additionalProperties": False,
    },
    {"type": "object", "properties": {"a": {"type": "string"}}},
    {"type": "object", "additionalProperties": {"type": "integer"}},
    {
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"type": "object"}}},
        "required": ["items"],
    },
]

VALUES = [
    None,
    True,
    False,
    0,
    1,
    -1,
    10,
    1.0,
    0.5,
    2.5,
    float("nan"),
    "",
    "a",
    "ab",
    "abcd",
    "c",
    [],
    [1],
    [1, 2],
    [1, 2, 3],
    [True],
    [1.0],
    ["a"],
    [[1]],
    {},
    {"a": "x"},
    {"a": "x", "b": 2},
    {"a": "x", "b": True},
    {"a": "x", "b": 2.0},
    {"a": 1},
    {"b": 2},
    {"a": "x", "c": 3},
    {"a": "x", "c": [1]},
    {"a": "x", "c": {"d": 1}},
    {"items": []},
    {"items": [{}, {"k": 1}]},
    {"items": [{"k": [1]}]},
    {"items": [1]},
    ("a", "b"),
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=range(len(SCHEMAS)))
def test_quick_yes_only_where_jsonschema_says_valid(schema):
    quick = compile_quick_check(schema)
    assert quick is not None, "every schema here is one the quick check covers"
    validator = schema_validator(schema)
    for value in VALUES:
        full = schemas._errors(validator, value)
        if quick(value):
            assert full is None, (schema, value, full.message)
    # and it does say yes to something, or it would be useless
    assert any(quick(v) for v in VALUES)


@pytest.mark.parametrize(
    "schema",
    [
        False,
        {"type": "string", "format": "email"},
        {"type": "string", "pattern": "^a"},
        {"const": 1},
        {"type": "object", "properties": {"a": {"$ref": "#/$defs/x"}}, "$defs": {"x": {}}},
        {"oneOf": [{"type": "string"}]},
        {"anyOf": [{"type": "object"}, {"type": "object", "required": ["a"]}]},
        {"type": "integer", "multipleOf": 2},
        {"type": "string", "enum": ["a", 1]},
        {"minLength": 1},
        {"type": "array", "items": [{"type": "string"}]},
    ],
)
def test_other_keywords_get_no_quick_check(schema):
    assert compile_quick_check(schema) is None


def test_values_past_the_budget_go_to_the_full_validator():
    quick = compile_quick_check({"type": "array", "items": {"type": "integer"}})
    assert quick is not None
    assert quick(list(range(BUDGET)))
    assert not quick(list(range(BUDGET + 1)))
    assert validation_error(list(range(BUDGET + 1)), schema_validator({"type": "array"})) is None


def test_tool_schemas_are_covered_and_errors_are_unchanged():
    @tool
    def search(
        query: str,
        limit: int = 10,
        kind: Literal["web", "news"] = "web",
        tags: list[str] | None = None,
        strict: bool = False,
        ratio: float = 0.5,
    ) -> list[str]:
        """Search."""
        return []

    for schema in (search.input_schema, search.output_schema):
        assert compile_quick_check(schema) is not None, schema
    validator = schema_validator(search.input_schema)
    assert validation_error({"query": "q", "kind": "news", "tags": ["a"]}, validator) is None
    for bad, message in [
        ({}, "'query' is a required property"),
        ({"query": "q", "limit": "3"}, "'3' is not of type 'integer' (at /limit)"),
        ({"query": "q", "kind": "maps"}, "'maps' is not one of ['web', 'news'] (at /kind)"),
        ({"query": "q", "extra": 1}, "Additional properties are not allowed"),
        ({"query": "q", "limit": True}, "True is not of type 'integer' (at /limit)"),
    ]:
        problem = validation_error(bad, validator)
        assert problem is not None and message in problem, (bad, problem)
    # a float that is an integer is still an integer to JSON Schema
    assert validation_error({"query": "q", "limit": 3.0}, validator) is None


def test_every_combination_of_small_objects_agrees():
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 1}, "s": {"type": "string"}},
        "required": ["n"],
        "additionalProperties": False,
    }
    quick = compile_quick_check(schema)
    assert quick is not None
    validator = schema_validator(schema)
    choices = [None, 0, 1, "x", 1.0, [1], {"n": 1}]
    for n, s in itertools.product([*choices, "absent"], repeat=2):
        value = {k: v for k, v in (("n", n), ("s", s)) if v != "absent"}
        valid = schemas._errors(validator, value) is None
        if quick(value):
            assert valid, value
        elif valid:  # declined only where JSON and Python types part: 1.0 is an integer
            assert value["n"] == 1.0, value


def test_quick_checks_leave_the_cache_with_their_validators():
    for i in range(schemas.VALIDATOR_CACHE_SIZE + 50):
        validator = schema_validator({"type": "string", "maxLength": 10_000 + i})
        assert validation_error("fits", validator) is None
    cached = {id(v) for v in schemas._validators.values()}
    assert len(schemas._quick_checks) <= schemas.VALIDATOR_CACHE_SIZE
    assert set(schemas._quick_checks) <= cached
