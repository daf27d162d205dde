"""A service hosting both LLM task runners, for rooms to call in by webhook.

Run it and call both runners into a room in one step (the room's secret is read from
--data-dir, else TASKROOM_DATA_DIR, else .taskroom/, as every command reads it):

    taskroom service run invoke/llm_taskrunner_service.py --room myroom

`taskroom service run` runs this file as its own process, picks a free port for it and
hands it the room's webhook secret; Ctrl-C makes both runners leave the room. The model
comes from TASKROOM_MODEL, the endpoint and key from OPENAI_BASE_URL and OPENAI_API_KEY.
"""

from __future__ import annotations

import asyncio

from taskroom.agents import DynamicLLMTaskRunner, LLMTaskRunner, OpenAIResponsesAdapter
from taskroom.host import ServiceHost

service = ServiceHost()


@service.path("/llm-task-runner", identity="llm-task-runner")
def llm_task_runner() -> LLMTaskRunner:
    return LLMTaskRunner(llm_adapter=OpenAIResponsesAdapter(), supports_tools=False)


@service.path("/dynamic-llm-task-runner", identity="dynamic-llm-task-runner")
def dynamic_llm_task_runner() -> DynamicLLMTaskRunner:
    return DynamicLLMTaskRunner(llm_adapter=OpenAIResponsesAdapter(), supports_tools=False)


if __name__ == "__main__":
    asyncio.run(service.run())
