"""Providers by name: which OpenAI-compatible endpoint and key serve a model name.

Many providers speak the OpenAI API, so one ``openai`` client type reaches them all; only
the base URL and the key differ. A :class:`ProviderTable` maps a model name to its
provider, by an explicit ``<provider>/`` prefix or by the provider's name patterns, and
holds each provider's defaults for mcp-task's model classes. The table is the built-in
entries, then a TOML file, then ``TASKROOM_PROVIDER_<NAME>_*`` variables over them.
"""

from __future__ import annotations

import fnmatch
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI

from taskroom.agents.adapter import DEFAULT_MAX_TURNS, LLMAdapter, LLMError, Turn
from taskroom.agents.openai_chat import OpenAIChatCompletionsAdapter
from taskroom.agents.openai_client import OpenAICompatibleAdapter, default_model
from taskroom.agents.openai_responses import OpenAIResponsesAdapter

ENV_PREFIX = "TASKROOM_PROVIDER_"
DEFAULT_PROVIDER_ENV = "TASKROOM_PROVIDER"
PROVIDERS_FILE_ENV = "TASKROOM_PROVIDERS_FILE"
LOCAL_API_KEY = "not-needed"
"""Sent to local servers (Ollama, vLLM, ...), which need no key but the client wants one."""
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class ProviderError(LLMError):
    """A model cannot be routed (unknown provider, missing key, bad config); says what to do."""


@dataclass(frozen=True)
class Provider:
    """One OpenAI-compatible endpoint."""

    name: str
    base_url: str | None
    """``None``: the ``openai`` client's own default (api.openai.com)."""
    key_env: tuple[str, ...] = ()
    """Variables that may hold the key, first set wins; empty for servers that need none."""
    models: tuple[str, ...] = ()
    """Glob patterns of model names this provider serves."""
    classes: Mapping[str, str] = field(default_factory=dict)
    """This provider's model for each of mcp-task's model classes."""
    chat_completions: bool = True
    """Whether to use Chat Completions (most compatible endpoints) rather than Responses."""

    @property
    def needs_key(self) -> bool:
        return bool(self.key_env)

    def api_key(self, environ: Mapping[str, str]) -> str:
        """The key from the first variable set; a ProviderError naming them when none is."""
        if not self.key_env:
            return LOCAL_API_KEY
        for var in self.key_env:
            if environ.get(var):
                return environ[var]
        raise ProviderError(
            f"provider {self.name!r} has no API key: set {' or '.join(self.key_env)}"
        )

    def serves(self, model: str) -> bool:
        return any(fnmatch.fnmatchcase(model, p) for p in self.models)


_OPENAI_CLASSES = {
    "standard": "gpt-5-mini",
    "mini": "gpt-5-nano",
    "reasoning": "gpt-5",
    "reasoning_mini": "o4-mini",
    "monologue": "gpt-5",
    "metacognition": "gpt-5",
    "code": "gpt-5",
    "writing": "gpt-5-mini",
    "summary": "gpt-5-mini",
    "vision": "gpt-5",
    "vision_mini": "gpt-5-mini",
    "search": "gpt-5-mini",
    "long": "gpt-4.1",
}
_ANTHROPIC_CLASSES = {
    "standard": "claude-sonnet-4-5",
    "mini": "claude-haiku-4-5",
    "reasoning": "claude-opus-4-1",
    "reasoning_mini": "claude-sonnet-4-5",
    "monologue": "claude-opus-4-1",
    "metacognition": "claude-opus-4-1",
    "code": "claude-sonnet-4-5",
    "writing": "claude-sonnet-4-5",
    "summary": "claude-haiku-4-5",
    "vision": "claude-sonnet-4-5",
    "vision_mini": "claude-haiku-4-5",
    "search": "claude-haiku-4-5",
    "long": "claude-sonnet-4-5",
}
_GEMINI_CLASSES = {
    "standard": "gemini-2.5-flash",
    "mini": "gemini-2.5-flash-lite",
    "reasoning": "gemini-2.5-pro",
    "reasoning_mini": "gemini-2.5-flash",
    "monologue": "gemini-2.5-pro",
    "metacognition": "gemini-2.5-pro",
    "code": "gemini-2.5-pro",
    "writing": "gemini-2.5-pro",
    "summary": "gemini-2.5-flash",
    "vision": "gemini-2.5-pro",
    "vision_mini": "gemini-2.5-flash",
    "search": "gemini-2.5-flash",
    "long": "gemini-2.5-pro",
}
_XAI_CLASSES = {
    "standard": "grok-4-fast",
    "mini": "grok-3-mini",
    "reasoning": "grok-4",
    "reasoning_mini": "grok-3-mini",
    "monologue": "grok-4",
    "metacognition": "grok-4",
    "code": "grok-code-fast-1",
    "writing": "grok-4",
    "summary": "grok-4-fast",
    "vision": "grok-4",
    "vision_mini": "grok-4-fast",
    "search": "grok-4-fast",
    "long": "grok-4-fast",
}

BUILTIN_PROVIDERS: tuple[Provider, ...] = (
    Provider(
        "openai",
        None,
        ("OPENAI_API_KEY",),
        ("gpt-*", "o1*", "o3*", "o4*", "chatgpt-*", "codex-*"),
        _OPENAI_CLASSES,
        chat_completions=False,
    ),
    Provider(
        "anthropic",
        "https://api.anthropic.com/v1/",
        ("ANTHROPIC_API_KEY",),
        ("claude-*",),
        _ANTHROPIC_CLASSES,
    ),
    Provider(
        "gemini",
        "https://generativelanguage.googleapis.com/v1beta/openai/",
        ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
        ("gemini-*",),
        _GEMINI_CLASSES,
    ),
    Provider(
        "xai", "https://api.x.ai/v1", ("XAI_API_KEY", "GROK_API_KEY"), ("grok-*",), _XAI_CLASSES
    ),
    Provider("openrouter", "https://openrouter.ai/api/v1", ("OPENROUTER_API_KEY",), ("*/*",)),
    Provider("ollama", "http://localhost:11434/v1"),
    Provider("vllm", "http://localhost:8000/v1"),
    Provider("llamacpp", "http://localhost:8080/v1"),
    Provider("lmstudio", "http://localhost:1234/v1"),
)


@dataclass(frozen=True)
class Route:
    """Where one model name goes: the provider and the name that provider knows it by."""

    provider: Provider
    model: str
    base_url: str | None
    api_key: str


@dataclass(frozen=True)
class ProviderTable:
    """Providers by name, and the rule that picks one for a model name."""

    providers: Mapping[str, Provider]
    default: str = "openai"
    """The provider for model names no pattern claims."""
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    @classmethod
    def load(
        cls, config_file: Path | None = None, environ: Mapping[str, str] | None = None
    ) -> ProviderTable:
        """Built-in entries, then the TOML file (``TASKROOM_PROVIDERS_FILE`` if none is
        given), then ``TASKROOM_PROVIDER_<NAME>_{BASE_URL,KEY_ENV,MODELS}``."""
        environ = os.environ if environ is None else environ
        providers = {p.name: p for p in BUILTIN_PROVIDERS}
        if environ.get("OPENAI_BASE_URL"):
            # The openai client's own variable: another server behind OpenAI's API, so not
            # OpenAI's model list, and (like the client) no key needed when none is set.
            providers["openai"] = replace(
                providers["openai"],
                base_url=environ["OPENAI_BASE_URL"],
                classes={},
                key_env=("OPENAI_API_KEY",) if environ.get("OPENAI_API_KEY") else (),
            )
        default = "openai"
        path = config_file or (
            Path(environ[PROVIDERS_FILE_ENV]) if environ.get(PROVIDERS_FILE_ENV) else None
        )
        if path is not None:
            file_default, entries = _read_file(path)
            default = file_default or default
            for name, values in entries.items():
                providers[name] = _merged(
                    providers.get(name), name, values, f"providers file {path}"
                )
        for name, values in _env_entries(environ).items():
            providers[name] = _merged(providers.get(name), name, values, "environment")
        default = environ.get(DEFAULT_PROVIDER_ENV) or default
        table = cls(providers, default, environ)
        table.get(default)  # an unknown default provider is a configuration error, now
        return table

    @property
    def names(self) -> list[str]:
        return sorted(self.providers)

    def get(self, name: str) -> Provider:
        provider = self.providers.get(name)
        if provider is None:
            raise ProviderError(
                f"unknown provider {name!r}; known providers: {', '.join(self.names)}"
            )
        return provider

    def claimant(self, model: str) -> tuple[Provider, str] | None:
        """The provider that names ``model`` as its own, and the name to send it; else None.

        ``<provider>/<model>`` names the provider outright; otherwise the first provider
        whose patterns match, the default provider first.
        """
        head, sep, rest = model.partition("/")
        if sep and head in self.providers and rest:
            return self.providers[head], rest
        default = self.get(self.default)
        for provider in (default, *self.providers.values()):
            if provider.serves(model):
                return provider, model
        return None

    def provider_for(self, model: str) -> tuple[Provider, str]:
        """The provider serving ``model`` (the default when none claims it) and its name there."""
        return self.claimant(model) or (self.get(self.default), model)

    def route(self, model: str) -> Route:
        """Base URL and key for ``model``; ProviderError names the variable if a key is missing."""
        provider, name = self.provider_for(model)
        try:
            key = provider.api_key(self.environ)
        except ProviderError:
            raise ProviderError(
                f"model {model!r} is served by provider {provider.name!r}, which has no API "
                f"key: set {' or '.join(provider.key_env)} (or name another provider as "
                f"'<provider>/{model}'; known: {', '.join(self.names)})"
            ) from None
        return Route(provider, name, provider.base_url, key)

    def class_default(self, model_class: str, provider: str | None = None) -> str | None:
        """The built-in (or configured) model of ``provider`` for a model class, if any."""
        return self.get(provider or self.default).classes.get(model_class)

    def client(self, route: Route, **options: Any) -> AsyncOpenAI:
        """An ``openai`` client for a route (one per provider is enough)."""
        return AsyncOpenAI(api_key=route.api_key, base_url=route.base_url, **options)


def _merged(base: Provider | None, name: str, values: dict[str, Any], where: str) -> Provider:
    if not _NAME.match(name):
        raise ProviderError(
            f"{where}: {name!r} is not a provider name (lower-case letters, digits, _)"
        )
    known = {"base_url", "key_env", "models", "classes", "chat_completions"}
    unknown = set(values) - known
    if unknown:
        raise ProviderError(
            f"{where}: provider {name!r} has unknown settings {sorted(unknown)}; "
            f"use {', '.join(sorted(known))}"
        )
    if base is None and "base_url" not in values:
        raise ProviderError(f"{where}: new provider {name!r} needs a base_url")
    provider = base or Provider(name, None)
    changes: dict[str, Any] = {}
    if "base_url" in values:
        changes["base_url"] = _text(values["base_url"], f"{where}: {name}.base_url") or None
    if "key_env" in values:
        changes["key_env"] = _names(values["key_env"], f"{where}: {name}.key_env")
    if "models" in values:
        changes["models"] = _names(values["models"], f"{where}: {name}.models")
    if "classes" in values:
        classes = values["classes"]
        if not isinstance(classes, dict) or not all(
            isinstance(v, str) and v for v in classes.values()
        ):
            raise ProviderError(f"{where}: {name}.classes must map class names to model names")
        changes["classes"] = {**provider.classes, **{k.lower(): v for k, v in classes.items()}}
    if "chat_completions" in values:
        if not isinstance(values["chat_completions"], bool):
            raise ProviderError(f"{where}: {name}.chat_completions must be true or false")
        changes["chat_completions"] = values["chat_completions"]
    return replace(provider, **changes)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ProviderError(f"{where} must be a string")
    return value.strip()


def _names(value: Any, where: str) -> tuple[str, ...]:
    """A list of strings, or one string with comma-separated items (as variables give)."""
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    raise ProviderError(f"{where} must be a list of strings")


def read_toml(path: Path, what: str, error: type[Exception] = ProviderError) -> dict[str, Any]:
    """A TOML file's tables, or ``error`` saying which file (``what``) could not be used."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what} {path} is not valid TOML: {exc}") from None


def _read_file(path: Path) -> tuple[str | None, dict[str, dict[str, Any]]]:
    data = read_toml(path, "providers file")
    entries = data.get("providers", {})
    if not isinstance(entries, dict) or not all(isinstance(v, dict) for v in entries.values()):
        raise ProviderError(f"providers file {path}: [providers.<name>] must be tables")
    default = data.get("default")
    if default is not None and not isinstance(default, str):
        raise ProviderError(f"providers file {path}: default must be a provider name")
    return default, entries


_ENV_FIELDS = {"BASE_URL": "base_url", "KEY_ENV": "key_env", "MODELS": "models"}


def _env_entries(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        for suffix, field_name in _ENV_FIELDS.items():
            if key.endswith("_" + suffix):
                name = key[len(ENV_PREFIX) : -len(suffix) - 1].lower()
                entries.setdefault(name, {})[field_name] = value
                break
    return entries


class RoutedAdapter(LLMAdapter):
    """One adapter over every provider: each model turn goes to the provider of its model.

    The loop is :class:`LLMAdapter`'s; only :meth:`complete` is routed, to one
    OpenAI-compatible adapter per provider (Responses for OpenAI's own endpoint, Chat
    Completions for the others), each on the official ``openai`` client.
    """

    def __init__(
        self,
        table: ProviderTable | None = None,
        *,
        model: str | None = None,
        max_turns: int = DEFAULT_MAX_TURNS,
        **adapter_options: Any,
    ) -> None:
        super().__init__(model=model or default_model(), max_turns=max_turns)
        self.table = table or ProviderTable.load()
        self.adapter_options = adapter_options
        self._adapters: dict[str, OpenAICompatibleAdapter] = {}

    def adapter_for(self, model: str) -> tuple[OpenAICompatibleAdapter, str]:
        """The provider's adapter and the model name it knows; ProviderError without a key."""
        route = self.table.route(model)
        adapter = self._adapters.get(route.provider.name)
        if adapter is None:
            kind = (
                OpenAIChatCompletionsAdapter
                if route.provider.chat_completions
                else OpenAIResponsesAdapter
            )
            adapter = kind(
                model=route.model,
                api_key=route.api_key,
                base_url=route.base_url,
                **self.adapter_options,
            )
            self._adapters[route.provider.name] = adapter
        return adapter, route.model

    async def complete(self, *, model: str, **turn: Any) -> Turn:
        """The turn, sent by the adapter of ``model``'s provider under the name it knows."""
        adapter, name = self.adapter_for(model)
        return await adapter.complete(model=name, **turn)

    async def aclose(self) -> None:
        adapters, self._adapters = list(self._adapters.values()), {}
        for adapter in adapters:
            await adapter.aclose()
