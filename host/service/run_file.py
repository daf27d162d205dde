"""Run a service file as its own program: ``python -m taskroom.host.service.run_file FILE``.

``taskroom service run`` starts this in a child process. The file runs as ``__main__``,
so one that ends in ``asyncio.run(service.run())`` serves from its own last line; a file
that only builds a module-level ServiceHost and returns is then served here, until
SIGINT or SIGTERM either way.
"""

from __future__ import annotations

import asyncio
import logging
import runpy
import sys
from pathlib import Path
from typing import Any

from taskroom.host.service.service_host import ServiceHost, ServiceStartError


def find_service(namespace: dict[str, Any]) -> ServiceHost | str:
    """The one module-level ServiceHost in ``namespace``, else why there is none to serve."""
    found = {id(v): (k, v) for k, v in namespace.items() if isinstance(v, ServiceHost)}
    if not found:
        return "defines no ServiceHost; add e.g. `service = ServiceHost()` at module level"
    if len(found) > 1:
        names = ", ".join(name for name, _ in found.values())
        return f"defines several ServiceHosts ({names}); keep one per file"
    [(_, service)] = found.values()
    if not service.paths:
        return "has a ServiceHost with no paths; add one with @service.path(...)"
    return service


def main(argv: list[str]) -> int | str:
    """Run the file, then serve its ServiceHost unless the file already did."""
    if len(argv) != 1:
        return "usage: python -m taskroom.host.service.run_file FILE"
    file = Path(argv[0])
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sys.path.insert(0, str(file.resolve().parent))
    try:
        namespace = runpy.run_path(str(file), run_name="__main__")
        service = find_service(namespace)
        if isinstance(service, str):
            return f"error: {file} {service}"
        if service.base_url is None:
            asyncio.run(service.run())
    except ServiceStartError as exc:
        return f"error: {exc}"
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
