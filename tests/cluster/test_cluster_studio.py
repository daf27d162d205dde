"""The Studio page opened on a node that does not own the room moves to the owner's."""

from __future__ import annotations

from playwright.async_api import Page, expect

from taskroom.host.auth.tokens import create_token
from taskroom.host.client.room_client import RoomClient
from taskroom.toolkits import Toolkit, tool
from tests.test_studio import browser, chromium, page

from .nodes import SECRET
from .test_cluster_faults import start_node

__all__ = ["browser", "chromium", "page"]

ROOM = "studio-cluster"


@tool(read_only=True)
def forecast(city: str) -> str:
    """Tomorrow's weather in a city."""
    return f"sunny in {city}"


async def test_studio_on_another_node_joins_the_room_at_its_owner(
    tmp_path, redis_server, postgres_dsn, page: Page
) -> None:
    owner = await start_node(tmp_path, redis_server.url, postgres_dsn)
    other = await start_node(tmp_path, redis_server.url, postgres_dsn)
    host = RoomClient(
        owner.base_url or "", ROOM, create_token(SECRET, room=ROOM, identity="host", role="agent")
    )
    try:
        await host.connect()
        await host.host_toolkit(Toolkit(name="weather", tools=[forecast]))
        token = create_token(SECRET, room=ROOM, identity="alice", role="user")
        await page.goto(f"{other.base_url}/studio?room={ROOM}#token={token}")
        await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "online")
        assert page.url.startswith(f"{owner.base_url}/studio?room={ROOM}")
        assert "token" not in page.url
        await expect(page.get_by_test_id("participant")).to_have_count(2)
        await expect(page.locator('[data-testid=toolkit][data-name="weather"]')).to_have_count(1)
        assert "alice" in {p.name for p in await host.list_participants()}
        assert ROOM not in other.rooms
    finally:
        await host.close()
        await owner.stop()
        await other.stop()
