"""Sending a client's frames: those of one event-loop turn leave in one socket write.

``ClientConnection.send`` enters a context manager, checks flow control and makes one
system call per frame. A client with many calls in flight (a caller, or a host answering
them) sends several frames per loop turn; here each frame is handed at once to the
connection's sans-I/O protocol, which keeps it in order with the library's own frames
(pings, pongs, the close), and the bytes of every frame of the turn are written together
from one ``call_soon`` callback. Anything but the plain case (the connection closing, a
full write buffer) goes through the library's own paths. The client never sends a
fragmented message, so no fragment can be in progress when a frame is handed over.
"""

from __future__ import annotations

import asyncio
import contextlib

from websockets.asyncio.client import ClientConnection
from websockets.protocol import State

HIGH_WATER = 256 * 1024
"""Bytes queued in one loop turn after which a send writes them at once and waits for
the socket to drain, as the library's own ``send`` would."""


class FrameWriter:
    """The frames one client connection sends, written once per loop turn."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._loop = asyncio.get_running_loop()
        self._scheduled = False
        self._queued = 0

    async def send(self, text: str) -> None:
        """Queue a text frame for this loop turn's write; raises ConnectionClosed as
        ``ClientConnection.send`` does once the connection is closing."""
        ws = self._ws
        if ws.protocol.state is not State.OPEN:
            self.flush()
            await ws.send(text)
            return
        data = text.encode()
        ws.protocol.send_text(data)
        self._queued += len(data)
        if self._queued > HIGH_WATER or ws.paused:
            self.flush()
            await ws.drain()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write what the protocol holds (the library's own sends may have done it)."""
        self._scheduled = False
        self._queued = 0
        ws = self._ws
        chunks = ws.protocol.data_to_send()
        if not chunks:
            return
        if all(chunks):
            ws.transport.write(b"".join(chunks))
            return
        for chunk in chunks:  # an end-of-stream marker: as the library's send_data does
            if chunk:
                ws.transport.write(chunk)
            elif ws.transport.can_write_eof():
                with contextlib.suppress(Exception):  # the library ignores these too
                    ws.transport.write_eof()
            else:
                ws.transport.close()
