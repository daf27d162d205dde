"""Assemble a room server with every capability the project ships."""

from __future__ import annotations

from pathlib import Path

from taskroom.host.room.server import RoomServer
from taskroom.host.tasks import install_tasks


def build_room_server(*, data_dir: Path | str, secret: str | None = None) -> RoomServer:
    """The full room server: core routing plus the capabilities added as they land."""
    server = RoomServer(data_dir=data_dir, secret=secret)
    install_tasks(server)
    return server
