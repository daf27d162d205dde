"""A command's help loads the command, not what running it needs: no token signing (PyJWT),
no room client or server, no LLM or MCP client."""

from __future__ import annotations

import pytest

from tests.test_layers import imported_by, under

HEAVY = (
    "jwt",
    "taskroom.host.auth",
    "taskroom.host.client",
    "taskroom.host.server",
    "taskroom.agents",
    "openai",
    "mcp",
    "aiohttp",
    "websockets",
)


@pytest.mark.parametrize(
    "command",
    ["room serve", "token generate", "up", "init", "invoke", "tasks list", "llm serve-test"],
)
def test_help_imports_nothing_heavy(command: str) -> None:
    modules = imported_by(
        f"import sys; sys.argv = ['taskroom', *{command.split()!r}, '--help']\n"
        "from taskroom.host.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    sys.stdout.write('\\n')"
    )
    assert "taskroom.host.cli.common" in modules  # the command itself was loaded
    assert not under(modules, *HEAVY)
