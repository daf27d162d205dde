"""The public names of taskroom.agents, taskroom.toolkits and taskroom.host, and what
importing them costs: heavy libraries load only with the names that need them."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

PUBLIC: dict[str, list[str]] = {
    "taskroom.agents": [
        "AgentCallContext",
        "ChatContext",
        "DynamicLLMTaskRunner",
        "LLMAdapter",
        "LLMError",
        "LLMTaskRunner",
        "OpenAIChatCompletionsAdapter",
        "OpenAICompletionsAdapter",
        "OpenAIResponsesAdapter",
        "RequiredSchema",
        "RequiredToolkit",
        "TaskContext",
        "TaskRunner",
        "ToolResponseAdapter",
    ],
    "taskroom.toolkits": [
        "FunctionTool",
        "HostingRoom",
        "JsonResponse",
        "RemoteToolkit",
        "RequiredSchema",
        "RequiredToolkit",
        "RoomConnection",
        "TextResponse",
        "Tool",
        "ToolAnnotations",
        "ToolContext",
        "ToolSpec",
        "Toolkit",
        "check_schema",
        "tool",
    ],
    "taskroom.host": ["RoomClient", "RoomServer", "ServiceHost", "create_token"],
    "taskroom.agents.testing": [
        "FunctionModel",
        "ScriptedLLMServer",
        "TestModel",
        "TurnInfo",
        "delay",
        "hang",
        "http_error",
        "invalid_json",
        "json_output",
        "sample_for_schema",
        "serve",
        "text",
        "tool_calls",
    ],
}

HEAVY = ("openai", "aiohttp", "websockets", "mcp", "jwt", "pydantic", "jsonschema")


def loaded_after(code: str) -> set[str]:
    """Top-level names of the modules loaded by running ``code`` in a fresh interpreter."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_public_names_are_exported_and_resolve(package: str) -> None:
    module = importlib.import_module(package)
    missing = [name for name in PUBLIC[package] if name not in module.__all__]
    assert not missing, f"{package} no longer exports {missing}"
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name} does not resolve"
    assert set(module.__all__) <= set(dir(module))


def test_unknown_names_raise_attribute_error() -> None:
    import taskroom.agents
    import taskroom.host

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        taskroom.agents.Nope  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        taskroom.host.Nope  # noqa: B018


def test_one_name_one_object_across_packages() -> None:
    import taskroom.agents
    import taskroom.host
    import taskroom.toolkits
    from taskroom.host.client.room_client import RoomClient
    from taskroom.toolkits.requirements import RequiredSchema, RequiredToolkit

    assert taskroom.agents.RequiredToolkit is taskroom.toolkits.RequiredToolkit is RequiredToolkit
    assert taskroom.agents.RequiredSchema is taskroom.toolkits.RequiredSchema is RequiredSchema
    assert taskroom.host.RoomClient is RoomClient


MESHAGENT_HOMES = {
    "taskroom.agents": [
        "TaskRunner",
        "LLMTaskRunner",
        "DynamicLLMTaskRunner",
        "AgentCallContext",
        "LLMAdapter",
        "ToolResponseAdapter",
        "OpenAIResponsesAdapter",
        "OpenAIChatCompletionsAdapter",
        "OpenAICompletionsAdapter",
        "RequiredToolkit",
        "RequiredSchema",
    ],
    "taskroom.toolkits": [
        "Tool",
        "Toolkit",
        "RemoteToolkit",
        "ToolContext",
        "tool",
        "JsonResponse",
        "TextResponse",
    ],
    "taskroom.host": ["ServiceHost", "RoomClient"],
}
"""Where a MeshAgent program's imports point after porting (docs/meshagent.md)."""


@pytest.mark.parametrize("package", sorted(MESHAGENT_HOMES))
def test_meshagent_names_have_a_home(package: str) -> None:
    module = importlib.import_module(package)
    assert set(MESHAGENT_HOMES[package]) <= set(module.__all__)


def test_meshagent_aliases_are_the_same_objects() -> None:
    import taskroom.agents

    agents = taskroom.agents
    assert agents.OpenAICompletionsAdapter is agents.OpenAIChatCompletionsAdapter
    assert agents.AgentCallContext is agents.TaskContext


def test_importing_host_imports_nothing_heavy() -> None:
    loaded = loaded_after("import taskroom.host")
    assert not loaded & set(HEAVY)


def test_importing_agents_imports_nothing_heavy_until_a_name_is_used() -> None:
    assert not loaded_after("import taskroom.agents") & set(HEAVY)
    runners = loaded_after("from taskroom.agents import LLMTaskRunner, RequiredToolkit")
    assert "openai" not in runners
    assert "openai" in loaded_after("from taskroom.agents import OpenAIResponsesAdapter")


def test_in_process_test_models_need_no_http_server() -> None:
    loaded = loaded_after("from taskroom.agents.testing import FunctionModel, TestModel, text")
    assert not loaded & {"openai", "aiohttp", "websockets"}


def test_each_host_name_loads_only_its_own_layer() -> None:
    client = loaded_after("from taskroom.host import RoomClient")
    assert "websockets" in client
    assert "openai" not in client and "mcp" not in client
    token = loaded_after("from taskroom.host import create_token")
    assert "jwt" in token
    assert not token & {"websockets", "aiohttp", "openai", "mcp"}
