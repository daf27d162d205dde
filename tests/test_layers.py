"""Layers point one way: protocol <- toolkits/server <- client <- agents <- service host,
gateway <- CLI. Checked at run time (what an import loads, per ``python -X importtime``)
and in the source (what a layer's modules name in their imports)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import taskroom.agents
import taskroom.host.cli
import taskroom.toolkits
from taskroom.host.cli import COMMANDS, load_command

SERVER = (
    "taskroom.host.server",
    "taskroom.host.server.tasks.manager",
    "taskroom.host.server.tasks.store",
)


def imported_by(code: str) -> set[str]:
    """Every module ``code`` imports in a fresh interpreter: the ``-X importtime`` report,
    plus ``sys.modules`` at the end (importtime does not report ``importlib`` imports, which
    the lazy public names use)."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", script], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    reported = {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return reported | set(json.loads(result.stdout.splitlines()[-1]))


def under(modules: set[str], *prefixes: str) -> set[str]:
    return {m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)}


def test_the_client_imports_no_server_task_manager_store_or_aiohttp_server() -> None:
    modules = imported_by("import taskroom.host.client.room_client")
    assert "taskroom.host.client.room_client" in modules  # the probe itself works
    assert not (modules & {*SERVER, "aiohttp.web"})
    assert not under(modules, "taskroom.host.server", "taskroom.agents")


def test_toolkits_import_neither_server_nor_client_nor_agents() -> None:
    modules = imported_by("import taskroom.toolkits")
    assert "taskroom.toolkits.requirements" in modules
    assert not under(
        modules, "taskroom.host.server", "taskroom.host.client", "taskroom.agents", "aiohttp"
    )


def test_agents_import_no_server_service_host_gateway_or_cli() -> None:
    names = ", ".join(n for n in taskroom.agents.__all__ if not n.startswith("OpenAI"))
    modules = imported_by(f"from taskroom.agents import {names}")
    assert "taskroom.agents.llm_task_runner" in modules
    assert not under(
        modules,
        "taskroom.host.server",
        "taskroom.host.service",
        "taskroom.host.mcp",
        "taskroom.host.cli",
        "aiohttp",
    )


def test_cli_help_imports_only_the_cli() -> None:
    modules = imported_by(
        "import sys; sys.argv = ['taskroom', '--help']\n"
        "from taskroom.host.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    sys.stdout.write('\\n')"
    )
    assert "taskroom.host.cli" in modules
    heavy = under(
        modules,
        "taskroom.host.client",
        "taskroom.host.server",
        "taskroom.host.auth",
        "taskroom.agents",
        "openai",
        "mcp",
        "aiohttp",
        "websockets",
        "jwt",
        "rich",
    )
    assert not heavy


def test_tasks_list_help_loads_its_command_but_no_client_or_server() -> None:
    modules = imported_by(
        "import sys; sys.argv = ['taskroom', 'tasks', 'list', '--help']\n"
        "from taskroom.host.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    sys.stdout.write('\\n')"
    )
    assert "taskroom.host.cli.task_commands" in modules
    assert not under(modules, "taskroom.host.cli.room_commands", "taskroom.host.cli.mcp_command")
    assert not under(
        modules, "taskroom.host.client", "taskroom.host.server", "openai", "mcp", "websockets"
    )


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_listed_command_loads_with_the_help_it_is_listed_with(name: str) -> None:
    command = load_command(name)
    assert command.name == name
    assert (command.help or "").strip().splitlines()[0] == COMMANDS[name].help


def source_imports(folder: Path) -> dict[str, set[str]]:
    """File -> every module it imports, TYPE_CHECKING blocks and function bodies included."""
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[str(path.relative_to(folder.parent))] = names
    return found


def test_toolkits_and_agents_name_no_client_or_server_in_their_source() -> None:
    for package in (taskroom.toolkits, taskroom.agents):
        for file, names in source_imports(Path(package.__file__).parent).items():
            wrong = under(names, "taskroom.host.client", "taskroom.host.server")
            assert not wrong, f"{file} imports {wrong}; type against taskroom.toolkits.room"


def test_the_cli_imports_no_example_script() -> None:
    for file, names in source_imports(Path(taskroom.host.cli.__file__).parent).items():
        assert not under(names, "taskroom.invoke"), f"{file} imports an example script"


def test_a_room_server_runs_without_the_cluster_extra(tmp_path: Path) -> None:
    """The cluster's packages (redis, asyncpg) are an extra: without them a single room
    server is built and serves, and only --cluster / a PostgreSQL store ask for them."""
    script = f"""
import asyncio, sys
sys.modules["redis"] = None  # as if not installed: importing it raises ImportError
sys.modules["asyncpg"] = None
from taskroom.host.server.build import build_room_server

async def main():
    server = build_room_server(data_dir={str(tmp_path)!r}, secret="s" * 32)
    url = await server.start("127.0.0.1", 0)
    await server.stop()
    print("served", url.startswith("http://127.0.0.1:"))
    try:
        build_room_server(data_dir={str(tmp_path)!r}, secret="s" * 32,
                          cluster="redis://127.0.0.1:1", node_url="http://127.0.0.1:1",
                          store="postgresql://127.0.0.1:1/x")
    except Exception as exc:
        print("cluster:", type(exc).__name__, exc)

asyncio.run(main())
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "served True"
    assert lines[1].startswith("cluster: ") and "pip install" in lines[1], lines[1]
