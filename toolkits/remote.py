"""RemoteToolkit: a toolkit that a service host calls into rooms, as it does agents.

A ServiceHost path may offer a RemoteToolkit class (or factory) where it would offer a
task runner: each room call builds one, ``start`` hosts it in that room, and it serves
the room's calls until the room dismisses it or the service stops.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from taskroom.host.protocol import RoomError
from taskroom.toolkits.toolkit import Toolkit

if TYPE_CHECKING:
    from taskroom.toolkits.room import HostingRoom

logger = logging.getLogger(__name__)

TOOLKIT_KIND = "toolkit"


class RemoteToolkit(Toolkit):
    """A toolkit with a room lifecycle: ``start(room=...)`` hosts it, ``stop()`` withdraws it."""

    kind = TOOLKIT_KIND

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.room: HostingRoom | None = None

    async def start(self, room: HostingRoom) -> None:
        await room.host_toolkit(self)
        self.room = room
        logger.info("toolkit %s is ready in room %s", self.name, room.room_name)

    async def stop(self) -> None:
        room, self.room = self.room, None
        if room is not None and not room.closed:
            try:
                await room.unhost_toolkit(self.name)
            except RoomError as exc:
                logger.debug("unhosting %s: %s", self.name, exc.message)
