"""The six task tools' answers, in mcp-task's shapes with ours beside them.

mcp-task users have scripts that read ``output``, ``timeout``, ``previously_completed``,
``check_after`` and camelCase fields such as ``readOnly``; every answer here carries those
fields with mcp-task's names and meanings, and adds ours (``result``, ``error``, ``model``
reasons, ISO times) next to them. docs/mcp.md lists the mapping field by field.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from taskroom.host.mcp.models import ModelChoice
from taskroom.host.mcp.prompt import task_summary
from taskroom.host.mcp.tools import STATUSES
from taskroom.host.protocol.progress import describe_event
from taskroom.host.protocol.tasks import FINISHED

Snapshot = dict[str, Any]

RECENT_EVENTS = 5
CHECK_AFTER_LADDER = ((5.0, 5), (10.0, 10), (30.0, 15), (60.0, 30), (120.0, 60))
"""(runtime up to, seconds to wait): mcp-task's ``check_after`` ladder; longer runs wait 120 s."""
LONGEST_CHECK_AFTER = 120
INACTIVITY_WARNING_SECONDS = 60.0
RUNTIME_WARNING_SECONDS = 300.0
ERROR_WARNING_COUNT = 2
CANCELLED_OUTPUT = "Task was cancelled"
NO_OUTPUT = "No output available"


def iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None


def finished(task: Snapshot) -> bool:
    return task["status"] in FINISHED


def output_text(task: Snapshot) -> str | None:
    """mcp-task's ``output``: the answer text, ``ERROR: ...`` for a failure, else None.

    A result that is only ``{"result": "<text>"}`` (the default output schema) is that
    text; any other result is its JSON.
    """
    status = task["status"]
    if status == "completed":
        result = task.get("result")
        if isinstance(result, dict) and list(result) == ["result"]:
            result = result["result"]
        return result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
    if status == "failed":
        return f"ERROR: {(task.get('error') or {}).get('message', 'unknown error')}"
    if status == "cancelled":
        return CANCELLED_OUTPUT
    return None


def summary(task: Snapshot) -> str | None:
    """What the task was about: its prompt's task part, for tasks started with a prompt."""
    prompt = (task.get("arguments") or {}).get("prompt")
    return task_summary(prompt) if isinstance(prompt, str) and prompt else None


def _choices(task: Snapshot) -> list[dict[str, Any]]:
    choices = (task.get("arguments") or {}).get("model_selection")
    return [c for c in choices if isinstance(c, dict)] if isinstance(choices, list) else []


def shares_its_model(task: Snapshot) -> bool:
    """Whether several entries of the task's batch resolved to its model, so only its
    place in the batch tells which entry it runs."""
    return sum(c.get("model") == task.get("model") for c in _choices(task)) > 1


def model_selection(task: Snapshot) -> dict[str, Any]:
    """How the task's model was chosen, from the choices recorded in its arguments.

    A batch records every entry's choice, in the order of its tasks; the task's own is
    the one at its ``batch_position`` (set by the gateway when entries share a model),
    else the one naming its model.
    """
    choices = _choices(task)
    position = task.get("batch_position")
    if isinstance(position, int) and 0 <= position < len(choices):
        if choices[position].get("model") == task.get("model"):
            choices = [choices[position]]
    mine = [c for c in choices if c.get("model") == task.get("model")]
    if not mine:
        return {}
    return {
        "requested": " / ".join(dict.fromkeys(str(c.get("requested")) for c in mine)),
        "reason": " / ".join(dict.fromkeys(str(c.get("reason")) for c in mine)),
    }


def _model_fields(task: Snapshot, choice: ModelChoice | None = None) -> dict[str, Any]:
    selection = choice.as_dict() if choice is not None else model_selection(task)
    return {
        "model": task.get("model"),
        "model_requested": selection.get("requested"),
        "model_reason": selection.get("reason"),
    }


def check_after_seconds(runtime: float) -> int:
    for up_to, wait in CHECK_AFTER_LADDER:
        if runtime <= up_to:
            return wait
    return LONGEST_CHECK_AFTER


def started(
    tasks: list[Snapshot], agent: str, batch_id: str | None, choices: list[ModelChoice]
) -> dict[str, Any]:
    """``run_task``: mcp-task's ``{task_id, status, message}`` or its batch form."""
    if batch_id is None:
        task = tasks[0]
        return {
            "task_id": task["id"],
            "status": task["status"],
            "message": "Task queued for execution. Use check_task_status to monitor progress, "
            "or wait_for_task to wait for it with progress notifications.",
            "agent": agent,
            **_model_fields(task, choices[0]),
            "read_only": task.get("read_only", False),
        }
    return {
        "batch_id": batch_id,
        "task_ids": [t["id"] for t in tasks],
        "status": "pending" if all(t["status"] == "pending" for t in tasks) else "running",
        "message": f"{len(tasks)} tasks queued for execution. Use list_tasks with batch_id to "
        "monitor progress, or wait_for_task with batch_id (return_all: all of them).",
        "agent": agent,
        "models": [t.get("model") for t in tasks],
        "model_choices": [c.as_dict() for c in choices],
        "read_only": tasks[0].get("read_only", False),
    }


def status(task: Snapshot, now: float | None = None) -> dict[str, Any]:
    """``check_task_status``: mcp-task's 18 fields, then ours."""
    now = time.time() if now is None else now
    events = task.get("events") or []
    errors = [e for e in events if e["data"].get("kind") in ("tool.error", "output.invalid")]
    if not finished(task) and not task.get("started_at"):
        progress = "Waiting for a free agent instance."
    else:
        progress = describe_event(events[-1]["data"]) if events else task["status"]
    data: dict[str, Any] = {
        "id": task["id"],
        "status": task["status"],
        "model": task.get("model"),
        "readOnly": task.get("read_only", False),
        "createdAt": iso(task["created_at"]),
        "startedAt": iso(task.get("started_at")),
        "completedAt": iso(task.get("finished_at")),
        "output": output_text(task),
        "progress": progress,
        "messageCount": events[-1]["seq"] if events else 0,
        "requestCount": (task.get("usage") or {}).get("requests")
        or sum(e["data"].get("kind") == "llm.turn" for e in events),
        "recentEvents": [
            f"{e['data'].get('kind', 'event')} at {iso(e['at'])}" for e in events[-RECENT_EVENTS:]
        ],
        "toolCalls": [
            f"Called: {e['data'].get('toolkit')}.{e['data'].get('tool')}"
            for e in events
            if e["data"].get("kind") == "tool.call"
        ],
        "lastActivity": (
            f"Last event: {events[-1]['data'].get('kind', 'event')} at {iso(events[-1]['at'])}"
            if events
            else None
        ),
        "errorCount": len(errors),
        "lastError": describe_event(errors[-1]["data"]) if errors else None,
    }
    if not finished(task):
        runtime = now - (task.get("started_at") or task["created_at"])
        wait = check_after_seconds(runtime)
        data["check_after"] = f"Please wait {wait} seconds before checking this task again"
        data["check_after_seconds"] = wait
        warning = _warning(task, events, runtime, len(errors), now)
        if warning:
            data["warning"] = warning
    data |= {
        "task_id": task["id"],
        "agent": task["agent"],
        **_model_fields(task),
        "batch_id": task.get("batch_id"),
        "task": summary(task),
        "recent_events": [
            f"{iso(e['at'])} {describe_event(e['data'])}" for e in events[-RECENT_EVENTS:]
        ],
    }
    if task.get("started_at"):
        end = task.get("finished_at") or now
        data["runtime_seconds"] = round(end - task["started_at"], 1)
    if task.get("error"):
        data["error"] = task["error"]
    return data


def _warning(
    task: Snapshot, events: list[dict[str, Any]], runtime: float, errors: int, now: float
) -> str | None:
    """mcp-task's rules in its order, the last that applies winning."""
    warning = None
    last = events[-1]["at"] if events else task.get("started_at")
    if last and now - last > INACTIVITY_WARNING_SECONDS:
        warning = f"No activity for {now - last:.0f} seconds"
    if task.get("started_at") and runtime > RUNTIME_WARNING_SECONDS:
        warning = f"Task has been running for {runtime / 60:.1f} minutes"
    if errors > ERROR_WARNING_COUNT:
        warning = f"{errors} errors so far"
    return warning


def result_text(task: Snapshot) -> str:
    """``get_task_result``'s text: mcp-task's plain ``output``."""
    return output_text(task) or NO_OUTPUT


def result(task: Snapshot) -> dict[str, Any]:
    """``get_task_result``'s structured part: ``output`` plus status, result and error."""
    data: dict[str, Any] = {
        "output": result_text(task),
        "task_id": task["id"],
        "status": task["status"],
        **_model_fields(task),
        "result": task.get("result"),
    }
    if task.get("error"):
        data["error"] = task["error"]
    if task.get("usage"):
        data["usage"] = task["usage"]
    return data


def outcome(task: Snapshot) -> dict[str, Any]:
    """One finished (or not) task as a waiter sees it: mcp-task's fields, then ours."""
    data: dict[str, Any] = {
        "task_id": task["id"],
        "status": task["status"],
        "output": output_text(task),
        "completed_at": iso(task.get("finished_at")),
        **_model_fields(task),
    }
    if task["status"] == "completed":
        data["result"] = task.get("result")
    elif task.get("error"):
        data["error"] = task["error"]
    return data


def waited_task(task: Snapshot, timed_out: bool, timeout: float, waited: float) -> dict[str, Any]:
    """``wait_for_task`` for one task."""
    data = outcome(task)
    if timed_out:
        data |= {
            "timeout": True,
            "message": f"Timeout after {timeout:g} seconds waiting for task {task['id']}; "
            "the task goes on. Wait again, or check_task_status.",
        }
    data["wait_time_seconds"] = round(waited, 1)
    return data


def _counts(tasks: list[Snapshot]) -> dict[str, int]:
    return {
        "completed_tasks": sum(map(finished, tasks)),
        "running_tasks": sum(t["status"] == "running" for t in tasks),
        "pending_tasks": sum(t["status"] == "pending" for t in tasks),
        "total_tasks": len(tasks),
    }


def waited_batch(
    batch_id: str,
    tasks: list[Snapshot],
    *,
    before: set[str],
    return_all: bool,
    timed_out: bool,
    timeout: float,
    waited: float,
) -> dict[str, Any]:
    """``wait_for_task`` for a batch: the next task to finish, all of them, or a timeout."""
    data: dict[str, Any] = {"batch_id": batch_id}
    newly = [t for t in tasks if finished(t) and t["id"] not in before]
    if timed_out:
        data |= {
            "timeout": True,
            "message": f"Timeout after {timeout:g} seconds waiting for batch {batch_id}; "
            "unfinished tasks go on. Wait again to follow them.",
            **_counts(tasks),
            "tasks": [outcome(t) for t in tasks],
        }
    elif return_all or not newly:
        data |= {
            "all_complete": all(map(finished, tasks)),
            "tasks": [{"id": t["id"], **outcome(t)} for t in tasks],
            **_counts(tasks),
        }
        if not return_all:
            data["message"] = "Every task of the batch had already finished."
    else:
        first = min(newly, key=lambda t: t.get("finished_at") or 0)
        data |= {
            "newly_completed": True,
            **outcome(first),
            "remaining_tasks": sum(not finished(t) for t in tasks),
            "previously_completed": len(before),
            "previously_completed_ids": sorted(before),
            "total_tasks": len(tasks),
        }
    data["wait_time_seconds"] = round(waited, 1)
    return data


def listed(tasks: list[Snapshot], filters: dict[str, Any], more: bool) -> dict[str, Any]:
    """``list_tasks``: mcp-task's stats, tasks and filters_applied, plus ours per task."""
    stats = {"total": len(tasks)} | {s: sum(t["status"] == s for t in tasks) for s in STATUSES}
    return {
        "stats": stats,
        "tasks": [
            {
                "id": t["id"],
                "status": t["status"],
                "task": summary(t),
                "model": t.get("model"),
                "batchId": t.get("batch_id"),
                "readOnly": t.get("read_only", False),
                "createdAt": iso(t["created_at"]),
                "completedAt": iso(t.get("finished_at")),
                "task_id": t["id"],
                "agent": t["agent"],
                "model_reason": model_selection(t).get("reason"),
            }
            for t in tasks
        ],
        "filters_applied": filters,
        "more": more,
    }


def cancelled_task(task_id: str, cancelled: bool, status: str | None) -> dict[str, Any]:
    """``cancel_task`` for one task: mcp-task's sentence as ``message``, with our fields."""
    message = (
        f"Task {task_id} cancelled successfully"
        if cancelled
        else f"Could not cancel task {task_id} (may be already completed: {status})"
    )
    return {"task_id": task_id, "cancelled": cancelled, "status": status, "message": message}


def cancelled_batch(batch_id: str, total: int, cancelled: list[str]) -> dict[str, Any]:
    """``cancel_task`` for a batch: mcp-task's counts, plus the ids cancelled."""
    return {
        "batch_id": batch_id,
        "total_tasks": total,
        "cancelled": len(cancelled),
        "already_complete": total - len(cancelled),
        "message": f"Cancelled {len(cancelled)} tasks from batch {batch_id}",
        "cancelled_task_ids": cancelled,
    }
