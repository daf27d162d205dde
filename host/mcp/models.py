"""Model classes: mcp-task's names for kinds of model, resolved with no setup required.

Callers write ``"reasoning"`` or ``"mini"`` instead of a provider's model name. A class
resolves to the model configured for it (``[classes]`` in a TOML file, or
``TASKROOM_MODEL_<CLASS>``, which wins), else to the active provider's built-in model for
it, else to the default model (``TASKROOM_MODEL``). Any other name is a concrete model
and passes through. Each answer says which rule chose the model, and the task keeps it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from taskroom.agents.openai_client import DEFAULT_MODEL
from taskroom.agents.providers import ProviderError, ProviderTable, read_toml
from taskroom.host.protocol.errors import TaskroomError

BUILTIN_CLASSES: tuple[str, ...] = (
    "standard",
    "mini",
    "reasoning",
    "reasoning_mini",
    "monologue",
    "metacognition",
    "code",
    "writing",
    "summary",
    "vision",
    "vision_mini",
    "search",
    "long",
)
"""mcp-task's classes (and its agent library's); a config may add more, as aliases."""

DEFAULT_CLASS = "standard"
"""What a call that names no model asks for."""

ENV_PREFIX = "TASKROOM_MODEL_"
DEFAULT_MODEL_ENV = "TASKROOM_MODEL"
_CLASS_NAME = re.compile(r"^[a-z][a-z_]{0,63}$")


class ModelConfigError(TaskroomError):
    """The models configuration cannot be used; the message names the file or variable."""


class ModelError(TaskroomError):
    """A call named a model the gateway cannot use; the message lists the choices."""


def looks_like_class(name: str) -> bool:
    """Letters and underscores only: a class name. Model ids carry a digit, '-', '.', '/' or ':'."""
    return bool(_CLASS_NAME.match(name.lower()))


@dataclass(frozen=True)
class ModelChoice:
    """Which model a requested name runs on, and why."""

    requested: str
    model: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"requested": self.requested, "model": self.model, "reason": self.reason}


@dataclass(frozen=True)
class ModelCatalog:
    """Configured classes over the providers' built-in ones, over the default model."""

    mapping: Mapping[str, str] = field(default_factory=dict)
    providers: ProviderTable | None = None
    default_model: str | None = None
    """``TASKROOM_MODEL``; None: the agents' built-in default."""

    @property
    def classes(self) -> list[str]:
        extra = sorted(set(self.mapping) - set(BUILTIN_CLASSES))
        return [*BUILTIN_CLASSES, *extra]

    @classmethod
    def load(
        cls,
        config_file: Path | None = None,
        environ: Mapping[str, str] | None = None,
        providers: ProviderTable | None = None,
    ) -> ModelCatalog:
        """Read ``[classes]`` from ``config_file``, then ``TASKROOM_MODEL_*`` over it."""
        environ = os.environ if environ is None else environ
        mapping: dict[str, str] = {}
        if config_file is not None:
            mapping.update(_read_config(config_file))
        for key, value in environ.items():
            if key.startswith(ENV_PREFIX) and value.strip():
                mapping[_class_key(key[len(ENV_PREFIX) :], f"variable {key}")] = value.strip()
        try:
            table = providers or ProviderTable.load(environ=environ)
        except ProviderError as exc:
            raise ModelConfigError(str(exc)) from None
        default = (environ.get(DEFAULT_MODEL_ENV) or "").strip() or None
        return cls(mapping, table, default)

    def active_provider(self) -> str | None:
        """The provider whose built-in classes apply.

        With ``TASKROOM_MODEL`` set, the provider that claims that model (none for a name no
        provider claims, such as a local model: every class then means that model);
        otherwise the default provider.
        """
        if self.providers is None:
            return None
        if self.default_model:
            claimed = self.providers.claimant(self.default_model)
            return claimed[0].name if claimed else None
        return self.providers.default

    def resolve(self, name: str | None) -> ModelChoice:
        """The concrete model for ``name`` (a class, a model name, or None for standard)."""
        requested = (name or DEFAULT_CLASS).strip()
        lowered = requested.lower()
        if lowered in self.classes:
            configured = self.mapping.get(lowered)
            if configured is not None:
                return ModelChoice(requested, configured, f"class {lowered!r} as configured")
            provider = self.active_provider()
            builtin = (
                self.providers.class_default(lowered, provider)
                if self.providers is not None and provider is not None
                else None
            )
            if builtin is not None:
                return ModelChoice(
                    requested, builtin, f"class {lowered!r}: provider {provider}'s built-in model"
                )
            if self.default_model:
                return ModelChoice(
                    requested,
                    self.default_model,
                    f"class {lowered!r}: no model set for it, so the default model "
                    f"({DEFAULT_MODEL_ENV})",
                )
            return ModelChoice(
                requested,
                DEFAULT_MODEL,
                f"class {lowered!r}: no model set for it and {DEFAULT_MODEL_ENV} unset, so the "
                "built-in default",
            )
        if (
            requested in self.mapping.values()
            or requested == self.default_model
            or not looks_like_class(requested)
        ):
            return ModelChoice(requested, requested, "a concrete model name, passed through")
        raise ModelError(
            f"unknown model class {requested!r}. {self.describe()} A concrete model name (one "
            "with a digit, '-', '.', '/' or ':', e.g. gpt-5-mini) is passed through unchanged."
        )

    def describe(self) -> str:
        """The known classes and the model each means now, for error messages and docs."""
        parts = []
        for name in self.classes:
            choice = self.resolve(name)
            parts.append(f"{name}={choice.model}")
        return "Known model classes: " + ", ".join(parts) + "."


def _class_key(raw: str, where: str) -> str:
    key = raw.strip().lower()
    if not _CLASS_NAME.match(key):
        raise ModelConfigError(
            f"{where}: {raw!r} is not a model class name (use letters and underscores)"
        )
    return key


def _read_config(path: Path) -> dict[str, str]:
    data = read_toml(path, "models config", ModelConfigError)
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
