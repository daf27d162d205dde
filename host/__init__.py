"""taskroom.host: the room (protocol, server, client, auth), the service host and the CLI.

The common entry points are importable from here and load on first use, so
``import taskroom.host`` costs nothing and a client never pulls in the server::

    from taskroom.host import RoomClient, RoomServer, ServiceHost, create_token
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskroom.host.auth.tokens import create_token
    from taskroom.host.client.room_client import RoomClient
    from taskroom.host.server.app import RoomServer
    from taskroom.host.service.service_host import ServiceHost


def lazy_exports(
    package: str, modules: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """PEP 562 ``__getattr__`` and ``__dir__`` for ``package``: each name listed in
    ``modules`` (module relative to ``package`` -> names) is imported on first use, then
    cached in the package."""
    table = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *table})

    return __getattr__, __dir__


__all__ = ["RoomClient", "RoomServer", "ServiceHost", "create_token"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".auth.tokens": ["create_token"],
        ".client.room_client": ["RoomClient"],
        ".server.app": ["RoomServer"],
        ".service.service_host": ["ServiceHost"],
    },
)
