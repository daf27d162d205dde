"""A scripted, OpenAI-compatible LLM server for tests, benchmarks and the offline demo.

No real LLM is reachable where this project is built and tested, so adapters are exercised
against this server through the real ``openai`` client over real HTTP. It speaks the Responses
and Chat Completions APIs, streaming and not. Each request consumes one scripted step (per-model
scripts first, then the shared FIFO); when the script is empty, *auto* mode calls every offered
tool once and then answers with text, or with JSON that fits the requested schema.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, NoReturn

from aiohttp import web
from multidict import CIMultiDict

from taskroom.agents.testing import request_body
from taskroom.agents.testing.payloads import (
    Answer,
    Call,
    chat_chunks,
    chat_payload,
    error_response,
    model_card,
    new_id,
    responses_events,
    responses_payload,
    write_sse,
)
from taskroom.agents.testing.sampler import auto_reply
from taskroom.agents.testing.steps import (
    DelayStep,
    HangStep,
    HttpErrorStep,
    Step,
    TextStep,
    ToolCallsStep,
)

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

_Api = Literal["responses", "chat"]


@dataclass(slots=True)
class RecordedRequest:
    """One request as received, so tests can assert what a client sent and when.

    ``started_at``/``finished_at`` are ``time.monotonic()`` values; ``finished_at`` stays
    ``None`` while the request is in flight. ``headers`` look up case-insensitively.
    ``disconnected`` is set when the client closed the connection before the answer.
    """

    method: str
    path: str
    body: Any
    headers: Mapping[str, str]
    started_at: float
    finished_at: float | None = None
    disconnected: bool = False


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
                    return error_response(400, "request body is not valid JSON")
            return await handler(request)
        except asyncio.CancelledError:
            # With handler_cancellation, aiohttp cancels the handler when the client
            # closes the connection: the one sign a server has of a cancelled request.
            record.disconnected = True
            raise
        finally:
            record.finished_at = time.monotonic()

    async def _handle_models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [model_card(m) for m in MODELS]})

    async def _handle_model(self, request: web.Request) -> web.Response:
        return web.json_response(model_card(request.match_info["model"]))

    async def _handle_responses(self, request: web.Request) -> web.StreamResponse:
        return await self._handle_llm(request, "responses")

    async def _handle_chat(self, request: web.Request) -> web.StreamResponse:
        return await self._handle_llm(request, "chat")

    async def _handle_llm(self, request: web.Request, api: _Api) -> web.StreamResponse:
        body = await request.json() if request.body_exists else None
        if not isinstance(body, dict):
            return error_response(400, "request body must be a JSON object")
        model = str(body.get("model") or _DEFAULT_MODEL)
        # The step is taken on arrival so concurrent requests get steps in arrival order.
        step = self._next_step(model)
        logger.debug("%s request for model %s plays %r", api, model, step)
        try:
            await self._sleep(self.latency)
            return await self._play(request, api, body, model, step)
        except _ServerStopping:
            return error_response(503, "scripted LLM server: shutting down")

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
        if step is None:
            if not self.auto:
                logger.warning("%s (request for model %s)", NO_STEP_LEFT, model)
                return error_response(500, NO_STEP_LEFT)
            try:
                step = self._auto_step(body)
            except ValueError as exc:
                logger.exception("scripted LLM server: auto mode failed")
                return error_response(500, f"scripted LLM server: auto mode failed: {exc}")
        match step:
            case HangStep():
                await self._wait_until_stopped()
            case HttpErrorStep(status=status, retry_after=retry_after, message=message):
                return error_response(status, message, retry_after=retry_after)
            case TextStep(content=content):
                answer = Answer(text=content)
            case ToolCallsStep(calls=calls):
                answer = Answer(calls=tuple(self._new_call(name, args) for name, args in calls))
        if api == "responses":
            payload = responses_payload(body, model, answer)
            if body.get("stream") is True:
                return await write_sse(request, responses_events(payload), done_marker=False)
        else:
            payload = chat_payload(body, model, answer)
            if body.get("stream") is True:
                include_usage = (body.get("stream_options") or {}).get("include_usage") is True
                events = chat_chunks(payload, include_usage=include_usage)
                return await write_sse(request, events, done_marker=True)
        return web.json_response(payload)

    def _new_call(self, name: str, arguments: str) -> Call:
        call = Call(call_id=f"call_{new_id()}", name=name, arguments=arguments)
        self._call_names[call.call_id] = name
        return call

    def _auto_step(self, body: Mapping[str, Any]) -> TextStep | ToolCallsStep:
        """Call every offered tool that has no result yet; once all have results, answer."""
        tools = request_body.offered_tools(body)
        answered, unknown_results = request_body.answered_tools(body, self._call_names)
        # A result we cannot attribute to a tool still means the tools ran: answer, don't loop.
        pending = {} if unknown_results else {n: s for n, s in tools.items() if n not in answered}
        return auto_reply(
            pending=pending,
            prompt=request_body.last_user_text(body),
            output_schema=request_body.requested_schema(body),
        )


async def serve(host: str, port: int, auto: bool = True, latency: float = 0.0) -> None:
    """Run a scripted LLM server on ``host:port`` until cancelled (``taskroom llm serve-test``)."""
    server = ScriptedLLMServer(auto=auto, latency=latency)
    await server.start(host, port)
    try:
        await asyncio.get_running_loop().create_future()
    finally:
        await server.stop()


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host
