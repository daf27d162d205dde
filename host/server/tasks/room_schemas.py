"""A room's schemas kept in the task store, so they survive a restart or a move to another node.

The room answers ``schemas.put`` and ``schemas.remove`` in memory; this wraps both so the
change is stored before the answer goes out. A change the store refuses is undone and
answered with an error, so memory and store never disagree for long.
"""

from __future__ import annotations

from typing import Any

from taskroom.host.protocol import ErrorCode, Frame, RoomError
from taskroom.host.protocol.messages import SchemaName, SchemaPut
from taskroom.host.server.participant import Participant
from taskroom.host.server.room import Room
from taskroom.host.server.tasks.store import StoredSchema, TaskStore, TaskStoreError


async def keep_schemas(room: Room, store: TaskStore) -> None:
    """Load the room's stored schemas, then store every later put and remove."""
    for stored in await store.schemas(room.name):
        room.schemas[stored.name] = stored.schema
        room.schema_owners[stored.name] = stored.owner
    put = room.handlers["schemas.put"][1]
    remove = room.handlers["schemas.remove"][1]

    async def put_and_store(p: Participant, req: SchemaPut, frame: Frame) -> Any:
        before = _state(room, req.name)
        answer = await put(p, req, frame)
        stored = StoredSchema(req.name, room.schemas[req.name], room.schema_owners[req.name])
        try:
            await store.put_schema(room.name, stored)
        except TaskStoreError as exc:
            _restore(room, req.name, before)
            raise RoomError(ErrorCode.FAILED, f"the schema could not be stored: {exc}") from None
        return answer

    async def remove_and_store(p: Participant, req: SchemaName, frame: Frame) -> Any:
        before = _state(room, req.name)
        answer = await remove(p, req, frame)
        try:
            await store.remove_schema(room.name, req.name)
        except TaskStoreError as exc:
            _restore(room, req.name, before)
            raise RoomError(ErrorCode.FAILED, f"the schema removal was not stored: {exc}") from None
        return answer

    room.handle("schemas.put", put_and_store)
    room.handle("schemas.remove", remove_and_store)


_State = tuple[dict[str, Any], str] | None


def _state(room: Room, name: str) -> _State:
    if name not in room.schemas:
        return None
    return room.schemas[name], room.schema_owners.get(name, "")


def _restore(room: Room, name: str, state: _State) -> None:
    if state is None:
        room.schemas.pop(name, None)
        room.schema_owners.pop(name, None)
    else:
        room.schemas[name], room.schema_owners[name] = state
