"""One node of a cluster: the rooms it owns, their leases, and whether Redis answers.

A node serves a room only while it holds the room's lease. It renews every lease it holds
a few times per TTL in one round trip; a lease it fails to renew is lost, and the node
lets go of the room (``on_lost``) so its clients reconnect to the new owner. Between
renewals it knows how long each lease is surely still its own (``valid_until``, counted
from before the renewal was sent), and refuses store writes past that: a node that was
paused longer than the TTL wakes up unable to write, before it even learns it lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.server.cluster.errors import ClusterError, FencedOut
from taskroom.host.server.cluster.lease import Holder, LeaseTable

logger = logging.getLogger(__name__)

DEFAULT_LEASE_TTL = 5.0
"""Seconds a room stays owned by a node that stopped renewing: the bulk of failover time."""
RENEWALS_PER_TTL = 5
"""Renewal rounds per TTL: up to four in a row may fail before a lease lapses."""
VALIDITY_SHARE = 0.9
"""Share of the TTL a node trusts a renewed lease for, leaving room for clock drift."""
REDIS_TIMEOUT = 1.0

OnLost = Callable[[str, Holder | None], Awaitable[None]]


@dataclass
class HeldRoom:
    holder: Holder
    valid_until: float
    """``time.monotonic()`` up to which the lease is surely still this node's."""


class ClusterNode:
    """Leases of the rooms this node owns, kept alive by one background renewal loop."""

    def __init__(
        self,
        redis_url: str,
        node_url: str,
        *,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        on_lost: OnLost | None = None,
    ) -> None:
        self.redis_url = redis_url
        self.node_url = node_url.rstrip("/")
        self.lease_ttl = lease_ttl
        self.on_lost = on_lost
        self.held: dict[str, HeldRoom] = {}
        self.redis_error: str | None = None
        """Why Redis cannot be reached right now, or None while it answers."""
        self._redis: Redis | None = None
        self._leases: LeaseTable | None = None
        self._claims: dict[str, asyncio.Future[str | None]] = {}
        self._renewer: asyncio.Task[None] | None = None

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to Redis and start renewing; raises ClusterError if Redis does not answer."""
        redis = Redis.from_url(
            self.redis_url,
            socket_timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT,
        )
        try:
            await redis.ping()
        except (RedisError, OSError) as exc:
            await redis.aclose()
            raise ClusterError(f"cannot reach Redis at {_safe(self.redis_url)}: {exc}") from None
        self._redis = redis
        self._leases = LeaseTable(redis, self.lease_ttl)
        self._renewer = asyncio.get_running_loop().create_task(self._renew_forever())
        logger.info("node %s joined the cluster at %s", self.node_url, _safe(self.redis_url))

    async def stop(self) -> None:
        """Stop renewing and hand every room back at once, so another node can take it."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        if self._leases is not None:
            for room, held in list(self.held.items()):
                with contextlib.suppress(RedisError, OSError):
                    await self._leases.release(room, held.holder)
        self.held.clear()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    # --- ownership ----------------------------------------------------------------------

    async def claim(self, room: str) -> str | None:
        """None when this node serves ``room`` (taking its lease if free), else the URL of
        the node that owns it. Raises RoomError (unavailable) while Redis is unreachable."""
        if room in self.held:
            return None
        pending = self._claims.get(room)
        if pending is not None:  # one acquisition per room at a time on this node
            return await asyncio.shield(pending)
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._claims[room] = future
        try:
            owner = await self._acquire(room)
            future.set_result(owner)
            return owner
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a claimant sharing it re-raises it
            raise
        finally:
            self._claims.pop(room, None)

    async def _acquire(self, room: str) -> str | None:
        if self._leases is None or self.redis_error is not None:
            raise RoomError(
                ErrorCode.UNAVAILABLE,
                f"node {self.node_url} cannot reach Redis ({self.redis_error or 'not started'}) "
                f"and takes no new rooms; try another node",
            )
        started = time.monotonic()
        try:
            won, holder = await self._leases.acquire(room, self.node_url)
        except (RedisError, OSError) as exc:
            self._redis_failed(exc)
            raise RoomError(
                ErrorCode.UNAVAILABLE,
                f"node {self.node_url} cannot reach Redis to take room {room!r}: {exc}",
            ) from None
        if not won:
            return holder.node_url
        self.held[room] = HeldRoom(holder, started + self.lease_ttl * VALIDITY_SHARE)
        logger.info("node %s owns room %s (fencing token %d)", self.node_url, room, holder.fence)
        return None

    def check_write(self, room: str) -> int:
        """The fencing token to write under; raises FencedOut if the lease is not surely ours."""
        held = self.held.get(room)
        if held is None:
            raise FencedOut(
                ErrorCode.UNAVAILABLE,
                f"node {self.node_url} does not own room {room!r}; the write is refused",
            )
        if time.monotonic() >= held.valid_until:
            raise FencedOut(
                ErrorCode.UNAVAILABLE,
                f"the lease of node {self.node_url} on room {room!r} (fencing token "
                f"{held.holder.fence}) was not renewed in time; the write is refused",
            )
        return held.holder.fence

    def health(self) -> dict[str, Any]:
        return {
            "degraded": self.redis_error is not None,
            "node_url": self.node_url,
            "redis": "ok" if self.redis_error is None else f"unreachable: {self.redis_error}",
            "accepting_rooms": self.redis_error is None and self._leases is not None,
            "rooms_owned": len(self.held),
        }

    # --- renewal ------------------------------------------------------------------------

    async def _renew_forever(self) -> None:
        interval = self.lease_ttl / RENEWALS_PER_TTL
        while True:
            await asyncio.sleep(interval)
            await self.renew_once()

    async def renew_once(self) -> None:
        """One renewal round over every held lease."""
        assert self._leases is not None
        held = {room: h.holder for room, h in self.held.items()}
        started = time.monotonic()
        try:
            renewed = await self._leases.renew(held)
            if not held:
                await self._leases.redis.ping()
        except (RedisError, OSError) as exc:
            self._redis_failed(exc)
            return
        if self.redis_error is not None:
            logger.warning("node %s reaches Redis again; taking new rooms", self.node_url)
            self.redis_error = None
        for room, ok in renewed.items():
            current = self.held.get(room)
            if current is None or current.holder != held[room]:
                continue  # released or re-acquired meanwhile
            if ok:
                current.valid_until = started + self.lease_ttl * VALIDITY_SHARE
            else:
                await self._lost(room)

    async def _lost(self, room: str) -> None:
        held = self.held.pop(room, None)
        owner: Holder | None = None
        with contextlib.suppress(RedisError, OSError):
            if self._leases is not None:
                owner = await self._leases.holder(room)
        logger.warning(
            "node %s lost room %s (fencing token %s) to %s",
            self.node_url,
            room,
            held.holder.fence if held else "?",
            owner.node_url if owner else "nobody yet",
        )
        if self.on_lost is not None:
            await self.on_lost(room, owner)

    def _redis_failed(self, exc: BaseException) -> None:
        if self.redis_error is None:
            logger.error(
                "node %s cannot reach Redis (%s): taking no new rooms; serving its %d rooms "
                "while their leases last, then without store writes",
                self.node_url,
                exc,
                len(self.held),
            )
        self.redis_error = str(exc) or type(exc).__name__


def _safe(url: str) -> str:
    """A Redis URL without its password, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"
