"""A participant as the room holds it: identity from its token, frames through a Peer."""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from typing import Any

from taskroom.host.auth.tokens import ParticipantToken
from taskroom.host.protocol.messages import ParticipantInfo
from taskroom.host.server.peer import Peer


@dataclass(frozen=True)
class Principal:
    """Whose rights a call or task carries: the participant's info and its token's grants.

    Kept with a queued task so visibility is checked against the caller even after the
    caller's connection has gone. Tasks reloaded from the store carry no grants, so they
    never see more than their caller's name and id allow.
    """

    info: ParticipantInfo
    grants: frozenset[str] = frozenset()

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def name(self) -> str:
        return self.info.name

    def allows(self, grant: str) -> bool:
        return "*" in self.grants or grant in self.grants

    @functools.cached_property
    def info_data(self) -> dict[str, Any]:
        """``info`` as a dict, built once: every call and task the principal starts
        carries it. Shared: copy it before changing it."""
        return self.info.model_dump()


class Participant:
    """One joined connection. Identity and role come from the token, never from frames."""

    def __init__(self, peer: Peer, token: ParticipantToken) -> None:
        self.peer = peer
        self.token = token
        self.id = "p_" + secrets.token_hex(8)
        self.info = ParticipantInfo(id=self.id, name=token.identity, role=token.role)
        self.principal = Principal(self.info, frozenset(token.grants))
        self.online = True

    @property
    def name(self) -> str:
        return self.info.name

    def allows(self, grant: str) -> bool:
        return self.token.allows(grant)

    def send(self, text: str) -> None:
        """Queue a frame; a peer that has gone is not an error for the sender."""
        if self.online:
            self.peer.send(text)

    def __repr__(self) -> str:
        return f"Participant({self.id}, {self.name!r}, {self.info.role})"
