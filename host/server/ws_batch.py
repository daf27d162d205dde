"""Several WebSocket text frames in one socket write.

On loopback most of a room's CPU per routed call goes to ``send`` system calls: the
kernel runs the receiver's side of TCP inside the sender's call. A busy connection (one
caller with many calls in flight, an agent serving many tasks) often has several frames
queued at once; framing them together and writing them with one call costs one system
call instead of one each. A connection that negotiated compression is framed by aiohttp
itself, one frame at a time.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable

from aiohttp import web

SendBatch = Callable[[list[str]], Awaitable[None]]
WriteNow = Callable[[list[str]], bool]

WRITE_NOW_LIMIT = 64 * 1024
"""Bytes the socket's buffer may hold for ``write_now`` to add to it without waiting."""

_TEXT_FIN = 0x81
"""FIN bit and the text opcode: every frame the room sends is one whole text message."""


def frame_text(data: bytes) -> bytes:
    """One unmasked (server-to-client) text frame carrying ``data``, per RFC 6455 §5.2."""
    size = len(data)
    if size < 126:
        header = struct.pack("!BB", _TEXT_FIN, size)
    elif size < 65536:
        header = struct.pack("!BBH", _TEXT_FIN, 126, size)
    else:
        header = struct.pack("!BBQ", _TEXT_FIN, 127, size)
    return header + data


def batch_sender(ws: web.WebSocketResponse, request: web.Request) -> SendBatch:
    """Send frames in one write on ``ws``, waiting while the socket's buffer is full."""
    writer = request.writer

    async def send_batch(texts: list[str]) -> None:
        if ws.compress:
            for text in texts:
                await ws.send_str(text)
            return
        transport = writer.transport
        if ws.closed or transport is None or transport.is_closing():
            raise ConnectionResetError("the WebSocket is closing")
        transport.write(b"".join(frame_text(text.encode()) for text in texts))
        await writer.drain()

    return send_batch


def immediate_writer(ws: web.WebSocketResponse, request: web.Request) -> WriteNow:
    """Write frames in one write without awaiting anything, if the connection is
    uncompressed and open and its socket buffer nearly empty; else leave them (False)
    to :func:`batch_sender`, which waits for the buffer to drain."""
    writer = request.writer

    def write_now(texts: list[str]) -> bool:
        transport = writer.transport
        if (
            ws.compress
            or ws.closed
            or transport is None
            or transport.is_closing()
            or transport.get_write_buffer_size() > WRITE_NOW_LIMIT
        ):
            return False
        transport.write(b"".join(frame_text(text.encode()) for text in texts))
        return True

    return write_now
