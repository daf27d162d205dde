// The task list and the task view: live status, progress events, result, usage, cancel.

import { $, clock, el, note, renderValue, replace, showError, showInline, statusPill } from "./dom.js";
import { FINISHED, request, state } from "./state.js";

const MAX_EVENTS_PER_TASK = 500;

export function initTasks() {
  $("task-cancel").addEventListener("click", cancelTask);
  $("tasks-more").addEventListener("click", loadOlderTasks);
}

export function mergeTask({ events, ...task }) {
  const known = state.tasks.get(task.id);
  if (known && FINISHED.has(known.status) && !FINISHED.has(task.status)) {
    // An older snapshot arrived after the task's final update; keep the final outcome.
    Object.assign(task, { status: known.status, result: known.result, error: known.error });
  }
  state.tasks.set(task.id, { ...known, ...task });
  for (const e of events || []) addEvent(task.id, e);
}

function addEvent(taskId, event) {
  const events = state.events.get(taskId) || new Map();
  events.set(event.seq, event);
  if (events.size > MAX_EVENTS_PER_TASK) events.delete(events.keys().next().value);
  state.events.set(taskId, events);
}

export function onTaskUpdated(update) {
  const id = update.task_id;
  const known = state.tasks.get(id);
  state.tasks.set(id, {
    ...(known || { id, created_at: Date.now() / 1000 }),
    agent: update.agent,
    batch_id: update.batch_id,
    status: update.status,
    error: update.error,
    result: update.result,
  });
  renderTasks();
  const finished = FINISHED.has(update.status);
  if (id === state.openTask) renderTaskView();
  // Fill in what the push leaves out: input and times of a new task, usage of a finished one.
  if (!known || (finished && id === state.openTask)) refreshTask(id);
}

export function onTaskProgress({ task_id: id, seq, data }) {
  addEvent(id, { seq, at: Date.now() / 1000, data });
  if (id === state.openTask) renderTaskEvents();
}

export function renderTasks() {
  const tasks = [...state.tasks.values()].sort((a, b) => (b.created_at || 0) - (a.created_at || 0));
  replace($("tasks"), tasks.length ? tasks.map((t) =>
    el("li", {},
      el("button", {
        type: "button", class: `task-row${t.id === state.openTask ? " open" : ""}`,
        testid: "task-row", "data-task-id": t.id, "data-status": t.status,
        onclick: () => openTask(t.id),
      },
      statusPill(t.status),
      el("span", { class: "task-agent", text: t.agent }),
      el("span", { class: "when", text: clock(t.created_at) }),
      el("span", { class: "summary", text: taskSummary(t) }))))
    : note("No tasks yet: run one."));
  $("tasks-more").hidden = !state.olderTasksBefore;
}

async function loadOlderTasks() {
  try {
    const listed = await request("tasks.list", { limit: 50, before: state.olderTasksBefore });
    listed.tasks.forEach(mergeTask);
    state.olderTasksBefore = listed.next_before;
  } catch (err) {
    showError(`Could not load older tasks: ${err.message}`);
  }
  renderTasks();
}

function taskSummary(task) {
  const prompt = task.arguments?.prompt;
  return typeof prompt === "string" ? prompt : task.id;
}

export function openTask(id) {
  state.openTask = id;
  showInline("task-message", "");
  $("task-panel").hidden = false;
  renderTasks();
  renderTaskView();
  refreshTask(id);
}

async function refreshTask(id) {
  try {
    mergeTask(await request("tasks.get", { task_id: id }));
  } catch (err) {
    if (id === state.openTask) showInline("task-message", `Could not load the task: ${err.message}`);
    return;
  }
  renderTasks();
  if (id === state.openTask) renderTaskView();
}

function renderTaskView() {
  const t = state.tasks.get(state.openTask);
  if (!t) return;
  $("task-id").textContent = t.id;
  replace($("task-status"), statusPill(t.status, "task-status"));
  $("task-cancel").hidden = FINISHED.has(t.status);
  const meta = [
    ["agent", t.agent],
    ["model", t.model],
    ["caller", t.caller?.name],
    ["created", clock(t.created_at)],
    ["started", clock(t.started_at)],
    ["finished", clock(t.finished_at)],
    ["took", t.finished_at && t.started_at ? `${(t.finished_at - t.started_at).toFixed(2)} s` : ""],
    ["read only", t.read_only ? "yes" : ""],
  ].filter(([, value]) => value);
  replace($("task-meta"), meta.map(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  replace($("task-input"), t.arguments ? renderValue(t.arguments, "task-input-value") : note("loading…"));
  renderTaskEvents();
  replace($("task-outcome"), outcomeView(t));
  const usage = Object.entries(t.usage || {});
  replace($("task-usage"), usage.length
    ? usage.map(([k, v]) => [el("dt", { text: k.replaceAll("_", " ") }), el("dd", { text: String(v) })])
    : el("dd", { class: "muted", text: FINISHED.has(t.status) ? "none reported" : "when it ends" }));
}

function outcomeView(t) {
  if (t.status === "completed") return renderValue(t.result, "task-result");
  if (FINISHED.has(t.status)) {
    const error = t.error || {};
    return el("p", { class: "error", testid: "task-error" },
      // The code adds something only when it differs: "failed (timeout)", not "cancelled (cancelled)".
      el("strong", { text: `${t.status}${error.code && error.code !== t.status ? ` (${error.code})` : ""}: ` }),
      error.message || "no reason given");
  }
  return note(t.status === "pending" ? "Waiting for a free agent…" : "Running…");
}

function renderTaskEvents() {
  const events = [...(state.events.get(state.openTask) || new Map()).values()]
    .sort((a, b) => a.seq - b.seq);
  $("task-events-count").textContent = String(events.length);
  replace($("task-events"), events.length ? events.map(({ seq, at, data }) => {
    const { kind, ...rest } = data || {};
    return el("li", { testid: "task-event", "data-kind": kind || "" },
      el("span", { class: "when", text: clock(at) }),
      el("span", { class: "kind", text: kind || `#${seq}` }),
      Object.keys(rest).length ? el("code", { text: JSON.stringify(rest) }) : null);
  }) : note("No progress events yet."));
}

async function cancelTask() {
  const id = state.openTask;
  $("task-cancel").disabled = true;
  try {
    await request("tasks.cancel", { task_id: id });
  } catch (err) {
    showInline("task-message", `Could not cancel the task: ${err.message}`);
  } finally {
    $("task-cancel").disabled = false;
  }
}
