"""The MCP gateway: a room's durable tasks and task runners as MCP tools.

``taskroom mcp`` runs it over stdio or streamable HTTP; see docs/mcp.md. Names load on
first use, so importing this package (or its ``defaults``) does not import the MCP SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskroom.host import lazy_exports
from taskroom.host.mcp.defaults import DEFAULT_AGENT

if TYPE_CHECKING:
    from taskroom.host.mcp.gateway import McpGateway, ToolError
    from taskroom.host.mcp.models import (
        BUILTIN_CLASSES,
        ModelCatalog,
        ModelConfigError,
        ModelError,
    )
    from taskroom.host.mcp.prompt import FileAccess, FileRefused, build_prompt
    from taskroom.host.mcp.serve import (
        GatewayOptions,
        http_app,
        run_gateway,
        serve_http,
        serve_stdio,
    )
    from taskroom.host.mcp.tools import TASK_TOOLS, AgentTool, agent_tool_name

__all__ = [
    "BUILTIN_CLASSES",
    "DEFAULT_AGENT",
    "TASK_TOOLS",
    "AgentTool",
    "FileAccess",
    "FileRefused",
    "GatewayOptions",
    "McpGateway",
    "ModelCatalog",
    "ModelConfigError",
    "ModelError",
    "ToolError",
    "agent_tool_name",
    "build_prompt",
    "http_app",
    "run_gateway",
    "serve_http",
    "serve_stdio",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".gateway": ["McpGateway", "ToolError"],
        ".models": ["BUILTIN_CLASSES", "ModelCatalog", "ModelConfigError", "ModelError"],
        ".prompt": ["FileAccess", "FileRefused", "build_prompt"],
        ".serve": ["GatewayOptions", "http_app", "run_gateway", "serve_http", "serve_stdio"],
        ".tools": ["TASK_TOOLS", "AgentTool", "agent_tool_name"],
    },
)
