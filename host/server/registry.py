"""Who is in a room and what they host: participants, toolkit instances, name owners.

Visibility lives here and nowhere else: every listing and every routing decision asks
:meth:`Registry.instances`, which returns only what a principal may see, so a private
instance is indistinguishable from one that does not exist.
"""

from __future__ import annotations

import json
from typing import Any

from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.protocol.messages import ParticipantInfo, ToolkitInstance, ToolkitSpec
from taskroom.host.server.calls import Instance
from taskroom.host.server.participant import Participant, Principal

MAX_METADATA_BYTES = 64 * 1024
"""Largest ``metadata`` a toolkit may register (it is sent to every joiner)."""

MAX_SPEC_BYTES = 1024 * 1024
"""Largest toolkit registration (tools with their schemas)."""

MAX_NESTING = 64
"""Deepest JSON nesting accepted in a registration's metadata and schemas."""


def nesting_depth(value: Any, limit: int) -> int:
    """Depth of nested lists/dicts, counting no further than ``limit + 1``."""
    depth = 0
    level = [value]
    while level and depth <= limit:
        nxt: list[Any] = []
        for v in level:
            if isinstance(v, dict):
                nxt.extend(v.values())
            elif isinstance(v, list):
                nxt.extend(v)
        if not nxt:
            break
        depth += 1
        level = nxt
    return depth


class Registry:
    """Participants and toolkit instances of one room."""

    def __init__(self, room: str) -> None:
        self.room = room
        self.participants: dict[str, Participant] = {}
        self.toolkits: dict[str, dict[str, ToolkitSpec]] = {}
        self.owners: dict[str, str] = {}
        """Agent name → the identity that first registered it; others cannot take it."""

    # --- visibility -------------------------------------------------------------------

    @staticmethod
    def can_see(viewer: Principal, host_id: str, spec: ToolkitSpec) -> bool:
        if spec.public or viewer.id == host_id:
            return True
        if viewer.name in spec.allowed_callers or viewer.id in spec.allowed_callers:
            return True
        return viewer.allows("*")

    def instances(
        self,
        viewer: Principal,
        toolkit: str,
        *,
        participant_id: str | None = None,
        participant_name: str | None = None,
    ) -> list[Instance]:
        """The online instances of ``toolkit`` that ``viewer`` may see (and call)."""
        out = []
        for host_id, spec in self.toolkits.get(toolkit, {}).items():
            host = self.participants.get(host_id)
            if host is None or (participant_id is not None and host_id != participant_id):
                continue
            if participant_name is not None and host.name != participant_name:
                continue
            if self.can_see(viewer, host_id, spec):
                out.append(Instance(host, spec))
        return out

    def listing(
        self,
        viewer: Principal,
        *,
        participant_id: str | None = None,
        participant_name: str | None = None,
        name: str | None = None,
    ) -> list[ToolkitInstance]:
        names = [name] if name is not None else list(self.toolkits)
        return [
            ToolkitInstance(participant_id=i.host.id, participant_name=i.host.name, toolkit=i.spec)
            for n in names
            for i in self.instances(
                viewer, n, participant_id=participant_id, participant_name=participant_name
            )
        ]

    def watchers(self, host_id: str, spec: ToolkitSpec) -> list[Participant]:
        """Participants that may see an instance, and so hear of its changes."""
        return [q for q in self.participants.values() if self.can_see(q.principal, host_id, spec)]

    # --- changes ----------------------------------------------------------------------

    def check_registration(self, p: Participant, spec: ToolkitSpec) -> None:
        """Refuse a registration before anything changes: ownership, limits, duplicates.

        An agent's name belongs to the identity that first registered the agent: no one
        else can host anything under it (so no one can take its tasks). Plain toolkits
        may have instances from several identities.
        """
        owner = self.owners.get(spec.name)
        if owner is not None and owner != p.name and not p.allows("*"):
            raise RoomError(
                ErrorCode.PERMISSION_DENIED,
                f"toolkit name {spec.name!r} belongs to agent {owner!r} in room "
                f"{self.room!r}; register under another name",
            )
        if spec.metadata.get("agent") and owner is None:
            others = {
                host.name
                for host_id in self.toolkits.get(spec.name, {})
                if (host := self.participants.get(host_id)) is not None and host.name != p.name
            }
            if others and not p.allows("*"):
                raise RoomError(
                    ErrorCode.CONFLICT,
                    f"toolkit name {spec.name!r} is in use by {sorted(others)}; an agent needs "
                    "a name of its own",
                )
        names = [t.name for t in spec.tools]
        if len(set(names)) != len(names):
            raise RoomError(ErrorCode.INVALID_REQUEST, f"toolkit {spec.name!r} lists a tool twice")
        if nesting_depth(spec.metadata, MAX_NESTING) > MAX_NESTING:
            raise RoomError(
                ErrorCode.INVALID_REQUEST,
                f"metadata of {spec.name!r} is nested deeper than {MAX_NESTING} levels",
            )
        size = len(json.dumps(spec.metadata, separators=(",", ":")))
        if size > MAX_METADATA_BYTES:
            raise RoomError(
                ErrorCode.INVALID_REQUEST,
                f"metadata of {spec.name!r} is {size} bytes; the limit is {MAX_METADATA_BYTES}",
            )
        for t in spec.tools:
            for schema in (t.input_schema, t.output_schema):
                if schema is not None and nesting_depth(schema, MAX_NESTING) > MAX_NESTING:
                    raise RoomError(
                        ErrorCode.INVALID_REQUEST,
                        f"a schema of {spec.name}.{t.name} is nested deeper than "
                        f"{MAX_NESTING} levels",
                    )
        size = len(spec.model_dump_json())
        if size > MAX_SPEC_BYTES:
            raise RoomError(
                ErrorCode.INVALID_REQUEST,
                f"toolkit {spec.name!r} is {size} bytes; the limit is {MAX_SPEC_BYTES}",
            )

    def add(self, p: Participant, spec: ToolkitSpec) -> None:
        """Record an instance (after :meth:`check_registration`), replacing ``p``'s own."""
        if spec.metadata.get("agent"):
            self.owners.setdefault(spec.name, p.name)
        self.toolkits.setdefault(spec.name, {})[p.id] = spec

    def remove(self, p: Participant, name: str) -> ToolkitSpec | None:
        hosts = self.toolkits.get(name, {})
        spec = hosts.pop(p.id, None)
        if not hosts:
            self.toolkits.pop(name, None)
        return spec

    def hosted_by(self, p: Participant) -> list[str]:
        return [n for n, hosts in self.toolkits.items() if p.id in hosts]

    def infos(self) -> list[ParticipantInfo]:
        return [q.info for q in self.participants.values()]
