"""Render the protocol reference in ``docs/protocol.md`` from the message table.

    python -m taskroom.host.protocol.reference [PATH] [--check]

The reference goes between two marker comments; the prose around them is kept. With
``--check`` nothing is written and the exit status says whether the file is current.
"""

from __future__ import annotations

import argparse
import enum
import sys
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from taskroom.host.protocol.errors import ErrorCode
from taskroom.host.protocol.progress import BUILT_IN, AgentMessage
from taskroom.host.protocol.table import MESSAGES, Kind

BEGIN = "<!-- BEGIN GENERATED: message reference (python -m taskroom.host.protocol.reference) -->"
END = "<!-- END GENERATED: message reference -->"
DEFAULT_PATH = Path("docs/protocol.md")
MODULE = "taskroom.host.protocol.reference"

SECTIONS: list[tuple[Kind, str, str]] = [
    ("request", "Requests", "Participant → room, with an `id`; answered by `response` or `error`."),
    ("event", "Events", "Room → participants, no `id`."),
    (
        "host",
        "Host frames",
        "Between the room and the participant hosting a toolkit. `tool.call` carries the "
        "call id as its frame `id`; answer it with `response` or `error`.",
    ),
    ("answer", "Answers", "The answer to a request, with the request's `id`."),
]


def type_name(annotation: Any) -> str:
    """A short, JSON-flavoured name for a field's type."""
    origin = get_origin(annotation)
    args = get_args(annotation)
    if annotation is type(None):
        return "null"
    if annotation is Any:
        return "any"
    if origin is Literal:
        return " \\| ".join(f'"{a}"' for a in args)
    if origin in (Union, types.UnionType):
        return " \\| ".join(type_name(a) for a in args)
    if origin is list:
        return f"[{type_name(args[0])}]" if args else "array"
    if origin is dict or annotation is dict:
        return "object"
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return f"{annotation.__name__} (string)"
        if issubclass(annotation, BaseModel):
            return annotation.__name__
        names = {str: "string", int: "integer", float: "number", bool: "boolean"}
        if annotation in names:
            return names[annotation]
    return str(annotation)


def _constraints(field: FieldInfo) -> list[str]:
    out = []
    symbols = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}
    for meta in field.metadata:
        for attr, symbol in symbols.items():
            if getattr(meta, attr, None) is not None:
                out.append(f"{symbol} {getattr(meta, attr)}")
        if getattr(meta, "min_length", None) is not None:
            out.append(f"min length {meta.min_length}")
        if getattr(meta, "max_length", None) is not None:
            out.append(f"max length {meta.max_length}")
        if getattr(meta, "pattern", None) is not None:
            out.append(f"pattern `{meta.pattern}`")
    return out


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        return "`{}`" if value == {} else "`[]`" if value == [] else type(value).__name__
    value = field.default
    if isinstance(value, enum.Enum):
        value = value.value
    return f"`{_json(value)}`"


def _json(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def fields_table(model: type[BaseModel]) -> list[str]:
    """The model's fields as a Markdown table (empty when it has none)."""
    if not model.model_fields:
        extra = model.model_config.get("extra")
        return ["Free-form: any fields." if extra == "allow" else "No fields: send `{}`."]
    rows = ["| field | type | default | description |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        notes = [field.description or "", *_constraints(field)]
        text = _cell("; ".join(n for n in notes if n))
        rows.append(
            f"| `{field.alias or name}` | {type_name(field.annotation)} | {_default(field)} "
            f"| {text} |"
        )
    if model.model_config.get("extra") == "allow":
        rows.append("| … | any | | other fields are kept as sent |")
    return rows


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|")


def _doc(model: type[BaseModel]) -> str:
    return " ".join((model.__doc__ or "").split())


def _nested_models(models: list[type[BaseModel]]) -> list[type[BaseModel]]:
    """Models that appear inside others' fields, in first-seen order."""
    seen: dict[type[BaseModel], None] = {}

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation not in seen:
                seen[annotation] = None
                for field in annotation.model_fields.values():
                    visit(field.annotation)
            return
        for arg in get_args(annotation):
            visit(arg)

    for model in models:
        for field in model.model_fields.values():
            visit(field.annotation)
    return list(seen)


def render() -> str:
    """The generated part of ``docs/protocol.md``, markers included."""
    out = [BEGIN, "", "## Message reference", ""]
    out += [
        "Every frame type, generated from the message table in `host/protocol/table.py`. "
        "Run `python -m taskroom.host.protocol.reference` after changing a model.",
        "",
    ]
    for kind, title, intro in SECTIONS:
        specs = [s for s in MESSAGES.values() if s.kind == kind]
        out += [f"### {title}", "", intro, ""]
        if kind == "request":
            out += ["| type | grant | data | answer data |", "|---|---|---|---|"]
            for s in specs:
                grant = f"`{s.grant}`" if s.grant else "—"
                out.append(
                    f"| [`{s.type}`](#{_anchor(s.type)}) | {grant} | "
                    f"{s.model.__name__} | {_cell(s.answer)} |"
                )
        else:
            out += ["| type | data | summary |", "|---|---|---|"]
            for s in specs:
                out.append(
                    f"| [`{s.type}`](#{_anchor(s.type)}) | {s.model.__name__} | {_cell(s.summary)} |"
                )
        out.append("")
        for s in specs:
            out += [f"#### `{s.type}`", "", s.summary]
            if s.grant:
                out[-1] += f" Needs the `{s.grant}` grant."
            doc = _doc(s.model)
            out += ["", f"Data: **{s.model.__name__}**" + (f". {doc}" if doc else ""), ""]
            out += fields_table(s.model)
            out.append("")
    models = [s.model for s in MESSAGES.values()]
    out += ["### Types", "", "Models used inside the messages above.", ""]
    for model in _nested_models(models):
        if model in models:
            continue
        doc = _doc(model)
        out += [f"#### {model.__name__}", ""] + ([doc, ""] if doc else [])
        out += fields_table(model)
        out.append("")
    codes = ", ".join(f"`{c.value}`" for c in ErrorCode)
    out += ["Error codes (ErrorCode): " + codes + ".", ""]
    out += ["### Progress events", ""]
    out += [
        "The `data` of `tool.progress` and `task.progress`, tagged by `kind` "
        "(`host/protocol/progress.py`). Any other kind is an agent's own event.",
        "",
    ]
    kinds: list[tuple[str, type[BaseModel]]] = [*BUILT_IN.items(), ("(any other)", AgentMessage)]
    for event_kind, model in kinds:
        doc = _doc(model)
        out += [
            f"#### `{event_kind}`",
            "",
            f"**{model.__name__}**" + (f". {doc}" if doc else ""),
            "",
        ]
        out += fields_table(model)
        out.append("")
    out.append(END)
    return "\n".join(out)


def _anchor(type_: str) -> str:
    """GitHub's anchor for a ``#### `type` `` heading."""
    return type_.replace(".", "")


def splice(document: str, generated: str) -> str:
    """``document`` with the text between the markers replaced by ``generated``."""
    start = document.find(BEGIN)
    end = document.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the document lacks the markers {BEGIN!r} … {END!r}")
    return document[:start] + generated + document[end + len(END) :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    args = parser.parse_args(argv)
    current = args.path.read_text(encoding="utf-8")
    updated = splice(current, render())
    if args.check:
        if updated != current:
            print(f"{args.path} is out of date: run python -m {MODULE}", file=sys.stderr)
            return 1
        return 0
    if updated != current:
        args.path.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
