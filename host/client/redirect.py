"""Finding the node that owns a room: entry URLs, redirects, and a hop limit.

In a cluster a room lives on one node. A node that does not own the room accepts the
WebSocket and closes it at once with ``ROOM_MOVED_CLOSE_CODE`` and the owner's URL as the
reason (a browser cannot read the Location of an HTTP redirect during a WebSocket
handshake, but every client sees a close frame). The client follows, at most
``MAX_REDIRECTS`` hops and never back to a node it already visited, so a misconfigured
cluster is an error rather than a loop. Every (re)connection starts again from the entry
URLs, so a client is never stuck on the address of a node that has died.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from websockets.exceptions import ConnectionClosed

from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.protocol.frames import ROOM_MOVED_CLOSE_CODE

MAX_REDIRECTS = 5


class RoomMoved(RoomError):
    """The node answered that another node owns the room."""

    def __init__(self, owner_url: str) -> None:
        super().__init__(ErrorCode.UNAVAILABLE, f"the room is served by {owner_url}")
        self.owner_url = owner_url


def entry_urls(url: str) -> list[str]:
    """The nodes to try, in order: ``url`` is one address (a name in front of every node)
    or several separated by commas."""
    entries = [u.strip().rstrip("/") for u in url.split(",") if u.strip()]
    if not entries:
        raise RoomError(ErrorCode.INVALID_REQUEST, f"no room server URL in {url!r}")
    return entries


def moved_to(exc: ConnectionClosed) -> str | None:
    """The owner's URL when the node closed the socket to send the client there."""
    if exc.rcvd is not None and exc.rcvd.code == ROOM_MOVED_CLOSE_CODE and exc.rcvd.reason:
        return exc.rcvd.reason
    return None


async def open_owner(
    url: str,
    open_at: Callable[[str], Awaitable[None]],
    *,
    max_redirects: int = MAX_REDIRECTS,
) -> str:
    """Open the room at the node that owns it and return that node's URL.

    ``open_at(node_url)`` joins through one node, raising RoomMoved to be sent on. An entry
    that cannot be reached, or whose owner cannot, is skipped for the next; if none
    answers, the last failure is raised. A loop or too many hops raises ``failed``.
    """
    failure: RoomError | None = None
    for entry in entry_urls(url):
        path = [entry]
        while True:
            try:
                await open_at(path[-1])
                return path[-1]
            except RoomMoved as moved:
                owner = moved.owner_url.rstrip("/")
                if owner in path or len(path) > max_redirects:
                    hops = " -> ".join([*path, owner])
                    raise RoomError(
                        ErrorCode.FAILED,
                        f"the room servers redirected in a loop ({hops}); check that each "
                        "node's --node-url is its own address",
                    ) from None
                path.append(owner)
            except RoomError as exc:
                if exc.code != ErrorCode.UNAVAILABLE:
                    raise
                failure = exc
                if len(path) > 1:
                    failure = RoomError(
                        ErrorCode.UNAVAILABLE,
                        f"{path[0]} sent the client to the room's owner, {path[-1]}, which "
                        f"does not answer ({exc.message}); another node takes the room once "
                        "the owner's lease expires",
                    )
                break
    assert failure is not None
    raise failure
