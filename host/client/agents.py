"""``RoomClient.agents``: asking agents, calling tools and calling agents in, MeshAgent's way.

Code written against MeshAgent's ``room.agents`` (``ask``, ``invoke_tool``,
``list_toolkits``, ``list_agents``, ``make_call``) runs on these. Each maps onto the room's
own API: ``ask`` runs a task (so it leaves a durable task record with its progress),
``invoke_tool`` is one routed tool call, and ``make_call`` is a ``room.call`` of a
service the room server's registry already knows.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.protocol.tasks import FINISHED
from taskroom.toolkits.responses import Response, wrap_response

if TYPE_CHECKING:
    from taskroom.host.client.room_client import RoomClient

WAIT_STEP = 30.0
"""Seconds of each ``tasks.wait`` while ``ask`` waits for its task."""


@dataclass(frozen=True)
class ToolDescription:
    """One tool of a toolkit in the room."""

    name: str
    title: str | None
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None


@dataclass(frozen=True)
class ToolkitDescription:
    """One toolkit in the room, and the participant hosting it."""

    name: str
    title: str | None
    description: str
    participant_id: str
    tools: list[ToolDescription] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentDescription:
    """A task runner in the room: what ``ask`` takes and returns."""

    name: str
    title: str | None
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    supports_tools: bool
    labels: list[str]


class AgentsClient:
    """The agent API of one room connection (``room.agents``)."""

    def __init__(self, room: RoomClient) -> None:
        self.room = room

    async def ask(
        self, *, agent: str, arguments: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Response:
        """Run one task on ``agent`` and return its answer as a JsonResponse or TextResponse.

        A failed or cancelled task raises RoomError with the task's error; cancelling the
        awaiting coroutine cancels the task, so no LLM call runs on for nobody.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        first = WAIT_STEP if timeout is None else max(0.0, min(WAIT_STEP, timeout))
        task = await self.room.tasks.run(agent, arguments or {}, timeout=first)
        task_id: str = task["id"]
        if task["status"] not in FINISHED:
            try:
                task = await self._wait(task_id, deadline, timeout)
            except asyncio.CancelledError:
                await asyncio.shield(self.room.tasks.cancel(task_id))
                raise
        if task["status"] != "completed":
            if task.get("error"):
                raise RoomError.from_data(task["error"])
            raise RoomError(ErrorCode.FAILED, f"task {task_id} ended {task['status']}")
        return wrap_response(task["result"])

    async def _wait(
        self, task_id: str, deadline: float | None, timeout: float | None
    ) -> dict[str, Any]:
        """Wait in steps until the task has finished or the loop's clock passes
        ``deadline``."""
        loop = asyncio.get_running_loop()
        while True:
            step = WAIT_STEP if deadline is None else min(WAIT_STEP, deadline - loop.time())
            if step <= 0:
                raise RoomError(
                    ErrorCode.TIMEOUT,
                    f"task {task_id} did not finish within {timeout:g} s",
                    {"task_id": task_id},
                )
            task: dict[str, Any] = (await self.room.tasks.wait(task_id, timeout=step))["tasks"][0]
            if task["status"] in FINISHED:
                return task

    async def invoke_tool(
        self,
        *,
        toolkit: str,
        tool: str,
        input: dict[str, Any] | None = None,
        arguments: dict[str, Any] | None = None,
        participant_id: str | None = None,
    ) -> Response:
        """Call ``toolkit.tool`` through the room (``arguments`` is MeshAgent 0.20's name
        for ``input``)."""
        if input is not None and arguments is not None:
            raise ValueError("give input or arguments, not both")
        result = await self.room.invoke_tool(
            toolkit, tool, input if input is not None else arguments, participant_id=participant_id
        )
        return wrap_response(result)

    async def list_toolkits(self, *, participant_id: str | None = None) -> list[ToolkitDescription]:
        """The toolkits this participant may see (one entry per hosting participant)."""
        found = await self.room.list_toolkits(participant_id=participant_id)
        return [
            ToolkitDescription(
                name=i.toolkit.name,
                title=i.toolkit.title,
                description=i.toolkit.description,
                participant_id=i.participant_id,
                tools=[
                    ToolDescription(t.name, t.title, t.description, t.input_schema, t.output_schema)
                    for t in i.toolkit.tools
                ],
                metadata=dict(i.toolkit.metadata),
            )
            for i in found
        ]

    async def list_agents(self) -> list[AgentDescription]:
        """The task runners in the room, each once."""
        agents: dict[str, AgentDescription] = {}
        for tk in await self.list_toolkits():
            if not tk.metadata.get("agent") or tk.name in agents or not tk.tools:
                continue
            run = tk.tools[0]
            agents[tk.name] = AgentDescription(
                name=tk.name,
                title=tk.title,
                description=tk.description,
                input_schema=run.input_schema,
                output_schema=run.output_schema,
                supports_tools=bool(tk.metadata.get("supports_tools")),
                labels=list(tk.metadata.get("labels") or []),
            )
        return list(agents.values())

    async def call(
        self, *, service: str, agent: str, arguments: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Call ``agent`` of the registered ``service`` into the room; returns the joined
        participant's id and identity."""
        return await self.room.request(
            "room.call", {"service": service, "agent": agent, "arguments": arguments or {}}
        )

    async def make_call(
        self, *, name: str, url: str, arguments: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Call the agent ``name`` served at ``url`` into the room.

        The room posts webhooks only to services in its server's registry, never to a URL
        a participant names: ``url`` must lie under a registered service's URL, and the
        call goes to that service by name. Reading the URLs needs the ``services.admin``
        grant; without it, use :meth:`call` with the service's name.
        """
        services = (await self.room.request("services.list"))["services"]
        if services and not any("url" in s for s in services):
            raise RoomError(
                ErrorCode.PERMISSION_DENIED,
                "matching a URL to a registered service needs the services.admin grant; "
                "call the agent in by service name with room.agents.call(service=, agent=)",
            )
        target = url.rstrip("/")
        for entry in services:
            base = str(entry.get("url", "")).rstrip("/")
            if base and (target == base or target.startswith(base + "/")):
                return await self.call(service=entry["name"], agent=name, arguments=arguments)
        raise RoomError(
            ErrorCode.NOT_FOUND,
            f"no service registered with the room server serves {url!r}; register it "
            "first (taskroom service run does)",
            {"url": url},
        )
