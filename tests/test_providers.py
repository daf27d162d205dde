"""Providers by name and model classes with no setup: routing, keys, config, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskroom.agents.providers import ProviderError, ProviderTable
from taskroom.host.mcp.models import BUILTIN_CLASSES, ModelCatalog, ModelConfigError, ModelError

KEYS = {
    "OPENAI_API_KEY": "sk-openai",
    "ANTHROPIC_API_KEY": "sk-ant",
    "GOOGLE_API_KEY": "g-key",
    "XAI_API_KEY": "x-key",
    "OPENROUTER_API_KEY": "or-key",
}


def test_model_names_route_to_their_provider_with_its_key() -> None:
    table = ProviderTable.load(environ=KEYS)
    cases = {
        "gpt-5": ("openai", None, "sk-openai", "gpt-5"),
        "o3": ("openai", None, "sk-openai", "o3"),
        "claude-opus-4-1": ("anthropic", "https://api.anthropic.com/v1/", "sk-ant", None),
        "gemini-2.5-pro": (
            "gemini",
            "https://generativelanguage.googleapis.com/v1beta/openai/",
            "g-key",
            None,
        ),
        "grok-4": ("xai", "https://api.x.ai/v1", "x-key", None),
        "meta-llama/llama-3.3-70b": ("openrouter", "https://openrouter.ai/api/v1", "or-key", None),
        "ollama/llama3.1:8b": ("ollama", "http://localhost:11434/v1", "not-needed", "llama3.1:8b"),
        "lmstudio/qwen3": ("lmstudio", "http://localhost:1234/v1", "not-needed", "qwen3"),
        "something-else": ("openai", None, "sk-openai", "something-else"),
    }
    for model, (provider, base_url, key, sent) in cases.items():
        route = table.route(model)
        assert (route.provider.name, route.base_url, route.api_key) == (provider, base_url, key)
        assert route.model == (sent or model)
    client = table.client(table.route("grok-4"))
    assert str(client.base_url).startswith("https://api.x.ai/v1") and client.api_key == "x-key"


def test_a_provider_without_its_key_names_the_variable_to_set() -> None:
    table = ProviderTable.load(environ={"OPENAI_API_KEY": "sk"})
    with pytest.raises(ProviderError, match="set ANTHROPIC_API_KEY"):
        table.route("claude-sonnet-4-5")
    with pytest.raises(ProviderError, match="set GEMINI_API_KEY or GOOGLE_API_KEY"):
        table.route("gemini-2.5-flash")
    with pytest.raises(ProviderError, match="set OPENAI_API_KEY"):
        ProviderTable.load(environ={}).route("gpt-5")


def test_unknown_providers_list_the_known_ones() -> None:
    with pytest.raises(ProviderError, match="unknown provider 'nope'; known providers: anthropic"):
        ProviderTable.load(environ={"TASKROOM_PROVIDER": "nope"})
    with pytest.raises(ProviderError, match="known providers: .*ollama"):
        ProviderTable.load(environ={}).get("olama")


def test_a_toml_file_and_variables_add_and_change_providers(tmp_path: Path) -> None:
    config = tmp_path / "providers.toml"
    config.write_text(
        'default = "corp"\n'
        "[providers.corp]\n"
        'base_url = "https://llm.corp.example/v1"\n'
        'key_env = ["CORP_KEY"]\n'
        'models = ["corp-*"]\n'
        'classes = { mini = "corp-small" }\n'
        "[providers.ollama]\n"
        'base_url = "http://gpu-box:11434/v1"\n'
    )
    environ = {
        "CORP_KEY": "c",
        "TASKROOM_PROVIDER_VLLM_BASE_URL": "http://vllm:9000/v1",
        "TASKROOM_PROVIDER_VLLM_MODELS": "qwen*, mistral*",
    }
    table = ProviderTable.load(config, environ)
    assert table.route("corp-large").base_url == "https://llm.corp.example/v1"
    assert table.route("unclaimed").provider.name == "corp"  # the file's default
    assert table.route("ollama/phi4").base_url == "http://gpu-box:11434/v1"
    assert table.route("qwen3-32b").base_url == "http://vllm:9000/v1"
    assert table.class_default("mini") == "corp-small"
    config.write_text('[providers.new]\nkey_env = "K"\n')
    with pytest.raises(ProviderError, match="new provider 'new' needs a base_url"):
        ProviderTable.load(config, {})
    config.write_text("[providers.corp]\nbase_urll = 'x'\n")
    with pytest.raises(ProviderError, match=r"unknown settings \['base_urll'\]"):
        ProviderTable.load(config, {})
    config.write_text("[providers\n")
    with pytest.raises(ProviderError, match="not valid TOML"):
        ProviderTable.load(config, {})


def test_openai_base_url_means_another_server_with_no_key_needed() -> None:
    table = ProviderTable.load(environ={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    route = table.route("local-model")
    assert (route.base_url, route.api_key) == ("http://127.0.0.1:9/v1", "not-needed")
    assert table.class_default("mini") is None  # not OpenAI's model list


def test_every_class_resolves_to_taskroom_model_with_no_config() -> None:
    catalog = ModelCatalog.load(environ={"TASKROOM_MODEL": "llama3.1:8b"})
    for name in BUILTIN_CLASSES:
        choice = catalog.resolve(name)
        assert choice.model == "llama3.1:8b", name
        assert "default model (TASKROOM_MODEL)" in choice.reason
    assert catalog.resolve(None).requested == "standard"
    assert catalog.resolve("gpt-5").model == "gpt-5"
    assert catalog.resolve("claude-opus-4-1").reason == "a concrete model name, passed through"
    local = ModelCatalog.load(environ={"TASKROOM_MODEL": "mistral"})
    assert local.resolve("mistral").model == "mistral"  # the default model is no class
    with pytest.raises(ModelError, match="unknown model class 'mixtral'"):
        local.resolve("mixtral")


def test_classes_use_the_active_providers_models_then_config_wins(tmp_path: Path) -> None:
    anthropic = ModelCatalog.load(environ={"TASKROOM_MODEL": "claude-sonnet-4-5"})
    assert anthropic.resolve("mini").model == "claude-haiku-4-5"
    assert "provider anthropic's built-in model" in anthropic.resolve("mini").reason
    openai = ModelCatalog.load(environ={})
    assert openai.resolve("Reasoning").model == "gpt-5"
    config = tmp_path / "models.toml"
    config.write_text('[classes]\nreasoning = "o3"\nsonnet = "claude-sonnet-4-5"\n')
    configured = ModelCatalog.load(
        config, {"TASKROOM_MODEL_REASONING": "o4-mini", "TASKROOM_MODEL": "x-1"}
    )
    assert configured.resolve("reasoning").model == "o4-mini"  # the variable wins
    assert configured.resolve("reasoning").reason == "class 'reasoning' as configured"
    assert configured.resolve("sonnet").model == "claude-sonnet-4-5"  # a new class: an alias
    assert configured.resolve("mini").model == "x-1"


def test_unknown_classes_and_bad_config_are_clear_errors(tmp_path: Path) -> None:
    catalog = ModelCatalog.load(environ={"TASKROOM_MODEL": "m-1"})
    with pytest.raises(ModelError, match="unknown model class 'turbo'") as caught:
        catalog.resolve("turbo")
    for name in ("standard=m-1", "reasoning_mini=m-1", "long=m-1"):
        assert name in str(caught.value)
    config = tmp_path / "models.toml"
    config.write_text("[classes]\nmini = 3\n")
    with pytest.raises(ModelConfigError, match="classes.mini"):
        ModelCatalog.load(config, {})
    with pytest.raises(ModelConfigError, match="unknown provider 'nowhere'"):
        ModelCatalog.load(environ={"TASKROOM_PROVIDER": "nowhere"})
