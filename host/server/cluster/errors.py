"""Errors of a cluster node; importable without the cluster extra installed."""

from __future__ import annotations

from taskroom.host.protocol import RoomError


class ClusterError(RuntimeError):
    """The node cannot join the cluster; the message names what is missing."""


class FencedOut(RoomError):
    """This node's lease on the room lapsed or was taken: it must not write for the room."""
