"""A participant's connection as the room holds it."""

from __future__ import annotations

import logging
import secrets

from aiohttp import web

from taskroom.host.auth.tokens import ParticipantToken
from taskroom.host.protocol.messages import ParticipantInfo

logger = logging.getLogger(__name__)


class Participant:
    """One joined connection. Identity and role come from the token, never from frames."""

    def __init__(self, ws: web.WebSocketResponse, token: ParticipantToken) -> None:
        self.ws = ws
        self.token = token
        self.id = "p_" + secrets.token_hex(8)
        self.info = ParticipantInfo(id=self.id, name=token.identity, role=token.role)
        self.online = True

    @property
    def name(self) -> str:
        return self.info.name

    def allows(self, grant: str) -> bool:
        return self.token.allows(grant)

    async def send(self, text: str) -> None:
        """Send a frame; a peer that has gone is not an error for the sender."""
        if not self.online or self.ws.closed:
            return
        try:
            await self.ws.send_str(text)
        except (ConnectionError, RuntimeError) as exc:
            logger.debug("dropping frame to %s: %s", self.id, exc)

    def __repr__(self) -> str:
        return f"Participant({self.id}, {self.name!r}, {self.info.role})"
