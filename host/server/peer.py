"""The room's one seam for I/O: a ``Peer`` sends text frames and can be closed.

The room and its task manager never see a socket. The server wraps each WebSocket in a
:class:`QueuedPeer`; unit tests plug in peers that keep frames in memory.

``QueuedPeer`` never makes the sender wait: frames go into a per-connection queue that a
writer task drains. A reader that falls behind until the queue holds more than its byte
limit is disconnected with a clear close reason, so one slow participant can neither
block the handler of another (an agent answering a call) nor grow the room's memory.
When several frames are waiting and the connection can take them together
(``send_batch``), they leave in one write: a busy room makes fewer system calls the
busier it gets. With ``write_now``, the frames of one loop turn leave from a plain
callback at the end of it, with no task to wake, whenever the socket can take them
without waiting; the writer task only steps in when it cannot.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

logger = logging.getLogger(__name__)

DEFAULT_SEND_QUEUE_BYTES = 16 * 1024 * 1024
"""Bytes a connection may have queued and unsent before the room disconnects it."""

SLOW_READER_CLOSE_CODE = 4008
"""Close code for a participant that stopped reading its socket."""

MAX_BATCH_BYTES = 256 * 1024
"""Frames joined into one write at most; a larger backlog goes out in several."""


class Peer(Protocol):
    """Where the room sends one participant's frames."""

    @property
    def closed(self) -> bool: ...

    def send(self, text: str) -> None:
        """Queue one frame; never blocks, never raises for a peer that has gone."""

    async def close(self, code: int, reason: str) -> None:
        """Close the connection; frames queued before it are sent first."""


SendText = Callable[[str], Awaitable[None]]
SendBatch = Callable[[list[str]], Awaitable[None]]
CloseSocket = Callable[[int, str], Awaitable[None]]
WriteNow = Callable[[list[str]], bool]
"""Write frames at once if the socket can take them without waiting; False if not."""


class QueuedPeer:
    """A peer over any ``send_text``/``close`` pair, with a bounded send queue."""

    def __init__(
        self,
        send_text: SendText,
        close_socket: CloseSocket,
        *,
        max_queue_bytes: int = DEFAULT_SEND_QUEUE_BYTES,
        name: str = "peer",
        send_batch: SendBatch | None = None,
        write_now: WriteNow | None = None,
    ) -> None:
        self._send_text = send_text
        self._send_batch = send_batch
        self._write_now = write_now
        self._flush_soon = False
        self._writing = False
        """The writer task is in the middle of a send: what is queued waits for it."""
        self._close_socket = close_socket
        self.max_queue_bytes = max_queue_bytes
        self.name = name
        self._queue: collections.deque[str] = collections.deque()
        self._queued_bytes = 0
        self._wake = asyncio.Event()
        self._closed = False
        self._writer = asyncio.get_running_loop().create_task(self._write())

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    def send(self, text: str) -> None:
        if self._closed:
            return
        size = len(text)
        if self._queued_bytes + size > self.max_queue_bytes and self._queue:
            logger.warning(
                "%s is not reading: %d bytes queued (limit %d); disconnecting it",
                self.name,
                self._queued_bytes + size,
                self.max_queue_bytes,
            )
            self._abort(
                SLOW_READER_CLOSE_CODE,
                f"send queue over {self.max_queue_bytes} bytes: the connection is not being read",
            )
            return
        self._queue.append(text)
        self._queued_bytes += size
        if self._write_now is None:
            self._wake.set()
        elif not self._flush_soon:
            self._flush_soon = True
            self._writer.get_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Write this turn's frames at once if the socket takes them, else wake the writer."""
        self._flush_soon = False
        if self._closed or not self._queue:
            return
        if (
            self._writing
            or self._write_now is None
            or self._queued_bytes > MAX_BATCH_BYTES
            or not self._write_now(list(self._queue))
        ):
            self._wake.set()
            return
        self._queue.clear()
        self._queued_bytes = 0

    async def _write(self) -> None:
        try:
            while True:
                while not self._queue:
                    if self._closed:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                self._writing = True
                if self._send_batch is not None and len(self._queue) > 1:
                    await self._send_batch(self._take_batch())
                else:
                    text = self._queue.popleft()
                    self._queued_bytes -= len(text)
                    await self._send_text(text)
                self._writing = False
        except (ConnectionError, RuntimeError) as exc:
            logger.debug("dropping frames to %s: %s", self.name, exc)
            self._closed = True
            self._queue.clear()
            self._queued_bytes = 0

    def _take_batch(self) -> list[str]:
        batch: list[str] = []
        size = 0
        while self._queue and size < MAX_BATCH_BYTES:
            text = self._queue.popleft()
            size += len(text)
            batch.append(text)
        self._queued_bytes -= size
        return batch

    def _abort(self, code: int, reason: str) -> None:
        """Drop what is queued and close at once (the reader is not reading anyway)."""
        self._closed = True
        self._queue.clear()
        self._queued_bytes = 0
        self._writer.cancel()
        task = asyncio.ensure_future(self._close_socket(code, reason))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def close(self, code: int, reason: str) -> None:
        if not self._closed:
            self._closed = True
            self._wake.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._writer), 5.0)
        self._writer.cancel()
        with contextlib.suppress(Exception):
            await self._close_socket(code, reason)
