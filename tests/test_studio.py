"""Studio driven in real headless Chromium against a real room with both LLM task runners."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from taskroom.agents import DynamicLLMTaskRunner, LLMTaskRunner, OpenAIResponsesAdapter
from taskroom.agents.testing import ScriptedLLMServer, hang
from taskroom.host.auth.tokens import create_token
from taskroom.host.client.room_client import RoomClient
from taskroom.host.server.build import build_room_server
from taskroom.toolkits.tool import tool
from taskroom.toolkits.toolkit import Toolkit

from .conftest import SECRET

ROOM = "studio"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "temperature": {"type": "integer"}},
    "required": ["city", "temperature"],
    "additionalProperties": False,
}

expect.set_options(timeout=15_000)


@tool(read_only=True)
def forecast(city: str) -> str:
    """Tomorrow's weather in a city.

    Args:
        city: Name of the city.
    """
    return f"sunny in {city}"


@pytest.fixture
async def llm():
    async with ScriptedLLMServer(auto=True) as server:
        yield server


@pytest.fixture
async def room(tmp_path, llm):
    """A room server with both runners (one taking tools) and a plain toolkit to offer."""
    server = build_room_server(data_dir=tmp_path / "data", secret=SECRET)
    await server.start("127.0.0.1", 0)
    agent_token = create_token(SECRET, room=ROOM, identity="runners", role="agent")
    client = RoomClient(server.base_url, ROOM, agent_token)
    await client.connect()

    def adapter() -> OpenAIResponsesAdapter:
        return OpenAIResponsesAdapter(base_url=llm.base_url, api_key="test", max_retries=0)

    await LLMTaskRunner(llm_adapter=adapter(), supports_tools=True).start(client)
    await DynamicLLMTaskRunner(llm_adapter=adapter(), supports_tools=False).start(client)
    await client.host_toolkit(
        Toolkit(name="weather", tools=[forecast], description="Weather forecasts.")
    )
    yield server
    await client.close()
    await server.stop()


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing, and the Studio tests drive a real Chromium. "
            "Install it with: apt-get update && apt-get install -y chromium"
        )
    return CHROMIUM


@pytest.fixture
def screenshot() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / "studio.png"


@pytest.fixture
async def browser(chromium: Path):
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def page(browser: Browser):
    page = await browser.new_page(viewport={"width": 1440, "height": 1000})
    crashes: list[str] = []
    page.on("pageerror", lambda exc: crashes.append(str(exc)))
    yield page
    await page.close()
    assert not crashes, f"the page raised: {crashes}"


def studio_url(server, token: str, room: str = ROOM) -> str:
    return f"{server.base_url}/studio?room={room}#token={token}"


def user_token(**kw) -> str:
    return create_token(SECRET, room=ROOM, identity="alice", role="user", **kw)


async def open_studio(page: Page, server) -> None:
    await page.goto(studio_url(server, user_token()))
    await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "online")


async def run(page: Page, agent: str, prompt: str, output_schema: str | None = None) -> None:
    await page.select_option("#run-agent", agent)
    await page.fill("#field-prompt", prompt)
    if output_schema is not None:
        await page.fill("#run-output-schema", output_schema)
    await page.click("#run-submit")


async def test_studio_shows_the_room_and_runs_tasks_on_both_runners(room, page, screenshot):
    await open_studio(page, room)
    assert "token" not in page.url, "the token must leave the address bar"
    participants = page.get_by_test_id("participant")
    await expect(participants).to_have_count(2)
    await expect(page.locator('[data-testid=participant][data-name="alice"] .you')).to_be_visible()
    agents = page.get_by_test_id("agent")
    await expect(agents).to_have_count(2)
    for name in ("llm-task-runner", "dynamic-llm-task-runner"):
        await expect(page.locator(f'[data-testid=agent][data-name="{name}"]')).to_be_visible()
    await expect(page.locator('[data-testid=toolkit][data-name="weather"]')).to_have_count(1)

    await page.select_option("#run-agent", "llm-task-runner")
    await expect(page.locator("#run-output-schema")).to_have_count(0)
    await page.select_option("#run-tools", ["weather"])
    await run(page, "llm-task-runner", "Write a haiku about rooms")
    status = page.get_by_test_id("task-status")
    await expect(status).to_have_text("completed")
    await expect(page.get_by_test_id("task-result")).to_contain_text("Write a haiku about rooms")
    events = page.get_by_test_id("task-event")
    await expect(events.first).to_be_visible()
    kinds = await events.evaluate_all("els => els.map(e => e.dataset.kind)")
    assert "llm.turn" in kinds and "tool.started" in kinds, kinds
    await expect(page.get_by_test_id("task-usage")).to_contain_text("total tokens")

    await page.select_option("#run-agent", "dynamic-llm-task-runner")
    await expect(page.locator("#run-tools")).to_have_count(0)
    await run(page, "dynamic-llm-task-runner", "Weather in Oslo", json.dumps(CITY_SCHEMA))
    await expect(status).to_have_text("completed")
    result = json.loads(await page.get_by_test_id("task-result").inner_text())
    assert set(result) == {"city", "temperature"} and isinstance(result["temperature"], int)

    rows = page.get_by_test_id("task-row")
    await expect(rows).to_have_count(2)
    await expect(page.locator('[data-testid=task-row][data-status="completed"]')).to_have_count(2)
    await rows.last.click()
    await expect(page.get_by_test_id("task-input")).to_contain_text("Write a haiku about rooms")
    await expect(page.get_by_test_id("task-result")).to_contain_text("Write a haiku about rooms")
    await page.screenshot(path=str(screenshot), full_page=True)


async def test_cancel_a_slow_task(room, page, llm):
    llm.script(hang())
    await open_studio(page, room)
    await run(page, "llm-task-runner", "Take your time")
    await expect(page.get_by_test_id("task-status")).to_have_text("running")
    while not llm.requests:
        await asyncio.sleep(0.02)
    await page.click("#task-cancel")
    await expect(page.get_by_test_id("task-status")).to_have_text("cancelled")
    await expect(page.get_by_test_id("task-error")).to_contain_text("cancelled by alice")
    await expect(page.get_by_test_id("task-error")).not_to_contain_text("(cancelled)")
    await expect(page.get_by_test_id("task-cancel")).to_be_hidden()
    await expect(page.locator('[data-testid=task-row][data-status="cancelled"]')).to_have_count(1)


async def test_the_join_form_says_not_connected(room, page):
    await page.goto(f"{room.base_url}/studio")
    await expect(page.get_by_test_id("join")).to_be_visible()
    connection = page.get_by_test_id("connection")
    await expect(connection).to_have_attribute("data-state", "offline")
    await expect(connection).to_have_text("not connected")


async def test_bad_or_expired_token_shows_the_servers_reason(room, page):
    await page.goto(studio_url(room, user_token(ttl=-60)))
    error = page.get_by_test_id("error-text")
    await expect(error).to_contain_text("token has expired")
    await expect(page.get_by_test_id("join")).to_be_visible()

    forged = create_token("another-secret-" + "y" * 32, room=ROOM, identity="mallory")
    await page.fill("#join-token", forged)
    await page.click("#join-submit")
    await expect(error).to_contain_text("token signature is invalid")

    await page.fill("#join-token", user_token())
    await page.click("#join-submit")
    await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "online")
    await expect(page.get_by_test_id("error")).to_be_hidden()

    await page.goto(f"{room.base_url}/studio#token={user_token()}")  # the room from the token
    await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "online")
    await expect(page.get_by_test_id("room-name")).to_have_text(ROOM)


async def test_invalid_output_schema_shows_the_rooms_error(room, page):
    await open_studio(page, room)
    run_error = page.get_by_test_id("run-error")
    agent = "dynamic-llm-task-runner"
    await run(page, agent, "Anything", "{not json")
    await expect(run_error).to_contain_text("Output schema is not valid JSON")
    await run(page, agent, "Anything", "[1, 2]")
    await expect(run_error).to_contain_text(f"invalid input for agent '{agent}'")
    await expect(page.get_by_test_id("task-row")).to_have_count(0)

    await run(page, agent, "Anything", '{"type": "banana"}')
    await expect(page.get_by_test_id("task-status")).to_have_text("failed")
    await expect(page.get_by_test_id("task-error")).to_contain_text(
        "output_schema is not a valid JSON Schema"
    )


async def test_studio_routes_and_token_check(room):
    base = room.base_url
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/studio") as r:
            assert r.status == 200 and r.content_type == "text/html"
            assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        for name, kind in (("studio.js", "text/javascript"), ("studio.css", "text/css")):
            async with http.get(f"{base}/studio/static/{name}") as r:
                assert r.status == 200 and r.content_type == kind
        for path in ("static/", "static/index.html", "static/..%2Fstudio.py", "static/nope.js"):
            async with http.get(f"{base}/studio/{path}") as r:
                assert r.status == 404, path

        check = f"{base}/studio/api/check?room={ROOM}"
        async with http.get(check) as r:
            assert r.status == 401 and "no token" in (await r.json())["error"]
        auth = {"Authorization": f"Bearer {user_token()}"}
        async with http.get(check, headers=auth) as r:
            assert r.status == 200
            assert (await r.json())["identity"] == "alice"
        async with http.get(f"{base}/studio/api/check?room=other", headers=auth) as r:
            assert r.status == 401 and "not 'other'" in (await r.json())["error"]
        async with http.get(f"{base}/studio/api/check?room=bad%20name", headers=auth) as r:
            assert r.status == 400


async def test_access_log_keeps_tokens_out(room, caplog):
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    token = user_token()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{room.base_url}/rooms/{ROOM}?token={token}&x=1"):
            pass
    for _ in range(100):  # the access line is written just after the response is sent
        lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
        if lines:
            break
        await asyncio.sleep(0.01)
    assert any("token=[redacted]&x=1" in line for line in lines), lines
    assert not any(token in line for line in lines)


async def test_task_list_pages_back_through_older_tasks(room, page):
    alice = RoomClient(room.base_url, ROOM, user_token())
    await alice.connect()
    try:
        ids = [
            (await alice.tasks.start("llm-task-runner", {"prompt": f"n{i}"}))["task_ids"][0]
            for i in range(52)
        ]
        for task_id in ids:
            await alice.tasks.wait(task_id, timeout=10)
    finally:
        await alice.close()
    await open_studio(page, room)
    rows = page.get_by_test_id("task-row")
    await expect(rows).to_have_count(50)
    await page.click("#tasks-more")
    await expect(rows).to_have_count(52)
    await expect(page.get_by_test_id("tasks-more")).to_be_hidden()
    await expect(rows.last).to_contain_text("n0")


FORM_SCHEMA = {
    "type": "object",
    "properties": {
        "topic": {"type": "string", "description": "What to write about."},
        "count": {"type": "integer", "minimum": 1},
        "temperature": {"type": "number"},
        "formal": {"type": "boolean"},
        "tone": {"enum": ["dry", "warm"]},
        "keywords": {"type": "array", "items": {"type": "string"}},
        "extra": {"type": "object"},
    },
    "required": ["topic", "count"],
    "additionalProperties": False,
}


async def test_form_generated_from_the_input_schema(room, page, llm):
    token = create_token(SECRET, room=ROOM, identity="forms", role="agent")
    async with RoomClient(room.base_url, ROOM, token) as host:
        adapter = OpenAIResponsesAdapter(base_url=llm.base_url, api_key="test", max_retries=0)
        runner = LLMTaskRunner(
            llm_adapter=adapter, name="form-runner", input_prompt=False, input_schema=FORM_SCHEMA
        )
        await runner.start(host)
        await open_studio(page, room)
        await page.select_option("#run-agent", "form-runner")
        await page.fill("#field-topic", "rooms")
        await page.fill("#field-count", "2.5")
        await page.click("#run-submit")
        await expect(page.get_by_test_id("run-error")).to_have_text("count must be a whole number")
        await page.fill("#field-count", "3")
        await page.fill("#field-temperature", "0.5")
        await page.select_option("#field-formal", "true")
        await page.select_option("#field-tone", label="warm")
        await page.fill("#field-keywords", "alpha\n\nbeta\n")
        await page.fill("#field-extra", "{bad")
        await page.click("#run-submit")
        await expect(page.get_by_test_id("run-error")).to_contain_text("extra is not valid JSON")
        await page.fill("#field-extra", '{"x": 1}')
        expected = {
            "topic": "rooms",
            "count": 3,
            "temperature": 0.5,
            "formal": True,
            "tone": "warm",
            "keywords": ["alpha", "beta"],
            "extra": {"x": 1},
        }
        await page.check("#run-raw")
        assert json.loads(await page.input_value("#run-raw-input")) == expected
        await page.click("#run-submit")
        await expect(page.get_by_test_id("task-status")).to_have_text("completed")
        shown = json.loads(await page.get_by_test_id("task-input-value").inner_text())
        assert shown == expected
