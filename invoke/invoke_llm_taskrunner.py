"""Run one task on each LLM task runner in a room and print both results as JSON.

    python invoke/invoke_llm_taskrunner.py --room myroom [--url URL] [--token TOKEN]
                                           [--data-dir DIR]

Without --token a user token is minted from the room's secret: TASKROOM_SECRET, else the
secret file in --data-dir (default: TASKROOM_DATA_DIR, else .taskroom/).

The runners must be in the room, e.g. called in with
``taskroom service run invoke/llm_taskrunner_service.py --room myroom``. The tasks are
the ones ``taskroom up --demo`` runs; replace TASKS below to try your own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from taskroom.agents.demo import DEMO_TASKS
from taskroom.host.auth.tokens import TokenError, create_token, load_secret
from taskroom.host.client.room_client import RoomClient
from taskroom.host.constants import DATA_DIR_ENV, DEFAULT_DATA_DIR, DEFAULT_URL, LOCAL_USER
from taskroom.host.protocol import RoomError
from taskroom.host.protocol.tasks import task_tool_name

TASKS: dict[str, dict[str, Any]] = DEMO_TASKS
"""Runner name -> the arguments of the task to run on it."""


async def main(url: str, room: str, token: str) -> dict[str, Any]:
    """Run both tasks at once through the room; returns each runner's result by name."""
    async with RoomClient(url, room, token, reconnect=False) as client:
        results = await asyncio.gather(
            *(
                client.invoke_tool(name, task_tool_name(name), arguments)
                for name, arguments in TASKS.items()
            )
        )
    return dict(zip(TASKS, results, strict=True))


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--room", default=os.environ.get("TASKROOM_ROOM"))
    parser.add_argument("--url", default=os.environ.get("TASKROOM_URL", DEFAULT_URL))
    parser.add_argument(
        "--token",
        default=os.environ.get("TASKROOM_TOKEN"),
        help="participant token; without one, minted for the local user from the room's "
        "secret (TASKROOM_SECRET, else secret.key in the data folder)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get(DATA_DIR_ENV, DEFAULT_DATA_DIR)),
        help="the room's data folder",
    )
    args = parser.parse_args()
    if not args.room:
        parser.error("--room (or TASKROOM_ROOM) is required")
    return args


if __name__ == "__main__":
    args = _parse_args()
    try:
        token = args.token or create_token(
            load_secret(args.data_dir, create=False), room=args.room, identity=LOCAL_USER
        )
        results = asyncio.run(main(args.url, args.room, token))
    except TokenError as exc:
        sys.exit(f"error: no --token given and none can be minted here: {exc}")
    except RoomError as exc:
        sys.exit(f"error: {exc.code.value}: {exc.message}")
    print(json.dumps(results, indent=2, ensure_ascii=False))
