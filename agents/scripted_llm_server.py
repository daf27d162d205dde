"""A scripted, OpenAI-compatible LLM server for tests, benchmarks and the offline demo.

No real LLM is reachable where this project is built and tested, so adapters are exercised
against this server through the real ``openai`` client over real HTTP. It speaks the Responses
and Chat Completions APIs, streaming and not. Each request consumes one scripted step (per-model
scripts first, then the shared FIFO); when the script is empty, *auto* mode calls every offered
tool once and then answers with text, or with JSON that fits the requested schema.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, NoReturn

from aiohttp import web
from multidict import CIMultiDict

__all__ = [
    "MODELS",
    "NO_STEP_LEFT",
    "DelayStep",
    "HangStep",
    "HttpErrorStep",
    "RecordedRequest",
    "ScriptedLLMServer",
    "Step",
    "TextStep",
    "ToolCallsStep",
    "delay",
    "hang",
    "http_error",
    "invalid_json",
    "json_output",
    "sample_for_schema",
    "serve",
    "text",
    "tool_calls",
]

logger = logging.getLogger(__name__)

MODELS: tuple[str, ...] = (
    "scripted-model",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4o",
    "gpt-4o-mini",
    "o3",
    "o4-mini",
)
"""Model ids listed by ``GET /v1/models``; requests may name any other model too."""

NO_STEP_LEFT = "scripted LLM server: no step left"
"""Error message of the HTTP 500 sent when auto mode is off and the script is empty."""

_DEFAULT_MODEL = "scripted-model"
_JSON_OBJECT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {"result": {"type": "string"}},
    "required": ["result"],
}
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
_ERROR_KINDS: Mapping[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    409: ("invalid_request_error", "conflict"),
    413: ("invalid_request_error", "request_too_large"),
    422: ("invalid_request_error", "unprocessable_entity"),
    429: ("requests", "rate_limit_exceeded"),
}

_Api = Literal["responses", "chat"]


# --------------------------------------------------------------------------- script steps


@dataclass(frozen=True, slots=True)
class TextStep:
    """Answer with this assistant text (plain, JSON or deliberately broken JSON)."""

    content: str


@dataclass(frozen=True, slots=True)
class ToolCallsStep:
    """Answer with parallel function calls; each call is (tool name, raw arguments text)."""

    calls: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class HttpErrorStep:
    """Fail the request with an OpenAI-style error body, optionally asking for a retry delay."""

    status: int
    retry_after: float | None
    message: str


@dataclass(frozen=True, slots=True)
class DelayStep:
    """Wait ``seconds`` before playing ``step``, to exercise client timeouts and overlap."""

    seconds: float
    step: Step


@dataclass(frozen=True, slots=True)
class HangStep:
    """Never answer: the request ends only when the client goes away or the server stops."""


Step = TextStep | ToolCallsStep | HttpErrorStep | DelayStep | HangStep


def text(content: str) -> TextStep:
    """Step answering with ``content`` as the assistant's text."""
    return TextStep(content)


def tool_calls(calls: Iterable[tuple[str, Mapping[str, Any] | str]]) -> ToolCallsStep:
    """Step calling tools; a ``str`` argument is sent raw so tests can send non-JSON arguments."""
    return ToolCallsStep(
        tuple((name, args if isinstance(args, str) else json.dumps(args)) for name, args in calls)
    )


def json_output(obj: Any) -> TextStep:
    """Step answering with the JSON text of ``obj``."""
    return TextStep(json.dumps(obj))


def invalid_json(text: str = "{not json") -> TextStep:
    """Step answering with text that does not parse as JSON, to test output validation."""
    return TextStep(text)


def http_error(
    status: int, retry_after: float | None = None, message: str = "scripted HTTP error"
) -> HttpErrorStep:
    """Step failing with HTTP ``status``; ``retry_after`` seconds go in a ``retry-after`` header."""
    return HttpErrorStep(status, retry_after, message)


def delay(seconds: float, step: Step) -> DelayStep:
    """Step that waits ``seconds`` and then plays ``step``."""
    return DelayStep(seconds, step)


def hang() -> HangStep:
    """Step that never answers."""
    return HangStep()


# --------------------------------------------------------------------------- recording


@dataclass(slots=True)
class RecordedRequest:
    """One request as received, so tests can assert what a client sent and when.

    ``started_at``/``finished_at`` are ``time.monotonic()`` values; ``finished_at`` stays
    ``None`` while the request is in flight. ``headers`` look up case-insensitively.
    """

    method: str
    path: str
    body: Any
    headers: Mapping[str, str]
    started_at: float
    finished_at: float | None = None


@dataclass(frozen=True, slots=True)
class _Call:
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class _Answer:
    text: str | None = None
    calls: tuple[_Call, ...] = ()


class _ServerStopping(Exception):
    """Raised inside a waiting handler when the server shuts down."""


# --------------------------------------------------------------------------- server


class ScriptedLLMServer:
    """OpenAI-compatible HTTP server whose answers come from a script or from auto mode.

    ``app`` is the aiohttp application; ``start``/``stop`` (or ``async with``) run it on a
    TCP port. Waits (``latency``, delays, hangs) are plain asyncio sleeps, so a thousand
    concurrent slow requests cost no threads.
    """

    def __init__(self, *, auto: bool = True, latency: float = 0.0) -> None:
        self.auto = auto
        self.latency = latency
        self.requests: list[RecordedRequest] = []
        self.app = web.Application(middlewares=[self._record], client_max_size=64 * 1024**2)
        self.app.router.add_post("/v1/responses", self._handle_responses)
        self.app.router.add_post("/v1/chat/completions", self._handle_chat)
        self.app.router.add_get("/v1/models", self._handle_models)
        self.app.router.add_get("/v1/models/{model}", self._handle_model)
        self._queue: deque[Step] = deque()
        self._model_queues: dict[str, deque[Step]] = {}
        # Tool names of the calls this server made, for results sent via previous_response_id.
        self._call_names: dict[str, str] = {}
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    @property
    def base_url(self) -> str:
        """Base URL for ``openai.AsyncOpenAI(base_url=...)``, ending in ``/v1``."""
        if self._base_url is None:
            raise RuntimeError("scripted LLM server is not started")
        return self._base_url

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0 picks a free port) and return the base URL."""
        if self._runner is not None:
            raise RuntimeError("scripted LLM server is already started")
        self._stopping.clear()
        # handler_cancellation: a client that goes away ends its delayed or hanging request.
        runner = web.AppRunner(
            self.app, access_log=None, handler_cancellation=True, shutdown_timeout=2.0
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, backlog=2048).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_port = runner.addresses[0][1]
        self._base_url = f"http://{_url_host(host)}:{bound_port}/v1"
        logger.info("scripted LLM server listening on %s", self._base_url)
        return self._base_url

    async def stop(self) -> None:
        """Stop listening; waiting requests (latency, delay, hang) end at once with HTTP 503."""
        if self._runner is None:
            return
        runner, self._runner = self._runner, None
        self._stopping.set()
        await runner.cleanup()
        self._base_url = None
        logger.info("scripted LLM server stopped")

    async def __aenter__(self) -> ScriptedLLMServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def script(self, *steps: Step) -> None:
        """Append steps to the shared FIFO; each LLM request consumes one."""
        self._queue.extend(steps)

    def script_for(self, model: str, *steps: Step) -> None:
        """Append steps used, before the shared FIFO, by requests naming ``model``."""
        self._model_queues.setdefault(model, deque()).extend(steps)

    def clear(self) -> None:
        """Drop every scripted step, shared and per-model (recorded requests are kept)."""
        self._queue.clear()
        self._model_queues.clear()

    # ----------------------------------------------------------------------- HTTP plumbing

    @web.middleware
    async def _record(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            body=None,
            headers=CIMultiDict(request.headers),
            started_at=time.monotonic(),
        )
        self.requests.append(record)
        try:
            if request.body_exists:
                try:
                    record.body = await request.json()
                except ValueError:
                    record.body = (await request.read()).decode(errors="replace")
                    return _error_response(400, "request body is not valid JSON")
            return await handler(request)
        finally:
            record.finished_at = time.monotonic()

    async def _handle_models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [_model_card(m) for m in MODELS]})

    async def _handle_model(self, request: web.Request) -> web.Response:
        return web.json_response(_model_card(request.match_info["model"]))

    async def _handle_responses(self, request: web.Request) -> web.StreamResponse:
        return await self._handle_llm(request, "responses")

    async def _handle_chat(self, request: web.Request) -> web.StreamResponse:
        return await self._handle_llm(request, "chat")

    async def _handle_llm(self, request: web.Request, api: _Api) -> web.StreamResponse:
        body = await request.json() if request.body_exists else None
        if not isinstance(body, dict):
            return _error_response(400, "request body must be a JSON object")
        model = str(body.get("model") or _DEFAULT_MODEL)
        # The step is taken on arrival so concurrent requests get steps in arrival order.
        step = self._next_step(model)
        logger.debug("%s request for model %s plays %r", api, model, step)
        try:
            await self._sleep(self.latency)
            return await self._play(request, api, body, model, step)
        except _ServerStopping:
            return _error_response(503, "scripted LLM server: shutting down")

    def _next_step(self, model: str) -> Step | None:
        for queue in (self._model_queues.get(model), self._queue):
            if queue:
                return queue.popleft()
        return None

    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds``, raising ``_ServerStopping`` if the server shuts down meanwhile."""
        if seconds <= 0:
            return
        try:
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        except TimeoutError:
            return
        raise _ServerStopping

    async def _wait_until_stopped(self) -> NoReturn:
        await self._stopping.wait()
        raise _ServerStopping

    async def _play(
        self, request: web.Request, api: _Api, body: dict[str, Any], model: str, step: Step | None
    ) -> web.StreamResponse:
        while isinstance(step, DelayStep):
            await self._sleep(step.seconds)
            step = step.step
        match step:
            case HangStep():
                await self._wait_until_stopped()
            case HttpErrorStep(status=status, retry_after=retry_after, message=message):
                return _error_response(status, message, retry_after=retry_after)
            case TextStep(content=content):
                answer = _Answer(text=content)
            case ToolCallsStep(calls=calls):
                answer = _Answer(calls=tuple(self._new_call(name, args) for name, args in calls))
            case None:
                if not self.auto:
                    logger.warning("%s (request for model %s)", NO_STEP_LEFT, model)
                    return _error_response(500, NO_STEP_LEFT)
                try:
                    answer = self._auto_answer(body)
                except ValueError as exc:
                    logger.exception("scripted LLM server: auto mode failed")
                    return _error_response(500, f"scripted LLM server: auto mode failed: {exc}")
        if api == "responses":
            payload = _responses_payload(body, model, answer)
            if body.get("stream") is True:
                return await _write_sse(request, _responses_events(payload), done_marker=False)
        else:
            payload = _chat_payload(body, model, answer)
            if body.get("stream") is True:
                include_usage = (body.get("stream_options") or {}).get("include_usage") is True
                events = _chat_chunks(payload, include_usage=include_usage)
                return await _write_sse(request, events, done_marker=True)
        return web.json_response(payload)

    def _new_call(self, name: str, arguments: str) -> _Call:
        call = _Call(call_id=f"call_{_hex()}", name=name, arguments=arguments)
        self._call_names[call.call_id] = name
        return call

    def _auto_answer(self, body: Mapping[str, Any]) -> _Answer:
        """Call every offered tool that has no result yet; once all have results, answer."""
        tools = _offered_tools(body)
        answered, unknown_results = _answered_tools(body, self._call_names)
        pending = {name: schema for name, schema in tools.items() if name not in answered}
        sentence = _answer_sentence(_last_user_text(body))
        # A result we cannot attribute to a tool still means the tools ran: answer, don't loop.
        if pending and not unknown_results:
            return _Answer(
                calls=tuple(
                    self._new_call(name, json.dumps(sample_for_schema(schema, answer=sentence)))
                    for name, schema in pending.items()
                )
            )
        schema = _requested_schema(body)
        if schema is None:
            return _Answer(text=sentence)
        return _Answer(text=json.dumps(sample_for_schema(schema, answer=sentence)))


async def serve(host: str, port: int, auto: bool = True, latency: float = 0.0) -> None:
    """Run a scripted LLM server on ``host:port`` until cancelled (``taskroom llm serve-test``)."""
    server = ScriptedLLMServer(auto=auto, latency=latency)
    await server.start(host, port)
    try:
        await asyncio.get_running_loop().create_future()
    finally:
        await server.stop()


# --------------------------------------------------------------------------- auto mode


def _offered_tools(body: Mapping[str, Any]) -> dict[str, Any]:
    """Function tools the request lets the model call now: name -> parameters schema."""
    tools: dict[str, Any] = {}
    for tool in body.get("tools") or ():
        if not isinstance(tool, dict) or tool.get("type") != "function":
            continue
        # Chat nests the definition under "function"; Responses keeps it flat.
        spec = tool["function"] if isinstance(tool.get("function"), dict) else tool
        if isinstance(spec.get("name"), str):
            tools[spec["name"]] = spec.get("parameters") or {}
    choice = body.get("tool_choice")
    if choice == "none":
        return {}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("name") or (choice.get("function") or {}).get("name")
        return {name: tools[name]} if name in tools else {}
    return tools


def _conversation(body: Mapping[str, Any]) -> Any:
    return body["messages"] if "messages" in body else body.get("input")


def _answered_tools(body: Mapping[str, Any], known: Mapping[str, str]) -> tuple[set[str], bool]:
    """Names of tools with a result in the conversation, and whether some result is unattributed.

    Both wire formats are read: Responses ``function_call``/``function_call_output`` items and
    Chat assistant ``tool_calls`` with ``tool`` messages.
    """
    items = _conversation(body)
    if not isinstance(items, list):
        return set(), False
    names: dict[Any, Any] = {}
    result_ids: list[Any] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "function_call":
            names[item.get("call_id")] = item.get("name")
        elif item.get("type") == "function_call_output":
            result_ids.append(item.get("call_id"))
        elif item.get("role") == "tool":
            result_ids.append(item.get("tool_call_id"))
        for call in item.get("tool_calls") or ():
            if isinstance(call, dict):
                names[call.get("id")] = (call.get("function") or {}).get("name")
    answered: set[str] = set()
    unknown = False
    for call_id in result_ids:
        name = names.get(call_id) or known.get(call_id)
        if isinstance(name, str):
            answered.add(name)
        else:
            unknown = True
    return answered, unknown


def _last_user_text(body: Mapping[str, Any]) -> str:
    items = _conversation(body)
    if isinstance(items, str):
        return items
    for item in reversed(items if isinstance(items, list) else ()):
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                parts = [p.get("text") for p in content if isinstance(p, dict)]
                return " ".join(p for p in parts if isinstance(p, str))
            return ""
    return ""


def _answer_sentence(prompt: str) -> str:
    prompt = " ".join(prompt.split())
    return f"Scripted answer to: {prompt[:60]}" if prompt else "Scripted answer."


def _requested_schema(body: Mapping[str, Any]) -> Any:
    """The schema a structured answer must fit, or ``None`` when plain text is wanted."""
    fmt = body.get("response_format")  # Chat Completions
    if isinstance(fmt, dict):
        schema = (fmt.get("json_schema") or {}).get("schema")
    else:
        text_config = body.get("text")  # Responses
        fmt = text_config.get("format") if isinstance(text_config, dict) else None
        if not isinstance(fmt, dict):
            return None
        schema = fmt.get("schema")
    if fmt.get("type") == "json_schema":
        return schema or {}
    if fmt.get("type") == "json_object":
        return _JSON_OBJECT_SCHEMA
    return None


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


# --------------------------------------------------------------------------- wire formats


def _hex() -> str:
    return uuid.uuid4().hex[:24]


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _model_card(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 1700000000, "owned_by": "scripted"}


def _error_response(status: int, message: str, *, retry_after: float | None = None) -> web.Response:
    """An error in OpenAI's shape, which the ``openai`` client maps to its exception classes."""
    kind, code = _ERROR_KINDS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", f"http_{status}")
    )
    headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def _tokens(value: Any) -> int:
    """A plausible token count: about four characters a token."""
    if value is None or value == "" or value == []:
        return 0
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return max(1, math.ceil(len(text) / 4))


def _usage(body: Mapping[str, Any], answer: _Answer, keys: tuple[str, ...]) -> tuple[int, int]:
    prompt = _tokens({k: body[k] for k in keys if body.get(k) is not None})
    completion = _tokens(answer.text) + sum(
        _tokens(call.name) + _tokens(call.arguments) for call in answer.calls
    )
    return prompt, completion


def _pieces(text: str) -> list[str]:
    """Split text into word-sized deltas whose concatenation is the text."""
    return re.findall(r"\s*\S+|\s+$", text)


def _responses_payload(body: Mapping[str, Any], model: str, answer: _Answer) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    if answer.text is not None:
        output.append(
            {
                "id": f"msg_{_hex()}",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [
                    {"type": "output_text", "text": answer.text, "annotations": [], "logprobs": []}
                ],
            }
        )
    for call in answer.calls:
        output.append(
            {
                "id": f"fc_{_hex()}",
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
                "status": "completed",
            }
        )
    input_tokens, output_tokens = _usage(body, answer, ("instructions", "input", "tools", "text"))
    return {
        "id": f"resp_{_hex()}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "metadata": body.get("metadata") or {},
        "user": body.get("user"),
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
    }


def _responses_events(final: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The Responses SSE events leading to ``final``, in the order OpenAI sends them."""
    started = {**final, "status": "in_progress", "output": [], "usage": None}
    yield {"type": "response.created", "response": started}
    yield {"type": "response.in_progress", "response": started}
    for index, item in enumerate(final["output"]):
        item_id = item["id"]
        where = {"item_id": item_id, "output_index": index}
        if item["type"] == "message":
            part = item["content"][0]
            yield {
                "type": "response.output_item.added",
                "output_index": index,
                "item": {**item, "status": "in_progress", "content": []},
            }
            empty_part = {**part, "text": ""}
            yield {
                "type": "response.content_part.added",
                **where,
                "content_index": 0,
                "part": empty_part,
            }
            for piece in _pieces(part["text"]):
                yield {
                    "type": "response.output_text.delta",
                    **where,
                    "content_index": 0,
                    "delta": piece,
                    "logprobs": [],
                }
            yield {
                "type": "response.output_text.done",
                **where,
                "content_index": 0,
                "text": part["text"],
                "logprobs": [],
            }
            yield {"type": "response.content_part.done", **where, "content_index": 0, "part": part}
        else:
            yield {
                "type": "response.output_item.added",
                "output_index": index,
                "item": {**item, "status": "in_progress", "arguments": ""},
            }
            for piece in _pieces(item["arguments"]):
                yield {"type": "response.function_call_arguments.delta", **where, "delta": piece}
            yield {
                "type": "response.function_call_arguments.done",
                **where,
                "name": item["name"],
                "arguments": item["arguments"],
            }
        yield {"type": "response.output_item.done", "output_index": index, "item": item}
    yield {"type": "response.completed", "response": final}


def _chat_payload(body: Mapping[str, Any], model: str, answer: _Answer) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.text, "refusal": None}
    if answer.calls:
        message["tool_calls"] = [
            {
                "id": call.call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in answer.calls
        ]
    prompt_tokens, completion_tokens = _usage(
        body, answer, ("messages", "tools", "response_format")
    )
    return {
        "id": f"chatcmpl-{_hex()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if answer.calls else "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }


def _chat_chunks(final: dict[str, Any], *, include_usage: bool) -> Iterator[dict[str, Any]]:
    """``chat.completion.chunk`` objects for ``final``; usage only if the client asked for it."""
    head = {
        "id": final["id"],
        "object": "chat.completion.chunk",
        "created": final["created"],
        "model": final["model"],
        "system_fingerprint": None,
    }

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return {**head, "choices": [choice]}

    choice = final["choices"][0]
    message = choice["message"]
    yield chunk({"role": "assistant", "content": "" if message["content"] is not None else None})
    for piece in _pieces(message["content"] or ""):
        yield chunk({"content": piece})
    for index, call in enumerate(message.get("tool_calls") or ()):
        opening = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
        yield chunk({"tool_calls": [{"index": index, **opening}]})
        for piece in _pieces(call["function"]["arguments"]):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, choice["finish_reason"])
    if include_usage:
        yield {**head, "choices": [], "usage": final["usage"]}


async def _write_sse(
    request: web.Request, events: Iterable[dict[str, Any]], *, done_marker: bool
) -> web.StreamResponse:
    """Stream ``events`` as SSE: Responses events are named and numbered, Chat ends in [DONE]."""
    response = web.StreamResponse(
        headers={"content-type": "text/event-stream", "cache-control": "no-cache"}
    )
    await response.prepare(request)
    for sequence, event in enumerate(events):
        if done_marker:
            frame = f"data: {json.dumps(event)}\n\n"
        else:
            event["sequence_number"] = sequence
            frame = f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"
        await response.write(frame.encode())
    if done_marker:
        await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response
