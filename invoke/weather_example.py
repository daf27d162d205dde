"""A complete taskroom program: host a tool, run an agent that uses it, start a task on it.

Start a room first, e.g. ``taskroom up`` in another terminal in the same folder, then:

    python invoke/weather_example.py [--room myroom] [--url http://127.0.0.1:8765]
                                     [--data-dir .taskroom] [--city Oslo]

Three participants join the room, each with its own token, minted from the room's secret
as the CLI mints them (``TASKROOM_SECRET``, else ``secret.key`` in the data folder:
``--data-dir``, else ``TASKROOM_DATA_DIR``, else ``.taskroom``):

- a tool host (role ``tool``) hosts the ``weather`` toolkit;
- an agent (role ``agent``): an LLMTaskRunner named ``weather-task-runner``, its own name
  so it never stands in for the runners ``taskroom up`` calls in, which requires the
  ``weather`` toolkit and calls it through the room;
- a user (role ``user``, the local user ``taskroom up``'s token names, so ``taskroom
  tasks list`` shows the task) starts the task and waits for it.

The LLM is OpenAI's (or ``OPENAI_BASE_URL``'s) when ``OPENAI_API_KEY`` is set, else the
scripted test LLM in this process, as with ``taskroom up``. The task id, the result and
the cities the weather tool was asked about are printed as JSON; on failure the task's
error is printed and the exit code is 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from taskroom.agents import LLMTaskRunner, OpenAIResponsesAdapter
from taskroom.agents.testing import ScriptedLLMServer
from taskroom.host.auth.tokens import TokenError, create_token, load_secret
from taskroom.host.client.room_client import RoomClient
from taskroom.host.constants import DATA_DIR_ENV, DEFAULT_DATA_DIR, DEFAULT_URL, LOCAL_USER
from taskroom.host.protocol import RoomError
from taskroom.toolkits import Toolkit, tool
from taskroom.toolkits.requirements import RequiredToolkit

AGENT = "weather-task-runner"
ASKED: list[str] = []
"""Every city the weather tool was asked about, in this process."""


@tool(read_only=True)
def weather(city: str) -> dict[str, Any]:
    """Current weather.

    Args:
        city: City name.
    """
    ASKED.append(city)
    return {"city": city, "celsius": 21, "sky": "clear"}


async def llm_adapter(stack: contextlib.AsyncExitStack) -> OpenAIResponsesAdapter:
    """The real model when a key is set, else the scripted LLM (its answers are synthetic)."""
    if os.environ.get("OPENAI_API_KEY"):
        return OpenAIResponsesAdapter()
    llm = await stack.enter_async_context(ScriptedLLMServer(auto=True))
    print("no OPENAI_API_KEY: using the scripted test LLM", file=sys.stderr)
    return OpenAIResponsesAdapter(base_url=llm.base_url, api_key="scripted", model="scripted")


async def main(url: str, room: str, secret: str, city: str) -> dict[str, Any]:
    """Join as tool host, agent and user; run one task; return its record."""

    def token(identity: str, role: str) -> str:
        return create_token(secret, room=room, identity=identity, role=role)

    async with contextlib.AsyncExitStack() as stack:
        adapter = await llm_adapter(stack)
        tools_host = await stack.enter_async_context(
            RoomClient(url, room, token("weather-tools", "tool"), reconnect=False)
        )
        agent_client = await stack.enter_async_context(
            RoomClient(url, room, token(AGENT, "agent"), reconnect=False)
        )
        user = await stack.enter_async_context(
            RoomClient(url, room, token(LOCAL_USER, "user"), reconnect=False)
        )
        await tools_host.host_toolkit(Toolkit(name="weather", tools=[weather]))
        runner = LLMTaskRunner(
            llm_adapter=adapter,
            name=AGENT,
            title="Weather Task Runner",
            description="Answers questions about the weather with the weather tool.",
            requires=[RequiredToolkit("weather")],
            rules=["Use the weather tool; answer in one sentence."],
        )
        await runner.start(agent_client)
        stack.push_async_callback(runner.stop)
        return await user.tasks.run(AGENT, {"prompt": f"What is the weather in {city}?"})


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--room", default=os.environ.get("TASKROOM_ROOM", "myroom"))
    parser.add_argument("--url", default=os.environ.get("TASKROOM_URL", DEFAULT_URL))
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get(DATA_DIR_ENV, DEFAULT_DATA_DIR)),
        help="the room's data folder, whose secret signs the tokens",
    )
    parser.add_argument("--city", default="Oslo")
    return parser.parse_args()


if __name__ == "__main__":
    args = parse_args()
    try:
        secret = load_secret(args.data_dir, create=False)
        task = asyncio.run(main(args.url, args.room, secret, args.city))
    except TokenError as exc:
        sys.exit(f"error: {exc} (start the room in this folder first, or pass --data-dir)")
    except RoomError as exc:
        sys.exit(f"error: {exc.code.value}: {exc.message}")
    if task["status"] != "completed":
        sys.exit(
            f"error: task {task['id']} {task['status']}: {(task['error'] or {}).get('message')}"
        )
    print(json.dumps({"task_id": task["id"], "result": task["result"], "weather_asked": ASKED}))
