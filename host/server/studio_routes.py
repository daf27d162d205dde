"""Studio: the room in a web page, served by the room server itself.

The page is static files shipped in the package (``taskroom/host/studio``). It
joins a room over the same WebSocket every client uses, with a token it reads from the
URL fragment or a form, so the token never reaches the server in a page request. A
refused WebSocket upgrade hides its reason from the browser, so ``/studio/api/check``
answers the same authentication question over plain HTTP for the page to show.
"""

from __future__ import annotations

import logging
import re
from importlib import resources

from aiohttp import web

from taskroom.host.auth.tokens import TokenError
from taskroom.host.server.app import ROOM_NAME, RoomServer

CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css"}
ASSET_NAME = re.compile(r"^[a-z0-9-]+(\.js|\.css)$")
"""Only scripts and stylesheets are served under ``/studio/static/``; no listing."""

HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}

_TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s\"]*")


class RedactTokens(logging.Filter):
    """Browsers pass the WebSocket token as ``?token=``; keep it out of the access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "token=" in record.msg:
            record.msg = _TOKEN_IN_QUERY.sub(r"\1[redacted]", record.msg)
        line = getattr(record, "first_request_line", None)
        if isinstance(line, str):
            record.first_request_line = _TOKEN_IN_QUERY.sub(r"\1[redacted]", line)
        return True


def install_studio(server: RoomServer) -> None:
    """Serve Studio at ``/studio``, its assets at ``/studio/static/``, and the token check."""
    files = resources.files("taskroom.host") / "studio"

    async def index(request: web.Request) -> web.Response:
        body = (files / "index.html").read_bytes()
        return web.Response(body=body, content_type="text/html", charset="utf-8", headers=HEADERS)

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        found = ASSET_NAME.match(name)
        if found is None or not (files / name).is_file():
            raise web.HTTPNotFound(text=f"no Studio asset named {name!r}")
        body = (files / name).read_bytes()
        content_type = CONTENT_TYPES[found.group(1)]
        return web.Response(body=body, content_type=content_type, charset="utf-8", headers=HEADERS)

    async def check(request: web.Request) -> web.Response:
        room = request.query.get("room", "")
        if not ROOM_NAME.match(room):
            return _json({"error": f"invalid room name {room!r}"}, 400)
        try:
            token = server.authenticate(request, room)
        except TokenError as exc:
            return _json({"error": str(exc)}, 401)
        return _json(
            {
                "room": room,
                "identity": token.identity,
                "role": token.role,
                "expires_at": token.expires_at,
            },
            200,
        )

    router = server.app.router
    router.add_get("/studio", index)
    router.add_get("/studio/", index)
    router.add_get("/studio/static/{name}", asset)
    router.add_get("/studio/api/check", check)
    access = logging.getLogger("aiohttp.access")
    if not any(isinstance(f, RedactTokens) for f in access.filters):
        access.addFilter(RedactTokens())


def _json(data: dict[str, object], status: int) -> web.Response:
    return web.json_response(data, status=status, headers={"Cache-Control": "no-store"})
