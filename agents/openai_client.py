"""Building the ``openai`` client, and what both OpenAI-compatible adapters share.

Retries are the official client's: it retries 408/409/429/5xx and connection errors with
exponential backoff and honours ``retry-after``, so adapters never retry on their own. An
error left after those retries becomes :class:`LLMRequestError` with the status code and
the server's own message.

The client speaks HTTP through its aiohttp transport, which costs about half the CPU per
request of the default httpx one (``bench/llm_client.py``); with a thousand tasks in
flight that CPU, not the room, bounds a runner. A cancelled task closes its request's
connection on this transport too, so the server stops generating at once.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from typing import Any

import aiohttp
import openai
from openai import AsyncOpenAI, DefaultAioHttpClient

from taskroom.agents.adapter import DEFAULT_MAX_TURNS, LLMAdapter, LLMError

DEFAULT_MODEL = "gpt-5-mini"
DEFAULT_MAX_RETRIES = 4
DEFAULT_TIMEOUT = 120.0
LOCAL_API_KEY = "not-needed"
"""Sent when a custom ``base_url`` is used without a key: local servers ignore it."""


AS_JSON = frozenset({"input", "tools", "text", "response_format"})
"""Fields sent in ``extra_body``, as they are: they are plain JSON already, and the
client's per-request transform of typed parameters walks every nested dict of them (each
tool's schema, the whole conversation), about a third of its CPU per request. Only
fields the method takes as optional: a required one must stay a keyword."""


@functools.cache
def _method_parameters(function: Callable[..., Any]) -> tuple[frozenset[str], frozenset[str]]:
    params = inspect.signature(function).parameters
    optional = {name for name, p in params.items() if p.default is not inspect.Parameter.empty}
    return frozenset(params), frozenset(optional)


def _parameters(create: Callable[..., Any]) -> tuple[frozenset[str], frozenset[str]]:
    """The keyword names ``create`` takes, and those of them with a default; read once
    per method, not once per request."""
    return _method_parameters(getattr(create, "__func__", create))


def default_model() -> str:
    """The model to use when none is given: ``TASKROOM_MODEL``, else ``gpt-5-mini``."""
    return os.environ.get("TASKROOM_MODEL") or DEFAULT_MODEL


def create_openai_client(
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
    timeout: float = DEFAULT_TIMEOUT,
) -> AsyncOpenAI:
    """An ``AsyncOpenAI`` configured from the arguments, else from the environment.

    ``api_key`` falls back to ``OPENAI_API_KEY`` and ``base_url`` to ``OPENAI_BASE_URL``
    (else OpenAI's own endpoint). A custom ``base_url`` without any key (vLLM, Ollama,
    llama.cpp, LM Studio) gets a placeholder key; OpenAI's endpoint without a key is an
    :class:`LLMError` naming the variable to set.
    """
    api_key = api_key or os.environ.get("OPENAI_API_KEY") or None
    base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
    if api_key is None:
        if base_url is None:
            raise LLMError(
                "no OpenAI API key: pass api_key or set OPENAI_API_KEY "
                "(or set OPENAI_BASE_URL for a local OpenAI-compatible server)"
            )
        api_key = LOCAL_API_KEY
    return AsyncOpenAI(
        api_key=api_key,
        base_url=base_url,
        max_retries=max_retries,
        timeout=timeout,
        http_client=DefaultAioHttpClient(timeout=timeout),
    )


class LLMRequestError(LLMError):
    """An LLM API request failed after the client's retries.

    ``status_code`` is the HTTP status (``None`` for connection failures and timeouts) and
    ``server_message`` the error message the server sent, when it sent one.
    """

    def __init__(
        self, message: str, *, status_code: int | None = None, server_message: str | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.server_message = server_message


def _server_message(exc: openai.APIStatusError) -> str | None:
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, str) and message:
            return message
        return None
    if isinstance(body, str) and body.strip():
        return body.strip()[:500]
    return None


def _refused_connection(exc: BaseException) -> BaseException | None:
    """The aiohttp error behind ``exc`` when the connection failed for a reason other than
    time (refused, unreachable). The aiohttp transport reports those as connect timeouts,
    which would send the reader looking for a slow server instead of a missing one."""
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, aiohttp.ClientConnectorError) and not isinstance(cause, TimeoutError):
            return cause
        cause = cause.__cause__
    return None


def llm_error(exc: openai.OpenAIError, *, api: str, model: str) -> LLMRequestError:
    """Describe an ``openai`` exception (after the client's retries) as an :class:`LLMError`."""
    request = getattr(exc, "request", None)
    where = f"{api} request for model {model!r}"
    if request is not None:
        where += f" to {request.url}"
        retries = request.headers.get("x-stainless-retry-count")
        if retries and retries != "0":
            where += f" (after {retries} retries)"
    if isinstance(exc, openai.APIStatusError):
        server = _server_message(exc)
        message = f"{where} failed with HTTP {exc.status_code}: {server or 'no error message'}"
        if exc.request_id:
            message += f" [request id {exc.request_id}]"
        return LLMRequestError(message, status_code=exc.status_code, server_message=server)
    refused = _refused_connection(exc)
    if isinstance(exc, openai.APITimeoutError) and refused is None:
        return LLMRequestError(f"{where} timed out")
    if isinstance(exc, openai.APIConnectionError):
        cause = refused or exc.__cause__
        detail = f"{type(cause).__name__}: {cause}" if cause is not None else exc.message
        return LLMRequestError(f"{where} could not connect: {detail}")
    return LLMRequestError(f"{where} failed: {type(exc).__name__}: {exc}")


def merge_options(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``override``, merging nested dicts instead of replacing them."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_options(merged[key], value)
        else:
            merged[key] = value
    return merged


class OpenAICompatibleAdapter(LLMAdapter):
    """Client handling, request options and error wrapping shared by the OpenAI adapters.

    ``request_options`` are merged into every request (nested dicts merged, the adapter's
    own fields winning); options the ``openai`` method does not know go to ``extra_body``,
    so server-specific fields (``top_k`` for vLLM, ...) pass through.
    """

    api_name = "LLM"

    def __init__(
        self,
        *,
        model: str | None = None,
        client: AsyncOpenAI | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        timeout: float = DEFAULT_TIMEOUT,
        max_turns: int = DEFAULT_MAX_TURNS,
        parallel_tool_calls: bool = True,
        request_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model=model or default_model(), max_turns=max_turns)
        self._client = client
        self._owns_client = client is None
        self._client_args: dict[str, Any] = {
            "api_key": api_key,
            "base_url": base_url,
            "max_retries": max_retries,
            "timeout": timeout,
        }
        self.parallel_tool_calls = parallel_tool_calls
        self.request_options = dict(request_options or {})

    @property
    def client(self) -> AsyncOpenAI:
        """The ``openai`` client, created on first use when none was given."""
        if self._client is None:
            self._client = create_openai_client(**self._client_args)
        return self._client

    async def aclose(self) -> None:
        """Close the client if this adapter created it."""
        if self._client is not None and self._owns_client:
            client, self._client = self._client, None
            await client.close()

    async def _request(self, create: Callable[..., Any], fields: dict[str, Any]) -> Any:
        """Call ``create`` with ``fields`` plus the request options; wrap API errors."""
        options = merge_options(self.request_options, fields)
        known, optional = _parameters(create)
        extra = {
            k: options.pop(k)
            for k in list(options)
            if k not in known or (k in AS_JSON and k in optional)
        }
        if extra:
            options["extra_body"] = merge_options(options.get("extra_body") or {}, extra)
        try:
            return await create(**options)
        except openai.OpenAIError as exc:
            raise llm_error(exc, api=self.api_name, model=str(fields.get("model"))) from exc
