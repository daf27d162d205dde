"""Tools, toolkits, and the requirements that resolve them through a room.

from taskroom.toolkits import Tool, Toolkit, RemoteToolkit, ToolContext, tool, JsonResponse
"""

from taskroom.host.protocol.messages import ToolAnnotations, ToolSpec
from taskroom.toolkits.context import ToolContext
from taskroom.toolkits.remote import RemoteToolkit
from taskroom.toolkits.requirements import RequiredSchema, RequiredToolkit
from taskroom.toolkits.responses import JsonResponse, TextResponse
from taskroom.toolkits.room import HostingRoom, RoomConnection
from taskroom.toolkits.tool import FunctionTool, Tool, tool
from taskroom.toolkits.toolkit import Toolkit, check_schema

__all__ = [
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
]
