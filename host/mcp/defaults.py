"""The gateway's defaults, in a module that imports nothing.

``taskroom mcp --help`` shows them, and help must not pay for the MCP SDK, the room
client or ``openai``; the modules that use them import them from here.
"""

from __future__ import annotations

DEFAULT_AGENT = "workspace-task-runner"
"""The runner ``run_task`` uses when a call names none: the workspace runner the gateway
hosts over its folder (``taskroom.agents.workspace_runner.WORKSPACE_AGENT``)."""
DEFAULT_MAX_FILE_BYTES = 256 * 1024
"""The largest file ``run_task`` reads into a prompt."""
DEFAULT_MAX_TOTAL_BYTES = 1024 * 1024
"""The most ``run_task`` reads into one prompt, all files together."""
DEFAULT_HTTP_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 8767
GATEWAY_IDENTITY = "mcp-gateway"
"""The identity of a token the gateway mints from the local secret."""
