"""A quick yes for the common case: values that plainly satisfy a simple schema.

Validating a tool's arguments and result with jsonschema costs tens of microseconds, most
of a small tool call's time in its host. Most tool schemas are simple (an object of typed
properties, required names, no extra properties, strings and numbers with bounds, enums
of strings, arrays of such), so a schema built only of those keywords is compiled here
into a plain Python check. The check only ever answers "valid for sure": anything it does
not accept (an invalid value, a float where an integer is asked, a value too large to
walk cheaply) goes to the full validator, which gives the error message, the limits and
the time bound. A schema with any other keyword gets no quick check at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Check = Callable[[Any, list[int]], bool]
"""A compiled schema: ``check(value, budget)``; ``budget[0]`` counts down the values a
check may still look at, so a large value is left to the full validator's time limit."""

BUDGET = 1_000
"""Values (members and items) one quick check may look at."""

_ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "$comment", "deprecated", "readOnly",
     "writeOnly"}
)  # fmt: skip
_SCALAR_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}
_MAX_BRANCHES = 8


class _Unsupported(Exception):
    """The schema uses something the quick check does not cover."""


def compile_quick_check(schema: Any) -> Callable[[Any], bool] | None:
    """A check that returns True only for values ``schema`` accepts, or None when the
    schema is not one this module covers."""
    try:
        check = _compile(schema)
    except _Unsupported:
        return None

    def quick(value: Any) -> bool:
        return check(value, [BUDGET])

    return quick


def _compile(schema: Any) -> Check:
    if schema is True or schema == {}:
        return _scalar_only
    if not isinstance(schema, dict):
        raise _Unsupported
    keys = set(schema) - _ANNOTATIONS
    if "anyOf" in keys:
        if keys != {"anyOf"}:
            raise _Unsupported
        return _any_of(schema["anyOf"])
    kind = schema.get("type")
    keys.discard("type")
    if kind == "object":
        return _object(schema, keys)
    if kind == "array":
        return _array(schema, keys)
    if isinstance(kind, str) and kind in _SCALAR_TYPES:
        return _scalar(schema, (kind,), keys)
    if isinstance(kind, list) and kind and all(k in _SCALAR_TYPES for k in kind):
        return _scalar(schema, tuple(kind), keys)
    raise _Unsupported


def _scalar_only(value: Any, budget: list[int]) -> bool:
    """An unconstrained subschema: yes only for a scalar (a container might be nested
    too deeply, which the full check reports)."""
    return value is None or type(value) in (str, int, float, bool)


def _exact(types: tuple[str, ...]) -> frozenset[type]:
    """Python types that satisfy every JSON type in ``types`` for sure: ``bool`` is never
    an integer or number, and a float never answers for an integer here."""
    return frozenset(t for k in types for t in _SCALAR_TYPES[k])


def _scalar(schema: dict[str, Any], kinds: tuple[str, ...], keys: set[str]) -> Check:
    exact = _exact(kinds)
    bounds: list[Callable[[Any], bool]] = []
    for key in keys:
        bound = schema[key]
        if key == "enum":
            if not isinstance(bound, list) or not all(isinstance(v, str) for v in bound):
                raise _Unsupported
            bounds.append(_one_of(frozenset(bound)))
        elif key in ("minLength", "maxLength") and _is_count(bound):
            bounds.append(_length_bound(key, bound))
        elif key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") and _is_number(
            bound
        ):
            bounds.append(_number_bound(key, bound))
        else:
            raise _Unsupported

    def check(value: Any, budget: list[int]) -> bool:
        if type(value) not in exact:
            return False
        for ok in bounds:
            if not ok(value):
                return False
        return True

    return check


def _one_of(members: frozenset[str]) -> Callable[[Any], bool]:
    return lambda v: type(v) is str and v in members


def _length_bound(key: str, bound: int) -> Callable[[Any], bool]:
    if key == "minLength":
        return lambda v: type(v) is not str or len(v) >= bound
    return lambda v: type(v) is not str or len(v) <= bound


def _number_bound(key: str, bound: float) -> Callable[[Any], bool]:
    def number(v: Any) -> bool:
        return type(v) in (int, float)

    if key == "minimum":
        return lambda v: not number(v) or v >= bound
    if key == "maximum":
        return lambda v: not number(v) or v <= bound
    if key == "exclusiveMinimum":
        return lambda v: not number(v) or v > bound
    return lambda v: not number(v) or v < bound


def _object(schema: dict[str, Any], keys: set[str]) -> Check:
    allowed = {"properties", "required", "additionalProperties"}
    if keys - allowed:
        raise _Unsupported
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    extra = schema.get("additionalProperties", True)
    if not isinstance(properties, dict) or not isinstance(required, list):
        raise _Unsupported
    if not all(isinstance(name, str) for name in required):
        raise _Unsupported
    members = {name: _compile(sub) for name, sub in properties.items()}
    extra_check = _scalar_only if extra is True else None if extra is False else _compile(extra)
    needed = tuple(required)

    def check(value: Any, budget: list[int]) -> bool:
        if type(value) is not dict:
            return False
        budget[0] -= len(value)
        if budget[0] < 0:
            return False
        for name in needed:
            if name not in value:
                return False
        for name, item in value.items():
            member = members.get(name, extra_check)
            if member is None or not member(item, budget):
                return False
        return True

    return check


def _array(schema: dict[str, Any], keys: set[str]) -> Check:
    if keys - {"items", "minItems", "maxItems"}:
        raise _Unsupported
    items = _compile(schema.get("items", True))
    low, high = schema.get("minItems", 0), schema.get("maxItems")
    if not _is_count(low) or (high is not None and not _is_count(high)):
        raise _Unsupported

    def check(value: Any, budget: list[int]) -> bool:
        if type(value) is not list:
            return False
        count = len(value)
        budget[0] -= count
        if budget[0] < 0 or count < low or (high is not None and count > high):
            return False
        for item in value:
            if not items(item, budget):
                return False
        return True

    return check


def _any_of(branches: Any) -> Check:
    """``anyOf`` of branches of distinct single types (``Optional[list[str]]``, ``int |
    str``): a value's type rules out all branches but one at a glance, so no value is
    walked once per branch."""
    if not isinstance(branches, list) or not 0 < len(branches) <= _MAX_BRANCHES:
        raise _Unsupported
    checks = []
    kinds: set[str] = set()
    for branch in branches:
        kind = branch.get("type") if isinstance(branch, dict) else None
        if not isinstance(kind, str) or kind in kinds:
            raise _Unsupported
        kinds.add(kind)
        checks.append(_compile(branch))

    def check(value: Any, budget: list[int]) -> bool:
        return any(c(value, budget) for c in checks)

    return check


def _is_count(value: Any) -> bool:
    return type(value) is int and value >= 0


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)
