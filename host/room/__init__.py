"""The room server: participants, toolkits, schemas and call routing."""

from taskroom.host.room.room import Room
from taskroom.host.room.server import RoomServer

__all__ = ["Room", "RoomServer"]
