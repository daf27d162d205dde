"""Turn a room server into one node of a cluster (needs the cluster extra).

``install_cluster``: joins of rooms owned elsewhere are sent to the owner, writes for a
room are fenced by its lease, a lost lease closes the room here so its clients reconnect
to the new owner, and ``/healthz`` reports whether Redis answers.
"""

from __future__ import annotations

import asyncio
import logging

from taskroom.host.server.app import RoomServer
from taskroom.host.server.cluster.errors import ClusterError
from taskroom.host.server.cluster.fenced_store import FencedStore
from taskroom.host.server.cluster.lease import Holder
from taskroom.host.server.cluster.node import DEFAULT_LEASE_TTL, ClusterNode
from taskroom.host.server.cluster.redirect import (
    MAX_REASON_BYTES,
    ROOM_MOVED_CLOSE_CODE,
    JoinGate,
)

logger = logging.getLogger("taskroom.host.server.cluster")

__all__ = [
    "DEFAULT_LEASE_TTL",
    "ROOM_MOVED_CLOSE_CODE",
    "ClusterError",
    "ClusterNode",
    "FencedStore",
    "install_cluster",
]


def install_cluster(
    server: RoomServer,
    *,
    redis_url: str,
    node_url: str,
    lease_ttl: float = DEFAULT_LEASE_TTL,
) -> ClusterNode:
    """Make ``server`` a node reachable at ``node_url``; call before ``install_tasks`` and
    wrap its store in ``FencedStore(store, node)``."""
    node_url = node_url.rstrip("/")
    if not node_url.startswith(("http://", "https://")):
        raise ClusterError(f"--node-url must be an http:// or https:// URL, not {node_url!r}")
    if len(node_url.encode()) > MAX_REASON_BYTES:
        raise ClusterError(
            f"--node-url is {len(node_url.encode())} bytes; a redirect carries at most "
            f"{MAX_REASON_BYTES}"
        )

    async def lost(room_name: str, owner: Holder | None) -> None:
        await _evict(server, room_name, owner)

    node = ClusterNode(redis_url, node_url, lease_ttl=lease_ttl, on_lost=lost)
    server.join_gate = JoinGate(node)
    server.health_reports["cluster"] = node.health
    server.start_hooks.append(node.start)
    server.stop_hooks.append(node.stop)
    if server.public_url is None:
        server.public_url = node_url
    return node


async def _evict(server: RoomServer, room_name: str, owner: Holder | None) -> None:
    """Close a room this node no longer owns; its clients reconnect to the owner."""
    room = server.rooms.pop(room_name, None)
    if room is None:
        return
    reason = owner.node_url if owner is not None else ""
    await asyncio.gather(
        *(p.peer.close(ROOM_MOVED_CLOSE_CODE, reason) for p in list(room.participants.values()))
    )
    for hook in room.close_hooks:
        await hook()
    logger.info("room %s closed on this node; its clients go to %s", room_name, reason or "?")
