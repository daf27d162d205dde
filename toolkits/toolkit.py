"""Toolkits: named groups of tools whose input and output are checked with jsonschema."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.protocol.messages import ToolkitSpec
from taskroom.toolkits.context import ToolContext
from taskroom.toolkits.schemas import check_schema, schema_validator, validation_error
from taskroom.toolkits.tool import Tool

logger = logging.getLogger(__name__)

__all__ = ["Toolkit", "check_schema", "schema_validator", "validation_error"]


class Toolkit:
    """A named set of tools, the unit a participant hosts in a room."""

    def __init__(
        self,
        *,
        name: str,
        tools: Iterable[Tool],
        title: str | None = None,
        description: str | None = "",
        public: bool = True,
        allowed_callers: Iterable[str] = (),
        metadata: dict[str, Any] | None = None,
        rules: Iterable[str] | None = None,
    ) -> None:
        self.name = name
        self.title = title
        self.description = description or ""
        self.rules = list(rules or [])
        """Instructions for the model when it is offered this toolkit."""
        self.public = public
        self.allowed_callers = list(allowed_callers)
        self.metadata = dict(metadata or {})
        self.tools: dict[str, Tool] = {}
        self._validators: dict[str, tuple[Any, Any]] = {}
        for t in tools:
            self.add_tool(t)

    def add_tool(self, tool: Tool) -> None:
        check_schema(tool.input_schema, what=f"input schema of tool {tool.name!r}")
        if tool.output_schema is not None:
            check_schema(tool.output_schema, what=f"output schema of tool {tool.name!r}")
        self.tools[tool.name] = tool
        self._validators[tool.name] = (
            schema_validator(tool.input_schema),
            schema_validator(tool.output_schema) if tool.output_schema is not None else None,
        )

    def get_tool(self, name: str) -> Tool:
        try:
            return self.tools[name]
        except KeyError:
            raise RoomError(
                ErrorCode.NOT_FOUND,
                f"toolkit {self.name!r} has no tool {name!r}",
                {"toolkit": self.name, "tool": name, "available": sorted(self.tools)},
            ) from None

    def spec(self) -> ToolkitSpec:
        return ToolkitSpec(
            name=self.name,
            title=self.title,
            description=self.description,
            public=self.public,
            allowed_callers=self.allowed_callers,
            tools=[t.spec for t in self.tools.values()],
            metadata=self.metadata,
        )

    def read_only_view(self) -> Toolkit:
        """This toolkit with only its read_only tools, for read_only tasks."""
        return Toolkit(
            name=self.name,
            title=self.title,
            description=self.description,
            tools=[t for t in self.tools.values() if t.annotations.read_only],
            rules=self.rules,
        )

    def all_rules(self) -> list[str]:
        """The toolkit's rules, then each tool's."""
        return [*self.rules, *(rule for t in self.tools.values() for rule in t.rules)]

    async def execute(self, context: ToolContext, name: str, arguments: dict[str, Any]) -> Any:
        """Validate the input, run the tool, validate the output.

        A tool that fails with anything but a RoomError is a bug in the tool (a TypeError
        from unexpected arguments, say): it is logged here, where the tool runs, with its
        traceback, then raised on for the caller to report.
        """
        tool = self.get_tool(name)
        in_validator, out_validator = self._validators[name]
        problem = validation_error(arguments, in_validator)
        if problem:
            raise RoomError(
                ErrorCode.INVALID_REQUEST,
                f"invalid arguments for {self.name}.{name}: {problem}",
            )
        try:
            result = await tool.call(context, arguments)
            await context.flush()
        except (RoomError, asyncio.CancelledError):
            raise
        except Exception:
            logger.exception("tool %s.%s failed", self.name, name)
            raise
        if out_validator is not None:
            problem = validation_error(result, out_validator)
            if problem:
                raise RoomError(
                    ErrorCode.FAILED,
                    f"{self.name}.{name} returned output that breaks its schema: {problem}",
                )
        return result
