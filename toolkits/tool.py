"""Tools: a name, a description, JSON schemas for input and output, and annotations."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model

from taskroom.host.protocol.messages import ANY_OBJECT, ToolAnnotations, ToolSpec
from taskroom.toolkits.context import ToolContext
from taskroom.toolkits.responses import unwrap_response


class Tool:
    """A callable unit of work. Subclass and write :meth:`execute`, or use ``@tool``.

    ``execute`` comes in two forms, told apart by its signature: ``execute(self, context,
    arguments)`` takes the arguments as one dict; any other form, such as MeshAgent's
    ``execute(self, context, **kwargs)`` or ``execute(self, context, city)``, receives
    them as keyword arguments. A result may be a JSON value, a str, or a
    :class:`~taskroom.toolkits.responses.JsonResponse` / ``TextResponse``.
    """

    keyword_arguments = False
    """Whether :meth:`execute` takes the arguments as keywords; set per subclass."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.keyword_arguments = _takes_keywords(cls.execute)

    def __init__(
        self,
        *,
        name: str,
        description: str | None = "",
        input_schema: dict[str, Any] | None = None,
        output_schema: dict[str, Any] | None = None,
        title: str | None = None,
        annotations: ToolAnnotations | dict[str, Any] | None = None,
        rules: Sequence[str] | None = None,
        defs: dict[str, Any] | None = None,
        strict: bool | None = None,
    ) -> None:
        if isinstance(annotations, dict):
            annotations = ToolAnnotations(**annotations)
        if input_schema is not None and defs:
            input_schema = {**input_schema, "$defs": {**input_schema.get("$defs", {}), **defs}}
        self.rules = list(rules or [])
        """Instructions for the model when it is offered this tool."""
        self.strict = strict
        """Kept for MeshAgent code; the adapters decide strictness from the schema itself."""
        self.spec = ToolSpec(
            name=name,
            title=title,
            description=description or "",
            input_schema=input_schema or dict(ANY_OBJECT),
            output_schema=output_schema,
            annotations=annotations or ToolAnnotations(title=title),
        )

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def title(self) -> str | None:
        return self.spec.title

    @property
    def description(self) -> str:
        return self.spec.description

    @property
    def input_schema(self) -> dict[str, Any]:
        return self.spec.input_schema

    @property
    def output_schema(self) -> dict[str, Any] | None:
        return self.spec.output_schema

    @property
    def annotations(self) -> ToolAnnotations:
        return self.spec.annotations

    async def execute(self, context: ToolContext, arguments: dict[str, Any]) -> Any:
        raise NotImplementedError

    async def call(self, context: ToolContext, arguments: dict[str, Any]) -> Any:
        """Run :meth:`execute` in the form the subclass wrote it; returns plain JSON."""
        if self.keyword_arguments:
            result = await self.execute(context, **arguments)
        else:
            result = await self.execute(context, arguments)
        return unwrap_response(result)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _takes_keywords(execute: Callable[..., Any]) -> bool:
    """False only for the dict form ``execute(self, context, arguments)``."""
    params = list(inspect.signature(execute).parameters.values())[2:]
    dict_form = (
        len(params) == 1
        and params[0].name == "arguments"
        and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD)
    )
    return not dict_form


class FunctionTool(Tool):
    """A tool backed by a Python function; arguments arrive as keyword arguments."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        context_param: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._fn = fn
        self._context_param = context_param

    async def execute(self, context: ToolContext, arguments: dict[str, Any]) -> Any:
        kwargs = dict(arguments)
        if self._context_param:
            kwargs[self._context_param] = context
        result = self._fn(**kwargs)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, BaseModel):
            return result.model_dump(mode="json")
        return result


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    title: str | None = None,
    description: str | None = None,
    read_only: bool = False,
    destructive: bool = False,
    annotations: dict[str, Any] | None = None,
    rules: Sequence[str] | None = None,
) -> Any:
    """Build a :class:`FunctionTool` from a typed function.

    The input schema comes from the parameters' type hints (a parameter typed
    ``ToolContext`` receives the call's context instead), the output schema from the
    return annotation, and the descriptions from the docstring's summary and its
    ``Args:`` section, so one well-typed function is the whole tool definition.
    """

    def build(func: Callable[..., Any]) -> FunctionTool:
        return _function_tool(
            func,
            name=name,
            title=title,
            description=description,
            rules=rules,
            annotations=ToolAnnotations(
                title=title,
                read_only=read_only,
                destructive=destructive,
                **(annotations or {}),
            ),
        )

    return build(fn) if fn is not None else build


def _function_tool(
    func: Callable[..., Any],
    *,
    name: str | None,
    title: str | None,
    description: str | None,
    annotations: ToolAnnotations,
    rules: Sequence[str] | None = None,
) -> FunctionTool:
    hints = get_type_hints(func, include_extras=True)
    summary, arg_docs = _parse_docstring(inspect.getdoc(func) or "")
    fields: dict[str, Any] = {}
    context_param = None
    for pname, param in inspect.signature(func).parameters.items():
        hint = hints.get(pname, Any)
        if hint is ToolContext or (isinstance(hint, type) and issubclass(hint, ToolContext)):
            context_param = pname
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"@tool cannot describe *args or **kwargs ({func.__name__})")
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[pname] = (hint, Field(default, description=arg_docs.get(pname)))
    args_model = create_model(
        f"{func.__name__}_args", __config__=ConfigDict(extra="forbid"), **fields
    )
    input_schema = args_model.model_json_schema()
    input_schema.pop("title", None)
    for prop in input_schema.get("properties", {}).values():
        prop.pop("title", None)
    output_schema = None
    ret = hints.get("return", inspect.Signature.empty)
    if ret not in (inspect.Signature.empty, Any, None, type(None)):
        output_schema = TypeAdapter(ret).json_schema()
    return FunctionTool(
        func,
        context_param=context_param,
        name=name or func.__name__,
        title=title,
        description=description if description is not None else summary,
        input_schema=input_schema,
        output_schema=output_schema,
        annotations=annotations,
        rules=rules,
    )


_ARG_LINE = re.compile(r"^\s{2,}(\w+)(?:\s*\([^)]*\))?:\s*(.*)$")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its summary and per-argument text."""
    summary_lines: list[str] = []
    args: dict[str, str] = {}
    section = "summary"
    current = None
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:", "Parameters:"):
            section = "args"
            continue
        if stripped.endswith(":") and stripped[:-1] in ("Returns", "Raises", "Yields", "Example"):
            section = "other"
            continue
        if section == "summary":
            summary_lines.append(stripped)
        elif section == "args":
            match = _ARG_LINE.match(line)
            if match:
                current = match.group(1)
                args[current] = match.group(2).strip()
            elif current and stripped:
                args[current] = f"{args[current]} {stripped}".strip()
    return " ".join(s for s in summary_lines if s).strip(), args
