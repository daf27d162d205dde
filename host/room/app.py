"""Assemble a room server with every capability the project ships."""

from __future__ import annotations

from pathlib import Path

from taskroom.host.room.server import RoomServer


def build_room_server(*, data_dir: Path | str, secret: str | None = None) -> RoomServer:
    """The full room server: core routing plus the capabilities added as they land."""
    return RoomServer(data_dir=data_dir, secret=secret)
