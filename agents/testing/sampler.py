"""Values sampled from JSON schemas, and auto mode: what a model with no script answers.

Auto mode calls every offered tool once with arguments sampled from its schema, then
answers with text, or with JSON that fits the requested output schema. The scripted
server and :class:`~taskroom.agents.testing.models.TestModel` share it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from taskroom.agents.testing.steps import TextStep, ToolCallsStep

# Arrays nested deeper than this are sampled empty (when allowed) so recursive schemas terminate.
_ARRAY_DEPTH = 8
_MAX_DEPTH = 64
_FORMAT_SAMPLES: Mapping[str, str] = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00Z",
    "duration": "PT1S",
    "email": "user@example.com",
    "idn-email": "user@example.com",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "iri": "https://example.com/",
    "uri-reference": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "regex": ".*",
}


def answer_sentence(prompt: str) -> str:
    """The text auto mode answers with: it quotes the prompt so tests can tell tasks apart."""
    prompt = " ".join(prompt.split())
    return f"Scripted answer to: {prompt[:60]}" if prompt else "Scripted answer."


def estimate_tokens(value: Any) -> int:
    """A plausible token count: about four characters a token."""
    if value is None or value == "" or value == []:
        return 0
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return max(1, math.ceil(len(text) / 4))


def auto_reply(
    *, pending: Mapping[str, Any], prompt: str, output_schema: Any | None
) -> TextStep | ToolCallsStep:
    """Call each ``pending`` tool (name -> parameters schema) once; with none left, answer.

    The answer is :func:`answer_sentence` text, or JSON fitting ``output_schema`` when one is
    given. Raises ``ValueError`` for a schema that cannot be sampled.
    """
    sentence = answer_sentence(prompt)
    if pending:
        return ToolCallsStep(
            tuple(
                (name, json.dumps(sample_for_schema(schema, answer=sentence)))
                for name, schema in pending.items()
            )
        )
    if output_schema is None:
        return TextStep(sentence)
    return TextStep(json.dumps(sample_for_schema(output_schema, answer=sentence)))


def sample_for_schema(schema: Any, *, answer: str = "Scripted answer.") -> Any:
    """Build a value valid against a JSON schema, as a model would answer or call a tool.

    Covers what tool and output schemas use in practice: objects (required properties),
    strings (enum, const, format, length), numbers and integers (bounds), booleans, null,
    arrays, anyOf/oneOf (first non-null branch), allOf (merged) and local ``$ref``. Strings
    at the top level or in a property named ``result`` get ``answer``. Raises ``ValueError``
    for schemas it cannot satisfy by construction (unresolvable ``$ref``, endless recursion).
    """
    return _Sampler(schema, answer).sample(schema, None, 0)


class _Sampler:
    def __init__(self, root: Any, answer: str) -> None:
        self.root = root
        self.answer = answer

    def sample(self, schema: Any, name: str | None, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise ValueError("schema nests too deeply to sample (recursive required property?)")
        if schema is False:
            raise ValueError("schema `false` accepts no value")
        if not isinstance(schema, Mapping):
            schema = {}
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][0]
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                return self.sample(self._pick(schema[key]), name, depth + 1)
        if schema.get("allOf"):
            schema = self._merge_all_of(schema)
        kind = _schema_type(schema)
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, name, depth)
        if kind in ("integer", "number"):
            return _sample_number(schema, integer=kind == "integer")
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self._string(schema, name)

    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        for _ in range(_MAX_DEPTH):
            ref = schema.get("$ref")
            if not isinstance(ref, str):
                return schema
            target = self._deref(ref)
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**(target if isinstance(target, Mapping) else {}), **siblings}
        raise ValueError("$ref chain too long")

    def _deref(self, ref: str) -> Any:
        if not ref.startswith("#"):
            raise ValueError(f"only local $ref is supported, got {ref!r}")
        node = self.root
        for part in ref[1:].split("/")[1:]:
            key = part.replace("~1", "/").replace("~0", "~")
            try:
                node = node[int(key)] if isinstance(node, list) else node[key]
            except (KeyError, IndexError, ValueError, TypeError):
                raise ValueError(f"unresolvable $ref {ref!r}") from None
        return node

    def _pick(self, branches: list[Any]) -> Any:
        for branch in branches:
            resolved = self._resolve(branch) if isinstance(branch, Mapping) else branch
            if not (isinstance(resolved, Mapping) and resolved.get("type") == "null"):
                return branch
        return branches[0]

    def _merge_all_of(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for branch in schema["allOf"]:
            if not isinstance(branch, Mapping):
                continue
            for key, value in self._resolve(branch).items():
                if key == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **value}
                elif key == "required":
                    merged["required"] = [*merged.get("required", []), *value]
                else:
                    merged.setdefault(key, value)
        return merged

    def _object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties: Mapping[str, Any] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        result: dict[str, Any] = {}
        for key in schema.get("required") or ():
            sub = properties.get(key, extra if isinstance(extra, Mapping) else {})
            result[key] = self.sample(sub, key, depth + 1)
        for key, sub in properties.items():
            if len(result) >= schema.get("minProperties", 0):
                break
            result.setdefault(key, self.sample(sub, key, depth + 1))
        return result

    def _array(self, schema: Mapping[str, Any], name: str | None, depth: int) -> list[Any]:
        items = schema.get("items")
        prefix = schema.get("prefixItems") or (items if isinstance(items, list) else [])
        rest = items if isinstance(items, Mapping) else schema.get("additionalItems")
        count = max(schema.get("minItems", 0), 1 if depth <= _ARRAY_DEPTH else 0, len(prefix))
        if isinstance(schema.get("maxItems"), int):
            count = min(count, schema["maxItems"])
        item_name = name or "item"
        return [
            self.sample(prefix[i] if i < len(prefix) else rest, item_name, depth + 1)
            for i in range(count)
        ]

    def _string(self, schema: Mapping[str, Any], name: str | None) -> str:
        fmt = schema.get("format")
        if isinstance(fmt, str) and fmt in _FORMAT_SAMPLES:
            value = _FORMAT_SAMPLES[fmt]
        elif name is None or name == "result":
            value = self.answer
        else:
            value = f"sample {name}"
        value = value.ljust(schema.get("minLength", 0), "x")
        max_length = schema.get("maxLength")
        return value[:max_length] if isinstance(max_length, int) else value


def _schema_type(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        non_null = [k for k in kind if k != "null"]
        return non_null[0] if non_null else "null"
    if isinstance(kind, str):
        return kind
    if any(k in schema for k in ("properties", "required", "additionalProperties")):
        return "object"
    if any(k in schema for k in ("items", "prefixItems", "minItems", "maxItems")):
        return "array"
    if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")):
        return "number"
    return "string"


def _bound(schema: Mapping[str, Any], inclusive: str, exclusive: str) -> tuple[float | None, bool]:
    """A bound and whether it is exclusive, for both draft-4 (boolean) and later keywords."""
    value = schema.get(inclusive)
    excl = schema.get(exclusive)
    if isinstance(excl, bool):
        return value, excl and value is not None
    if isinstance(excl, int | float) and (value is None or excl >= value):
        return excl, True
    return value, False


def _sample_number(schema: Mapping[str, Any], *, integer: bool) -> int | float:
    lo, lo_excl = _bound(schema, "minimum", "exclusiveMinimum")
    hi, hi_excl = _bound(schema, "maximum", "exclusiveMaximum")
    value: float = 1 if integer else 1.5
    too_low = lo is not None and (value <= lo if lo_excl else value < lo)
    too_high = hi is not None and (value >= hi if hi_excl else value > hi)
    if integer:
        if too_low and lo is not None:
            value = math.floor(lo) + 1 if lo_excl else math.ceil(lo)
        elif too_high and hi is not None:
            value = math.ceil(hi) - 1 if hi_excl else math.floor(hi)
        step = schema.get("multipleOf")
        if isinstance(step, int) and step > 0:
            value = math.ceil(value / step) * step
        return int(value)
    if lo is not None and hi is not None and (too_low or too_high):
        return (lo + hi) / 2
    if too_low and lo is not None:
        return lo + 1
    if too_high and hi is not None:
        return hi - 1
    return value
