"""Model classes: mcp-task's names for kinds of model, mapped to concrete models by config.

Callers write ``"reasoning"`` or ``"mini"`` instead of a provider's model name, so one
gateway configuration decides which model each class means. The map comes from a TOML
file and from ``TASKROOM_MODEL_<CLASS>`` environment variables (which win).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from taskroom.host.protocol.errors import TaskroomError

BUILTIN_CLASSES: tuple[str, ...] = (
    "standard",
    "mini",
    "reasoning",
    "reasoning_mini",
    "code",
    "writing",
    "summary",
    "vision",
    "vision_mini",
    "long",
)
"""The classes mcp-task offers; a config may add more (they then act as aliases)."""

DEFAULT_CLASS = "standard"
"""Used when a call names no model. Unconfigured, it means the agent's own default model."""

ENV_PREFIX = "TASKROOM_MODEL_"
_CLASS_NAME = re.compile(r"^[a-z][a-z_]{0,63}$")


class ModelConfigError(TaskroomError):
    """The models configuration cannot be used; the message names the file or variable."""


class ModelError(TaskroomError):
    """A call named a model the gateway cannot resolve; the message lists the choices."""


def looks_like_class(name: str) -> bool:
    """Letters and underscores only: a class name. Model ids carry a digit, '-', '.', '/' or ':'."""
    return bool(_CLASS_NAME.match(name.lower()))


@dataclass(frozen=True)
class ModelCatalog:
    """Which concrete model each class means."""

    mapping: Mapping[str, str] = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        extra = sorted(set(self.mapping) - set(BUILTIN_CLASSES))
        return [*BUILTIN_CLASSES, *extra]

    @classmethod
    def load(
        cls, config_file: Path | None = None, environ: Mapping[str, str] = os.environ
    ) -> ModelCatalog:
        """Read ``[classes]`` from ``config_file``, then ``TASKROOM_MODEL_*`` over it."""
        mapping: dict[str, str] = {}
        if config_file is not None:
            mapping.update(_read_config(config_file))
        for key, value in environ.items():
            if key.startswith(ENV_PREFIX) and value.strip():
                mapping[_class_key(key[len(ENV_PREFIX) :], f"variable {key}")] = value.strip()
        return cls(mapping)

    def resolve(self, name: str) -> str | None:
        """The model to send for ``name``; ``None`` means the agent's default model.

        A class maps through the config; a name configured as some class's model, or one
        that does not look like a class, passes through unchanged.
        """
        key = name.strip()
        lowered = key.lower()
        if lowered in self.classes:
            model = self.mapping.get(lowered)
            if model is None and lowered != DEFAULT_CLASS:
                raise ModelError(
                    f"model class {key!r} has no model configured; set "
                    f'{ENV_PREFIX}{lowered.upper()}=<model> or add {lowered} = "<model>" under '
                    f"[classes] in the --models-config file. {self.describe()}"
                )
            return model
        if key in self.mapping.values() or not looks_like_class(key):
            return key
        raise ModelError(
            f"unknown model class {key!r}. {self.describe()} A concrete model name (one with "
            "a digit, '-', '.', '/' or ':', e.g. gpt-5-mini) is passed to the agent unchanged."
        )

    def describe(self) -> str:
        """The known classes and what each means, for error messages and docs."""
        parts = []
        for name in self.classes:
            model = self.mapping.get(name)
            if model is not None:
                parts.append(f"{name}={model}")
            elif name == DEFAULT_CLASS:
                parts.append(f"{name} (the agent's default model)")
            else:
                parts.append(f"{name} (not configured)")
        return "Known model classes: " + ", ".join(parts) + "."


def _class_key(raw: str, where: str) -> str:
    key = raw.strip().lower()
    if not _CLASS_NAME.match(key):
        raise ModelConfigError(
            f"{where}: {raw!r} is not a model class name (use letters and underscores)"
        )
    return key


def _read_config(path: Path) -> dict[str, str]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelConfigError(f"cannot read models config {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ModelConfigError(f"models config {path} is not valid TOML: {exc}") from None
    classes = data.get("classes", {})
    if not isinstance(classes, dict):
        raise ModelConfigError(f"models config {path}: [classes] must be a table")
    mapping = {}
    for raw, value in classes.items():
        key = _class_key(raw, f"models config {path}")
        if not isinstance(value, str) or not value.strip():
            raise ModelConfigError(
                f"models config {path}: classes.{raw} must be a non-empty model name string"
            )
        mapping[key] = value.strip()
    return mapping
