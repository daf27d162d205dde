"""A service hosting both LLM task runners, for rooms to call in by webhook.

Run it and call both runners into a room in one step:

    taskroom service run invoke/llm_taskrunner_service.py --room myroom

or serve it and let a room call one in later:

    taskroom call agent --room myroom --service llm_taskrunner_service \\
        --agent llm-task-runner

The model comes from TASKROOM_MODEL, the endpoint and key from OPENAI_BASE_URL and
OPENAI_API_KEY; the webhook secret from TASKROOM_WEBHOOK_SECRET, else TASKROOM_SECRET.
"""

from __future__ import annotations

from taskroom.agents import OpenAIResponsesAdapter
from taskroom.agents.llm_task_runner import DynamicLLMTaskRunner, LLMTaskRunner
from taskroom.host.service.service_host import ServiceHost

service = ServiceHost(port=8766)


@service.path("/llm-task-runner", identity="llm-task-runner")
def llm_task_runner() -> LLMTaskRunner:
    return LLMTaskRunner(llm_adapter=OpenAIResponsesAdapter())


@service.path("/dynamic-llm-task-runner", identity="dynamic-llm-task-runner")
def dynamic_llm_task_runner() -> DynamicLLMTaskRunner:
    return DynamicLLMTaskRunner(llm_adapter=OpenAIResponsesAdapter())
