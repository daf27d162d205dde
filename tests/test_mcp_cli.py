"""`taskroom mcp` before it joins a room: its help costs no MCP SDK, and settings that
cannot work stop it with one plain error line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from taskroom.agents.workspace_runner import WORKSPACE_AGENT
from taskroom.host.mcp.defaults import DEFAULT_AGENT

from .processes import BIN, free_port

HEAVY = ("mcp", "mcp_types", "openai", "aiohttp", "websockets", "starlette", "uvicorn")


def test_mcp_help_lists_the_flags_without_importing_the_sdk() -> None:
    code = (
        "import json, sys\nsys.argv = ['taskroom', 'mcp', '--help']\n"
        "from taskroom.host.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    *help_lines, modules = out.splitlines()
    names = json.loads(modules)
    loaded = {m.split(".")[0] for m in names}
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
    ours = [m for m in names if m.startswith(("taskroom.host.client", "taskroom.agents"))]
    assert not ours and "taskroom.host.mcp.gateway" not in names, ours
    help_text = "\n".join(help_lines)
    for flag in ("--workspace", "--no-runner", "--no-shell", "--shell-timeout", "--http"):
        assert flag in help_text


def test_the_default_agent_is_the_workspace_runner() -> None:
    assert DEFAULT_AGENT == WORKSPACE_AGENT


def run_mcp(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    dead = f"http://127.0.0.1:{free_port()}"
    return subprocess.run(
        [str(BIN / "taskroom"), "mcp", "--room", "r", "--url", dead, "--token", "t", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--workspace", "no-such-folder"], {}, "--workspace no-such-folder is not a folder"),
        (["--allow-root", "nowhere"], {}, "is not a folder"),
        (
            [],
            {"TASKROOM_PROVIDER": "nope"},
            "unknown provider 'nope'; known providers: anthropic, gemini, llamacpp",
        ),
        (
            [],
            {"TASKROOM_MODEL_FAST": "x", "TASKROOM_MODEL_2FAST": "y"},
            "variable TASKROOM_MODEL_2FAST: '2FAST' is not a model class name",
        ),
    ],
)
def test_settings_that_cannot_work_stop_it_with_one_error_line(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    done = run_mcp(*args, env=env)
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert expected in lines[0]


def test_a_busy_http_port_is_one_error_line_before_anything_is_announced() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_mcp("--http", "--port", str(port))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: the port is already in use "
        "(choose another with --port)"
    ]
    assert "Traceback" not in done.stderr and "MCP gateway" not in done.stderr
