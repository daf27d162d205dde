"""The room server: participants, toolkits, schemas and call routing."""

from taskroom.host.server.app import RoomServer
from taskroom.host.server.room import Room

__all__ = ["Room", "RoomServer"]
