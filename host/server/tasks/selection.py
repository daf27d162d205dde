"""Which task store a room server uses: SQLite in its data folder unless told otherwise.

``--store`` (or ``TASKROOM_STORE``) takes ``postgresql://user@host:port/database`` for a
store that several nodes share, or ``sqlite:///path/to/file`` for another SQLite file.
"""

from __future__ import annotations

from pathlib import Path

from taskroom.host.server.tasks.sqlite_store import SQLiteTaskStore
from taskroom.host.server.tasks.store import OnDamage, TaskStore, TaskStoreError

STORE_FILE = "tasks.sqlite3"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def store_from_url(
    url: str | None, data_dir: Path | str, *, on_damage: OnDamage = "refuse"
) -> TaskStore:
    """The store ``url`` names; the default SQLite file when it is empty.

    A PostgreSQL store connects when the server starts (``TaskStore.open``), so a server
    that cannot reach it fails then, with an error naming it.
    """
    if not url or url == "sqlite":
        return SQLiteTaskStore(Path(data_dir) / STORE_FILE, on_damage=on_damage)
    if url.startswith("sqlite:///"):
        # As elsewhere: sqlite:///relative/file, sqlite:////absolute/file.
        return SQLiteTaskStore(Path(url.removeprefix("sqlite:///")), on_damage=on_damage)
    if url.startswith(POSTGRES_SCHEMES):
        try:
            from taskroom.host.server.tasks.postgres_store import PostgresTaskStore
        except ImportError:
            raise TaskStoreError(
                "the PostgreSQL task store needs asyncpg: pip install 'taskroom[cluster]'"
            ) from None
        return PostgresTaskStore(url)
    scheme = url.split("://", 1)[0] if "://" in url else url
    raise TaskStoreError(
        f"unknown task store {scheme!r}: use postgresql://user@host:port/database "
        "or sqlite:///path/to/file"
    )
