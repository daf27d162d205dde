"""An agent process for tests: an LLMTaskRunner joined to a room until killed."""

from __future__ import annotations

import asyncio
import sys

from taskroom.agents import LLMTaskRunner, OpenAIResponsesAdapter
from taskroom.host.client.room_client import RoomClient


async def main(url: str, room: str, token: str, llm_base_url: str, concurrency: int) -> None:
    adapter = OpenAIResponsesAdapter(base_url=llm_base_url, api_key="test", max_retries=0)
    runner = LLMTaskRunner(llm_adapter=adapter, max_concurrency=concurrency)
    async with RoomClient(url, room, token) as client:
        await runner.start(client)
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5], int(sys.argv[5])))
