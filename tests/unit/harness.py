"""Drive a Room and its TaskManager through in-memory peers: no socket is opened.

A :class:`MemoryPeer` keeps every frame the room sends; :class:`Harness` joins
participants, sends their requests straight to ``Room.dispatch``, and lets a test play a
toolkit host by reading ``tool.call`` frames and answering them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from typing import Any

import pytest

from taskroom.host.auth.tokens import DEFAULT_GRANTS, ParticipantToken
from taskroom.host.protocol import ErrorCode, Frame, RoomError
from taskroom.host.server.participant import Participant
from taskroom.host.server.room import Room
from taskroom.host.server.tasks.manager import TaskManager
from taskroom.host.server.tasks.sqlite_store import SQLiteTaskStore


class MemoryPeer:
    """A peer that records frames and wakes whoever waits for one."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.closed = False
        self.close_code: int | None = None
        self._changed = asyncio.Event()

    def send(self, text: str) -> None:
        if not self.closed:
            self.frames.append(json.loads(text))
            self._changed.set()

    async def close(self, code: int, reason: str) -> None:
        self.closed = True
        self.close_code = code

    async def next(self, match: Any, timeout: float = 2.0) -> dict[str, Any]:
        """The first recorded frame ``match(frame)`` accepts, waiting for it if needed."""
        seen = 0

        async def find() -> dict[str, Any]:
            nonlocal seen
            while True:
                for frame in self.frames[seen:]:
                    if match(frame):
                        self.frames.remove(frame)
                        return frame
                seen = 0
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(find(), timeout)


class Harness:
    """One room with tasks over a SQLite file, and helpers to act as its participants."""

    def __init__(self, room: Room, store: SQLiteTaskStore) -> None:
        self.room = room
        self.store = store
        self._ids = 0

    @classmethod
    async def create(cls, path: Any, name: str = "unit") -> Harness:
        room = Room(name)
        store = SQLiteTaskStore(path)
        manager = TaskManager(room, store, inactivity_timeout=30)
        await manager.install()
        room.tasks = manager
        return cls(room, store)

    async def close(self) -> None:
        for hook in self.room.close_hooks:
            await hook()
        await self.store.close()

    async def join(
        self, identity: str, role: str = "user", grants: list[str] | None = None
    ) -> Participant:
        token = ParticipantToken(
            room=self.room.name,
            identity=identity,
            role=role,
            grants=list(DEFAULT_GRANTS[role]) if grants is None else grants,
        )
        p = Participant(MemoryPeer(), token)
        await self.room.join(p)
        return p

    async def send(self, p: Participant, type_: str, data: dict[str, Any] | None = None) -> int:
        self._ids += 1
        await self.room.dispatch(p, Frame(id=self._ids, type=type_, data=data or {}))
        return self._ids

    async def answer_of(self, p: Participant, rid: int, timeout: float = 2.0) -> dict[str, Any]:
        """The data of the answer to request ``rid``; an error frame raises RoomError."""
        frame = await peer(p).next(
            lambda f: f.get("id") == rid and f["type"] in ("response", "error"), timeout
        )
        if frame["type"] == "error":
            raise RoomError.from_data(frame["data"])
        return frame["data"]

    async def request(
        self, p: Participant, type_: str, data: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return await self.answer_of(p, await self.send(p, type_, data))

    async def host(
        self,
        identity: str,
        toolkit: str,
        tools: list[dict[str, Any]],
        *,
        public: bool = True,
        allowed_callers: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        role: str = "agent",
    ) -> Participant:
        p = await self.join(identity, role)
        await self.request(
            p,
            "toolkits.register",
            {
                "name": toolkit,
                "public": public,
                "allowed_callers": allowed_callers or [],
                "tools": tools,
                "metadata": metadata or {},
            },
        )
        return p

    async def host_agent(self, identity: str, agent: str, **kw: Any) -> Participant:
        metadata = {"agent": True, **kw.pop("metadata", {})}
        return await self.host(
            identity, agent, [{"name": f"run_{agent}_task"}], metadata=metadata, **kw
        )

    @staticmethod
    async def next_call(host: Participant, timeout: float = 2.0) -> dict[str, Any]:
        return await peer(host).next(lambda f: f["type"] == "tool.call", timeout)

    async def reply(self, host: Participant, call: dict[str, Any], result: Any) -> None:
        await self.room.dispatch(
            host, Frame(id=call["id"], type="response", data={"result": result})
        )

    async def fail(self, host: Participant, call: dict[str, Any], code: str, message: str) -> None:
        await self.room.dispatch(
            host, Frame(id=call["id"], type="error", data={"code": code, "message": message})
        )


def peer(p: Participant) -> MemoryPeer:
    assert isinstance(p.peer, MemoryPeer)
    return p.peer


def tool(name: str, *, read_only: bool = False) -> dict[str, Any]:
    return {"name": name, "annotations": {"read_only": read_only}}


async def refused(awaitable: Awaitable[Any], code: ErrorCode) -> RoomError:
    """The RoomError ``awaitable`` raises, which must carry ``code``."""
    with pytest.raises(RoomError) as info:
        await awaitable
    assert info.value.code == code, info.value.message
    return info.value
