"""JSON Schema checks that a participant's schema or value cannot turn against the process.

Schemas arrive from other participants (toolkits, ``schemas.put``, agent input schemas, a
dynamic runner's ``output_schema``). A new schema is checked in a worker thread
(:func:`compile_off_loop`), so a slow one never stalls the event loop; validating a value
against a cached validator stays on the loop. Either way each check is bounded:

- No reference is ever fetched. Every validator resolves ``$ref`` against a registry whose
  ``retrieve`` refuses, and :func:`check_schema` refuses up front a schema with any
  reference that does not land on one of its own subschemas. Every subschema is read as
  2020-12 (``$schema`` is dropped), so none escapes to jsonschema's stock validator.
- Regexes (``pattern``, ``patternProperties``, ``format: regex``) run on RE2, which
  matches in time linear in the text: no pattern can backtrack.
- A schema's nesting depth, number of values and size are bounded, and each validation
  stops at a time limit, so ``$ref`` fan-out (exponential in a schema of a few hundred
  bytes) cannot hold the process.
- RecursionError (a value nested hundreds of levels) becomes a clear error.
- Compiled validators are cached by the schema's canonical JSON (bounded LRU). A simple
  schema also gets a quick check (``schema_fast_path``) that accepts plainly valid values
  without jsonschema; everything else still goes through the full validator.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

import re2
import referencing.exceptions
from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator
from jsonschema.validators import extend
from jsonschema_specifications import REGISTRY as SPECIFICATIONS
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.toolkits.schema_fast_path import compile_quick_check

MAX_SCHEMA_DEPTH = 32
MAX_VALUE_DEPTH = 200
"""Values nested deeper are refused before validation, which recurses once per level."""
"""Deepest nesting of objects and arrays in a schema (``{"type": "string"}`` is 1)."""
MAX_SCHEMA_NODES = 2_000
"""Most JSON values (objects, arrays, strings, numbers...) one schema may contain."""
MAX_SCHEMA_BYTES = 256 * 1024
"""Largest schema, as compact JSON."""
VALIDATION_TIME_LIMIT = 0.25
"""CPU seconds one validation (or schema check) may take; past it the value is refused."""
VALIDATOR_CACHE_SIZE = 512
"""Compiled validators kept, least recently used dropped first."""


# --- references ----------------------------------------------------------------------------


class ExternalReferenceRefused(Exception):
    """A schema referred to something outside itself; nothing is ever fetched."""


def _refuse_retrieval(uri: str) -> Resource:
    raise ExternalReferenceRefused(uri)


REGISTRY: Registry = Registry(retrieve=_refuse_retrieval)  # type: ignore[call-arg]
"""The registry of every validator built here: retrieval always refuses."""


def _reference_problem(ref: str, exc: referencing.exceptions.Unresolvable) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ExternalReferenceRefused):
            return (
                f"$ref {ref!r} points outside the schema: remote and file references are "
                "not allowed (use local '#/...' references and '$defs')"
            )
        cause = cause.__cause__
    return f"$ref {ref!r} cannot be resolved within the schema"


def _subschemas(schema: dict[str, Any] | bool) -> list[dict[str, Any]]:
    """Every subschema in object form, found through the keywords that hold schemas."""
    found = []
    stack: list[Any] = [schema]
    while stack:
        contents = stack.pop()
        if isinstance(contents, dict):
            found.append(contents)
            stack.extend(DRAFT202012.subresources_of(contents))
    return found


def _settle_dialect(schema: dict[str, Any] | bool) -> None:
    """Drop every ``$schema``: each subschema is read as 2020-12 by this module's validator.

    jsonschema would otherwise switch a subschema that declares a dialect to its stock
    validator, with Python's backtracking regexes and no time limit.
    """
    for subschema in _subschemas(schema):
        subschema.pop("$schema", None)


def _reference_errors(schema: dict[str, Any] | bool) -> str | None:
    """The first ``$ref``/``$dynamicRef`` that does not resolve to a subschema, if any.

    Every subschema is looked at (``$defs`` included, reachable or not), so validation
    never meets a reference it cannot resolve, and never one into a value that was not
    checked as a schema.
    """
    subschemas = {id(s) for s in _subschemas(schema)}
    registry = SPECIFICATIONS.combine(REGISTRY)
    root = DRAFT202012.create_resource(schema)
    stack = [(root, registry.resolver_with_root(root))]
    while stack:
        resource, resolver = stack.pop()
        contents = resource.contents
        for keyword in ("$ref", "$dynamicRef"):
            ref = contents.get(keyword) if isinstance(contents, dict) else None
            if not isinstance(ref, str):
                continue
            try:
                target = resolver.lookup(ref).contents
            except referencing.exceptions.Unresolvable as exc:
                return _reference_problem(ref, exc)
            if not isinstance(target, bool) and id(target) not in subschemas:
                return (
                    f"$ref {ref!r} points outside the schema's own subschemas (keep shared "
                    "ones in '$defs'; remote and file references are not allowed)"
                )
        for sub in resource.subresources():
            stack.append((sub, resolver.in_subresource(sub)))
    return None


# --- regexes -------------------------------------------------------------------------------

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


class RegexError(ValueError):
    """A pattern RE2 cannot compile (bad syntax, lookaround, backreferences, too large)."""


@lru_cache(maxsize=2048)
def compile_regex(pattern: str) -> Any:
    """``pattern`` compiled with RE2: linear-time matching, no backtracking."""
    try:
        return re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RegexError(
            f"{pattern!r} is not a regex this room evaluates: {reason} (patterns run on "
            "RE2, without lookaround or backreferences)"
        ) from None


def regex_search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches anywhere in ``text``, in time linear in ``text``."""
    regex = compile_regex(pattern)
    try:
        return regex.search(text) is not None
    except UnicodeEncodeError:  # lone surrogates: match them as U+FFFD
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return regex.search(text) is not None


def _is_regex(instance: object) -> bool:
    if isinstance(instance, str):
        compile_regex(instance)
    return True


FORMAT_CHECKER = FormatChecker(formats=())
"""Draft 2020-12 format checks, with ``regex`` meaning "RE2 compiles it"."""
FORMAT_CHECKER.checkers.update(Draft202012Validator.FORMAT_CHECKER.checkers)
FORMAT_CHECKER.checks("regex", raises=RegexError)(_is_regex)


# --- keywords ------------------------------------------------------------------------------
# jsonschema evaluates these with Python's backtracking ``re``; these versions use RE2.


def _pattern(validator: Validator, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not regex_search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Validator, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            _tick()
            if regex_search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional(instance: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    properties = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    extras = []
    for key in instance:
        _tick()
        if key not in properties and not any(regex_search(p, key) for p in patterns):
            extras.append(key)
    return extras


def _extras(extras: list[str]) -> str:
    verb = "was" if len(extras) == 1 else "were"
    return f"{', '.join(repr(e) for e in extras)} {verb} unexpected"


def _additional_properties(
    validator: Validator, additional: Any, instance: Any, schema: dict[str, Any]
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    extras = _additional(instance, schema)
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        if "patternProperties" in schema:
            patterns = ", ".join(repr(p) for p in sorted(schema["patternProperties"]))
            verb = "does" if len(extras) == 1 else "do"
            joined = ", ".join(repr(e) for e in sorted(extras))
            yield ValidationError(f"{joined} {verb} not match any of the regexes: {patterns}")
        else:
            yield ValidationError(
                f"Additional properties are not allowed ({_extras(sorted(extras))})"
            )


def _evaluated_keys(validator: Any, instance: dict[str, Any], schema: Any) -> set[str]:
    """The keys of ``instance`` that ``schema`` evaluates (for ``unevaluatedProperties``)."""
    if not isinstance(schema, dict):
        return set()
    keys: set[str] = set()
    for keyword in ("$ref", "$dynamicRef"):
        ref = schema.get(keyword)
        if isinstance(ref, str):
            # jsonschema's own resolver for this scope; lookups never fetch (see REGISTRY)
            resolved = validator._resolver.lookup(ref)
            keys |= _evaluated_keys(
                validator.evolve(schema=resolved.contents, _resolver=resolved.resolver),
                instance,
                resolved.contents,
            )
    properties = schema.get("properties")
    if isinstance(properties, dict):
        keys |= properties.keys() & instance.keys()
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        if (subschema := schema.get(keyword)) is not None:
            keys |= {
                k for k, v in instance.items() if validator.evolve(schema=subschema).is_valid(v)
            }
    for pattern in schema.get("patternProperties", {}):
        for key in instance:
            _tick()
            if regex_search(pattern, key):
                keys.add(key)
    for key, subschema in schema.get("dependentSchemas", {}).items():
        if key in instance:
            keys |= _evaluated_keys(validator, instance, subschema)
    for keyword in ("allOf", "oneOf", "anyOf"):
        for subschema in schema.get(keyword, []):
            if validator.evolve(schema=subschema).is_valid(instance):
                keys |= _evaluated_keys(validator, instance, subschema)
    if "if" in schema:
        if validator.evolve(schema=schema["if"]).is_valid(instance):
            keys |= _evaluated_keys(validator, instance, schema["if"])
            keys |= _evaluated_keys(validator, instance, schema.get("then"))
        else:
            keys |= _evaluated_keys(validator, instance, schema.get("else"))
    return keys


def _unevaluated_properties(
    validator: Validator, unevaluated: Any, instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    evaluated = _evaluated_keys(validator, instance, schema)
    invalid = [
        key
        for key in instance
        if key not in evaluated
        and any(True for _ in validator.descend(instance[key], unevaluated, path=key))
    ]
    if not invalid:
        return
    if unevaluated is False:
        yield ValidationError(
            f"Unevaluated properties are not allowed ({_extras(sorted(invalid))})"
        )
    else:
        yield ValidationError(
            "Unevaluated properties are not valid under the given schema "
            f"({', '.join(repr(k) for k in invalid)} unevaluated and invalid)"
        )


def _hashable(value: Any) -> Any:
    """A hashable form of a JSON value under JSON Schema equality (1 == 1.0, true != 1)."""
    if isinstance(value, bool) or value is None:
        return ("literal", value)
    if isinstance(value, dict):
        return ("object", frozenset((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("array", tuple(_hashable(v) for v in value))
    return ("value", value)


def _unique_items(validator: Validator, unique: Any, instance: Any, schema: Any) -> Iterator[Any]:
    """Linear-time ``uniqueItems`` (jsonschema falls back to comparing every pair)."""
    if unique and validator.is_type(instance, "array"):
        seen: set[Any] = set()
        for item in instance:
            _tick()
            key = _hashable(item)
            if key in seen:
                yield ValidationError(f"{instance!r} has non-unique elements")
                return
            seen.add(key)


# --- time limit ----------------------------------------------------------------------------


class ValidationTimeExceeded(Exception):
    """One validation ran past VALIDATION_TIME_LIMIT."""


class _Deadline:
    """The CPU time (of the validating thread) at which a validation stops.

    CPU time, not wall time: a busy machine must not fail a cheap check. The clock is a
    system call, so it is read every few ticks, and first only once a validation has run
    that many (most end sooner, never reading it).
    """

    __slots__ = ("at", "countdown", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at: float | None = None
        self.countdown = _TICKS_PER_CLOCK_READ


_TICKS_PER_CLOCK_READ = 8
_deadline: ContextVar[_Deadline | None] = ContextVar("schema_validation_deadline", default=None)


def _tick() -> None:
    """Stop the running validation once it is past its deadline."""
    deadline = _deadline.get()
    if deadline is None:
        return
    deadline.countdown -= 1
    if deadline.countdown <= 0:
        deadline.countdown = _TICKS_PER_CLOCK_READ
        now = time.thread_time()
        if deadline.at is None:
            deadline.at = now + deadline.seconds
        elif now > deadline.at:
            raise ValidationTimeExceeded


def _timed(keyword: Callable[..., Any]) -> Callable[..., Any]:
    """``keyword``, stopped if the validation is past its deadline when it starts.

    Every subschema runs through keywords, so ``$ref`` fan-out meets the deadline too.
    """

    def evaluate(validator: Validator, value: Any, instance: Any, schema: Any) -> Any:
        _tick()
        return keyword(validator, value, instance, schema)

    return evaluate


_KEYWORDS = {
    **Draft202012Validator.VALIDATORS,
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "unevaluatedProperties": _unevaluated_properties,
    "uniqueItems": _unique_items,
}

SafeValidator = extend(
    Draft202012Validator,
    validators={name: _timed(fn) for name, fn in _KEYWORDS.items()},
    format_checker=FORMAT_CHECKER,
)
"""Draft 2020-12 with RE2 regexes, linear ``uniqueItems`` and a time limit."""


def _flat_metaschema() -> dict[str, Any]:
    """The 2020-12 metaschema and its vocabularies as one document, ``$dynamicRef`` made ``$ref``.

    The same rules, checked about 20 times faster: the stock metaschema resolves a
    ``$dynamicRef`` through seven vocabularies for every subschema.
    """
    base = "https://json-schema.org/draft/2020-12/"
    main = SPECIFICATIONS.contents(base + "schema")
    parts = [main, *(SPECIFICATIONS.contents(base + part["$ref"]) for part in main["allOf"])]
    flat: dict[str, Any] = {"type": ["object", "boolean"], "properties": {}, "$defs": {}}
    for part in parts:
        flat["properties"].update(part.get("properties", {}))
        flat["$defs"].update(part.get("$defs", {}))

    def local(value: Any) -> Any:
        if isinstance(value, list):
            return [local(v) for v in value]
        if not isinstance(value, dict):
            return value
        if value.get("$dynamicRef") == "#meta":
            return {"$ref": "#"}
        out = {k: local(v) for k, v in value.items()}
        if isinstance(out.get("$ref"), str):  # "meta/validation#/$defs/x" -> "#/$defs/x"
            out["$ref"] = "#" + out["$ref"].partition("#")[2]
        return out

    return local(flat)


_METASCHEMA = SafeValidator(_flat_metaschema(), format_checker=FORMAT_CHECKER, registry=REGISTRY)


def _errors(validator: Any, value: Any) -> Any:
    """The best error of ``value`` under ``validator``, within the time limit."""
    token = _deadline.set(_Deadline(VALIDATION_TIME_LIMIT))
    try:
        return best_match(validator.iter_errors(value))
    finally:
        _deadline.reset(token)


# --- public functions ----------------------------------------------------------------------


def _invalid(what: str, reason: str) -> RoomError:
    return RoomError(ErrorCode.INVALID_REQUEST, f"{what} is not a valid JSON Schema: {reason}")


def _measure(schema: Any, what: str) -> None:
    """Refuse a schema deeper or larger than the limits, without recursing into it."""
    nodes = 0
    stack = [(schema, 1)]
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_SCHEMA_DEPTH:
            raise _invalid(what, f"it is nested deeper than the limit of {MAX_SCHEMA_DEPTH}")
        if nodes + len(stack) + len(children) > MAX_SCHEMA_NODES:
            raise _invalid(what, f"it holds more than the limit of {MAX_SCHEMA_NODES} values")
        stack.extend((child, depth + 1) for child in children)


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests containers more than ``limit`` levels, without recursing."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _canonical(schema: Any, what: str) -> str:
    try:
        text = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise _invalid(what, f"it is not JSON ({exc})") from None
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SCHEMA_BYTES:
        raise _invalid(what, f"it is larger than the limit of {MAX_SCHEMA_BYTES} bytes")
    return text


_validators: OrderedDict[str, Any] = OrderedDict()
_validators_lock = threading.Lock()
_quick_checks: dict[int, tuple[Any, Callable[[Any], bool]]] = {}
"""Quick checks of the cached validators that have one, by the validator's id (the entry
holds the validator, so the id stays its own while the entry lives)."""


def _cached(key: str) -> Any | None:
    with _validators_lock:
        validator = _validators.get(key)
        if validator is not None:
            _validators.move_to_end(key)
        return validator


def _remember(key: str, validator: Any, quick: Callable[[Any], bool] | None) -> None:
    with _validators_lock:
        replaced = _validators.get(key)
        if replaced is not None:  # built twice at once: the first keeps working, unquickened
            _quick_checks.pop(id(replaced), None)
        _validators[key] = validator
        if quick is not None:
            _quick_checks[id(validator)] = (validator, quick)
        while len(_validators) > VALIDATOR_CACHE_SIZE:
            _, dropped = _validators.popitem(last=False)
            _quick_checks.pop(id(dropped), None)


def _lookup(schema: Any, what: str) -> tuple[str, Any | None]:
    """Check the cheap, bounded limits; the schema's cache key and cached validator."""
    if not isinstance(schema, dict | bool):
        raise RoomError(ErrorCode.INVALID_REQUEST, f"{what} must be a JSON object")
    _measure(schema, what)
    key = _canonical(schema, what)
    return key, _cached(key)


def _build(key: str, what: str) -> Any:
    """Check the schema a cache key spells against the metaschema and its references,
    within the time limit, and cache its validator."""
    private = json.loads(key)  # the cached validator must not see the caller's later edits
    try:
        error = _errors(_METASCHEMA, private)
        problem = _message(error) if error is not None else None
        if not problem:
            _settle_dialect(private)
            problem = _reference_errors(private)
    except RecursionError:
        problem = "it is nested too deeply to check"
    except ValidationTimeExceeded:
        problem = f"checking it took longer than the limit of {VALIDATION_TIME_LIMIT * 1000:.0f} ms"
    if problem:
        raise _invalid(what, problem)
    validator = SafeValidator(private, format_checker=FORMAT_CHECKER, registry=REGISTRY)
    _remember(key, validator, compile_quick_check(private))
    return validator


def _compile(schema: Any, what: str) -> Any:
    """Check ``schema`` against every limit and return its (cached) validator."""
    key, validator = _lookup(schema, what)
    return validator if validator is not None else _build(key, what)


async def compile_off_loop(schema: Any, *, what: str = "schema") -> Any:
    """The validator of a schema from an untrusted participant, without stalling the loop.

    A cached schema answers at once; a new one is checked in a worker thread (under the
    same CPU time limit), so other requests are served meanwhile.
    """
    key, validator = _lookup(schema, what)
    if validator is not None:
        return validator
    return await asyncio.to_thread(_build, key, what)


def _message(error: ValidationError) -> str:
    """The error's message, or for ``format: regex`` the reason RE2 gave."""
    if isinstance(error.cause, RegexError):
        return str(error.cause)
    return error.message


def check_schema(schema: Any, *, what: str = "schema") -> None:
    """Refuse a value that is not a valid, safe JSON Schema, with the reason.

    Safe: within the size and depth limits, with no reference outside itself and only
    regexes RE2 compiles.
    """
    _compile(schema, what)


def schema_validator(schema: dict[str, Any] | bool) -> Any:
    """The cached validator of ``schema``; refuses (RoomError) one that fails check_schema."""
    return _compile(schema, "schema")


def validation_error(value: Any, validator: Any) -> str | None:
    """The most relevant validation message for ``value``, or None when it is valid.

    A value that cannot be checked within the limits is reported as invalid, never raised.
    """
    quick = _quick_checks.get(id(validator))
    if quick is not None and quick[0] is validator and quick[1](value):
        return None
    if _deeper_than(value, MAX_VALUE_DEPTH):
        return f"the value is nested too deeply to check (more than {MAX_VALUE_DEPTH} levels)"
    try:
        error = _errors(validator, value)
    except RecursionError:
        return "the value is nested too deeply to check against its schema"
    except ValidationTimeExceeded:
        return (
            "checking the value against its schema took longer than the limit of "
            f"{VALIDATION_TIME_LIMIT * 1000:.0f} ms (a smaller value or a simpler schema fits)"
        )
    except referencing.exceptions.Unresolvable as exc:
        return _reference_problem(getattr(exc, "ref", "?"), exc)
    if error is None:
        return None
    path = "/".join(str(p) for p in error.absolute_path)
    return _message(error) + (f" (at /{path})" if path else "")
