"""Opening the SQLite task file, and refusing to lose data silently when it is damaged.

An empty (0-byte) file, a file that is not SQLite, a corrupt page or a row that no
longer parses is damage. By default it is reported with one ``TaskStoreError`` naming
the file; only an explicit choice starts a new file ("fresh", the old one is moved aside,
never deleted) or ignores the rows that cannot be read ("skip").
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path

from pydantic import ValidationError

from taskroom.host.protocol.tasks import TaskRecord
from taskroom.host.server.tasks.store import OnDamage, TaskStoreError

logger = logging.getLogger(__name__)

BUSY_TIMEOUT = 5.0
SIDECARS = ("-wal", "-shm")
_FILE_DAMAGE_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
_REPORTED_ROWS = 3

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    room TEXT NOT NULL,
    id TEXT NOT NULL,
    agent TEXT NOT NULL,
    status TEXT NOT NULL,
    batch_id TEXT,
    caller_name TEXT,
    created_at REAL NOT NULL,
    finished_at REAL,
    body TEXT NOT NULL,
    PRIMARY KEY (room, id)
);
CREATE INDEX IF NOT EXISTS tasks_by_room_time ON tasks (room, created_at DESC);
CREATE INDEX IF NOT EXISTS tasks_by_batch ON tasks (room, batch_id);
CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks (status);
CREATE TABLE IF NOT EXISTS task_events (
    room TEXT NOT NULL,
    task_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at REAL NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (room, task_id, seq)
);
CREATE TABLE IF NOT EXISTS task_checkpoints (
    room TEXT NOT NULL,
    task_id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (room, task_id)
);
CREATE TABLE IF NOT EXISTS room_schemas (
    room TEXT NOT NULL,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (room, name)
);
"""


class DamagedFile(Exception):
    """The file itself is unusable: empty, not SQLite, or corrupt."""


class DamagedRows(Exception):
    """The file opens but some rows cannot be read back."""


def open_writer(path: Path, on_damage: OnDamage) -> sqlite3.Connection:
    """Open (creating if absent) the task file for writing, checking it for damage first."""
    try:
        return _open_checked(path, skip_rows=on_damage == "skip")
    except (DamagedFile, DamagedRows) as exc:
        if on_damage != "fresh":
            raise TaskStoreError(_damage_message(path, exc)) from None
        moved = move_aside(path)
        logger.warning("task store %s is damaged (%s); moved it to %s", path, exc, moved)
    try:
        return _open_checked(path, skip_rows=False)
    except (DamagedFile, DamagedRows) as exc:
        raise TaskStoreError(f"cannot start a new task store {path}: {exc}") from None


def open_reader(path: Path) -> sqlite3.Connection:
    """A second connection for reads; WAL lets it read while the writer commits."""
    try:
        db = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
        db.execute("PRAGMA query_only=ON")
        return db
    except sqlite3.Error as exc:
        raise TaskStoreError(f"cannot open the task store {path}: {exc}") from None


def move_aside(path: Path) -> Path:
    """Rename the file (and its WAL sidecars) to ``<name>.damaged-<timestamp>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    try:
        path.rename(target)
        for suffix in SIDECARS:
            sidecar = path.with_name(path.name + suffix)
            if sidecar.exists():
                sidecar.rename(target.with_name(target.name + suffix))
    except OSError as exc:
        raise TaskStoreError(f"cannot move the damaged task store {path} aside: {exc}") from None
    return target


def _damage_message(path: Path, exc: Exception) -> str:
    remedy = 'on_damage="fresh" moves it aside and starts a new one'
    if isinstance(exc, DamagedRows):
        remedy += ', on_damage="skip" skips the rows that cannot be read'
    return f"the task store {path} is damaged: {exc} ({remedy})"


def _open_checked(path: Path, *, skip_rows: bool) -> sqlite3.Connection:
    if _is_empty(path):
        raise DamagedFile("the file is empty (0 bytes)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TaskStoreError(f"cannot open the task store {path}: {exc}") from None
    db = None
    try:
        db = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        bad = _damaged_rows(db)
    except sqlite3.Error as exc:
        if db is not None:
            db.close()
        if getattr(exc, "sqlite_errorcode", None) in _FILE_DAMAGE_CODES:
            raise DamagedFile(str(exc)) from None
        raise TaskStoreError(f"cannot open the task store {path}: {exc}") from None
    if bad:
        count, examples = bad
        summary = f"{count} damaged row{'s' * (count != 1)} ({'; '.join(examples)})"
        if not skip_rows:
            db.close()
            raise DamagedRows(summary)
        logger.warning("task store %s: %s will be skipped", path, summary)
    return db


def _is_empty(path: Path) -> bool:
    """A 0-byte file whose WAL holds nothing either: every task it had is gone."""
    try:
        if path.stat().st_size:
            return False
    except FileNotFoundError:
        return False
    wal = path.with_name(path.name + "-wal")
    return not (wal.exists() and wal.stat().st_size)


def _damaged_rows(db: sqlite3.Connection) -> tuple[int, list[str]] | None:
    """Read every record and event back; count those that no longer parse.

    Reading the tables end to end also surfaces corrupt pages (as SQLITE_CORRUPT).
    """
    count = 0
    examples: list[str] = []
    for room, task_id, body in db.execute("SELECT room, id, body FROM tasks"):
        try:
            TaskRecord.model_validate_json(body)
        except (ValueError, TypeError) as exc:
            count += 1
            if len(examples) < _REPORTED_ROWS:
                examples.append(f"task {room}/{task_id}: {describe_row_error(exc)}")
    for room, task_id, seq, data in db.execute("SELECT room, task_id, seq, data FROM task_events"):
        try:
            if not isinstance(json.loads(data), dict):
                raise ValueError("event data is not an object")
        except (ValueError, TypeError) as exc:
            count += 1
            if len(examples) < _REPORTED_ROWS:
                examples.append(f"event {seq} of task {room}/{task_id}: {describe_row_error(exc)}")
    return (count, examples) if count else None


def describe_row_error(exc: Exception) -> str:
    """One line saying why a stored row does not parse."""
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where}: {first['msg']}" if where else first["msg"]
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
