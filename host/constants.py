"""Defaults every layer agrees on, in a module that imports nothing.

The CLI reads them to build its help without loading token signing, the client or the
server; the auth layer and the room server use the same values.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_DATA_DIR = Path(".taskroom")
"""Where a room keeps its secret and task store, relative to the folder it runs in."""
DATA_DIR_ENV = "TASKROOM_DATA_DIR"
"""Environment variable naming the data folder when ``--data-dir`` is not given."""

ROLES = ("user", "agent", "tool", "admin", "observer")
"""Participant roles a token may name."""

LOCAL_USER = "local-user"
"""Identity of the person at this machine: the CLI mints tokens for it when none is given,
and ``taskroom up`` prints a token for it, so both see the same tasks."""

DEFAULT_PORT = 8765
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
