// Studio: the room in a web page. Joins the room's WebSocket, keeps a live picture of
// participants, toolkits, schemas and tasks, and runs tasks on the room's agents.

import { $, clock, el, pretty, renderValue, replace, statusPill } from "./dom.js";
import { RoomSocket, explainRefusal } from "./room-socket.js";
import { FormError, buildForm, hasFields, jsonField } from "./schema-form.js";

const FINISHED = new Set(["completed", "failed", "cancelled"]);
const MAX_EVENTS_PER_TASK = 500;
const DEFAULT_OUTPUT_SCHEMA = {
  type: "object",
  properties: { answer: { type: "string" } },
  required: ["answer"],
  additionalProperties: false,
};
const tokenKey = (room) => `taskroom.studio.token.${room}`;

const state = {
  room: "",
  token: "",
  socket: null,
  me: null,
  participants: new Map(),
  toolkits: [],
  schemas: [],
  tasks: new Map(),
  events: new Map(),
  openTask: null,
  form: { agent: null, read: null, tools: null },
};

// --- messages to the user ---------------------------------------------------------------

function showError(message) {
  $("error-text").textContent = message;
  $("error").hidden = false;
}

function clearError() {
  $("error").hidden = true;
}

function setConnection(text, kind) {
  const pill = $("connection");
  pill.textContent = text;
  pill.className = `pill pill-${kind}`;
  pill.dataset.state = kind;
}

function note(text) {
  return el("p", { class: "empty", text });
}

function badge(text) {
  return el("span", { class: "badge", text });
}

function showInline(id, message) {
  $(id).textContent = message;
  $(id).hidden = !message;
}

// --- joining ------------------------------------------------------------------------------

function start() {
  const query = new URLSearchParams(location.search);
  const fragment = new URLSearchParams(location.hash.slice(1));
  const room = query.get("room") || "";
  let token = fragment.get("token") || "";
  if (token) {
    // Browsers never send the fragment to the server; keep the token out of the address
    // bar and history too, and remember it for this tab only.
    history.replaceState(null, "", location.pathname + location.search);
    if (room) sessionStorage.setItem(tokenKey(room), token);
  } else if (room) {
    token = sessionStorage.getItem(tokenKey(room)) || "";
  }
  $("join-form").addEventListener("submit", onJoinSubmit);
  $("leave").addEventListener("click", leave);
  $("reconnect").addEventListener("click", connect);
  $("error-close").addEventListener("click", clearError);
  $("run-form").addEventListener("submit", runTask);
  $("run-agent").addEventListener("change", renderRunForm);
  $("run-raw").addEventListener("change", toggleRawInput);
  $("task-cancel").addEventListener("click", cancelTask);
  state.room = room;
  state.token = token;
  if (room && token) connect();
  else showJoin();
}

function showJoin() {
  $("studio").hidden = true;
  $("leave").hidden = true;
  $("join").hidden = false;
  $("join-room").value = state.room;
  $("join-token").value = "";
  (state.room ? $("join-token") : $("join-room")).focus();
}

function onJoinSubmit(event) {
  event.preventDefault();
  state.room = $("join-room").value.trim();
  state.token = $("join-token").value.trim();
  sessionStorage.setItem(tokenKey(state.room), state.token);
  history.replaceState(null, "", `${location.pathname}?room=${encodeURIComponent(state.room)}`);
  connect();
}

function connect() {
  clearError();
  state.socket?.close();
  $("reconnect").hidden = true;
  setConnection("connecting…", "connecting");
  const socket = new RoomSocket(state.room, state.token, {
    onReady: (data) => onReady(socket, data),
    onEvent: (type, data) => EVENTS[type]?.(data),
    onClose: (info) => onClose(socket, info),
  });
  state.socket = socket;
  socket.open();
}

function leave() {
  state.socket?.close();
  state.socket = null;
  sessionStorage.removeItem(tokenKey(state.room));
  state.token = "";
  setConnection("not connected", "offline");
  showJoin();
}

async function onClose(socket, { opened, code, reason }) {
  if (socket !== state.socket) return;
  state.socket = null;
  setConnection("not connected", "offline");
  if (opened) {
    $("reconnect").hidden = false;
    showError(`The connection to room "${state.room}" closed (${reason || `code ${code}`}).`);
    return;
  }
  const { message, refused } = await explainRefusal(state.room, state.token);
  if (refused) {
    sessionStorage.removeItem(tokenKey(state.room));
    showJoin();
  } else {
    $("reconnect").hidden = false;
  }
  showError(message);
}

async function onReady(socket, data) {
  state.me = data.participant;
  state.participants = new Map(data.participants.map((p) => [p.id, p]));
  state.toolkits = data.toolkits;
  state.schemas = data.schemas.map((name) => ({ name }));
  state.tasks.clear();
  state.events.clear();
  $("join").hidden = true;
  $("studio").hidden = false;
  $("leave").hidden = false;
  $("room-name").textContent = data.room;
  document.title = `${data.room} · taskroom studio`;
  setConnection(`connected as ${state.me.name} (${state.me.role})`, "online");
  renderParticipants();
  renderToolkits();
  renderSchemas();
  try {
    await socket.request("tasks.subscribe", { all: true });
    const [listed, schemas] = await Promise.all([
      socket.request("tasks.list", { limit: 50 }),
      socket.request("schemas.list"),
    ]);
    listed.tasks.forEach(mergeTask);
    state.schemas = schemas.schemas;
  } catch (err) {
    showError(`Could not load the room's tasks and schemas: ${err.message}`);
  }
  renderTasks();
  renderSchemas();
  if (state.openTask) openTask(state.openTask);
}

const EVENTS = {
  "participant.joined": (p) => {
    state.participants.set(p.id, p);
    renderParticipants();
  },
  "participant.left": (p) => {
    state.participants.delete(p.id);
    renderParticipants();
  },
  "toolkit.registered": (instance) => {
    state.toolkits = state.toolkits
      .filter((t) => !sameInstance(t, instance.participant_id, instance.toolkit.name))
      .concat(instance);
    renderToolkits();
  },
  "toolkit.unregistered": ({ name, participant_id: host }) => {
    state.toolkits = state.toolkits.filter((t) => !sameInstance(t, host, name));
    renderToolkits();
  },
  "schema.changed": () => reloadSchemas(),
  "task.updated": onTaskUpdated,
  "task.progress": ({ task_id: id, seq, data }) => {
    addEvent(id, { seq, at: Date.now() / 1000, data });
    if (id === state.openTask) renderTaskEvents();
  },
  "room.dismissed": ({ reason }) => showError(`The room dismissed you: ${reason}`),
  error: ({ message }) => showError(`The room reported an error: ${message}`),
};

const sameInstance = (t, host, name) => t.participant_id === host && t.toolkit.name === name;

// --- participants, toolkits, agents, schemas ------------------------------------------------

function renderParticipants() {
  const people = [...state.participants.values()].sort((a, b) => a.name.localeCompare(b.name));
  $("participants-count").textContent = String(people.length);
  replace($("participants"), people.map((p) =>
    el("li", { testid: "participant", "data-name": p.name, "data-role": p.role },
      el("span", { class: "name", text: p.name }),
      badge(p.role),
      p.id === state.me?.id ? el("span", { class: "you", text: "you" }) : null)));
}

function agents() {
  const byName = new Map();
  for (const instance of state.toolkits) {
    const spec = instance.toolkit;
    if (!spec.metadata?.agent) continue;
    const entry = byName.get(spec.name) || { spec, hosts: [] };
    entry.hosts.push(instance.participant_name);
    byName.set(spec.name, entry);
  }
  return [...byName.values()].sort((a, b) => a.spec.name.localeCompare(b.spec.name));
}

function renderToolkits() {
  const sorted = [...state.toolkits].sort((a, b) =>
    a.toolkit.name.localeCompare(b.toolkit.name) ||
    a.participant_name.localeCompare(b.participant_name));
  replace($("toolkits"), sorted.length ? sorted.map(toolkitView) : note("No toolkits yet."));
  renderAgents();
  renderAgentSelect();
  refreshToolChoices();
}

function toolkitView({ toolkit: tk, participant_name: host }) {
  return el("details", { class: "toolkit", testid: "toolkit", "data-name": tk.name },
    el("summary", {},
      el("span", { class: "name", text: tk.name }),
      tk.metadata?.agent ? badge("agent") : null,
      el("span", { class: "muted", text: ` hosted by ${host}` })),
    tk.description ? el("p", { class: "hint", text: tk.description }) : null,
    tk.tools.map(toolView));
}

function toolView(tool) {
  const flags = ["read_only", "destructive", "idempotent"].filter((k) => tool.annotations?.[k]);
  return el("details", { class: "tool", testid: "tool", "data-name": tool.name },
    el("summary", {}, el("code", { text: tool.name }), flags.map((f) => badge(f.replace("_", " ")))),
    tool.description ? el("p", { class: "hint", text: tool.description }) : null,
    el("h4", { text: "Input schema" }),
    el("pre", { class: "json", text: pretty(tool.input_schema) }),
    el("h4", { text: "Output schema" }),
    tool.output_schema
      ? el("pre", { class: "json", text: pretty(tool.output_schema) })
      : el("p", { class: "hint", text: "None declared: the output is free-form or given per call." }));
}

function agentTitle(spec) {
  const title = spec.metadata.title || spec.title;
  return title && title !== spec.name ? `${title} (${spec.name})` : spec.name;
}

function renderAgents() {
  const list = agents();
  replace($("agents"), list.length ? list.map(({ spec, hosts }) => {
    const m = spec.metadata;
    return el("li", { class: "agent", testid: "agent", "data-name": spec.name },
      el("div", { class: "agent-head" },
        el("strong", { text: agentTitle(spec) }),
        el("button", { type: "button", class: "small", text: "Run…",
          onclick: () => selectAgent(spec.name) })),
      el("div", { class: "badges" },
        m.kind ? badge(m.kind) : null,
        (m.labels || []).map(badge),
        m.supports_tools ? badge("takes tools") : null,
        m.dynamic_output_schema ? badge("output schema per task") : null,
        badge(hosts.length === 1 ? "1 instance" : `${hosts.length} instances`)),
      spec.description ? el("p", { class: "hint", text: spec.description }) : null);
  }) : note("No agents in this room yet."));
}

async function reloadSchemas() {
  try {
    state.schemas = (await state.socket.request("schemas.list")).schemas;
  } catch (err) {
    showError(`Could not load the room's schemas: ${err.message}`);
  }
  renderSchemas();
}

function renderSchemas() {
  replace($("schemas"), state.schemas.length ? state.schemas.map((s) =>
    el("details", { class: "schema", testid: "schema", "data-name": s.name },
      el("summary", { text: s.name }),
      s.schema ? el("pre", { class: "json", text: pretty(s.schema) }) : note("loading…")))
    : note("No schemas in this room."));
}

// --- Run Task ------------------------------------------------------------------------------

function selectAgent(name) {
  $("run-agent").value = name;
  renderRunForm();
  $("run-agent").focus();
}

function renderAgentSelect() {
  const select = $("run-agent");
  const current = select.value;
  const list = agents();
  replace(select, list.length
    ? list.map(({ spec }) => el("option", { value: spec.name, text: agentTitle(spec) }))
    : el("option", { value: "", text: "no agents in this room" }));
  select.disabled = !list.length;
  $("run-submit").disabled = !list.length;
  if (list.some((a) => a.spec.name === current)) select.value = current;
  if (select.value !== (state.form.agent ?? "")) renderRunForm();
}

function selectedAgent() {
  return agents().find((a) => a.spec.name === $("run-agent").value)?.spec;
}

function renderRunForm() {
  const spec = selectedAgent();
  state.form = { agent: spec?.name ?? null, read: null, tools: null };
  replace($("run-fields"));
  $("run-agent-about").textContent = spec?.description || "";
  showInline("run-error", "");
  if (!spec) return;
  const tool = spec.tools.find((t) => t.name === (spec.metadata.tool || `run_${spec.name}_task`));
  const schema = tool?.input_schema || { type: "object" };
  const overrides = {};
  if (spec.metadata.supports_tools) overrides.tools = toolsField;
  if (spec.metadata.dynamic_output_schema) overrides.output_schema = outputSchemaField;
  state.form.read = buildForm($("run-fields"), schema, overrides);
  const raw = $("run-raw");
  raw.checked = raw.disabled = !hasFields(schema);
  $("run-raw-input").value = "{}";
  toggleRawInput();
}

function toolsField(prop, required) {
  const input = el("select", { id: "run-tools", testid: "run-tools", multiple: true, size: 4 });
  state.form.tools = input;
  refreshToolChoices();
  const read = () => {
    const names = [...input.selectedOptions].map((o) => o.value);
    return names.length || required ? names : undefined;
  };
  return { input, read, title: "Add tools" };
}

function refreshToolChoices() {
  const input = state.form.tools;
  if (!input) return;
  const chosen = new Set([...input.selectedOptions].map((o) => o.value));
  const agentNames = new Set(agents().map((a) => a.spec.name));
  const names = [...new Set(state.toolkits.map((t) => t.toolkit.name))]
    .filter((n) => n !== state.form.agent)
    .sort();
  replace(input, names.map((n) => el("option", {
    value: n, text: agentNames.has(n) ? `${n} (agent)` : n, selected: chosen.has(n),
  })));
  input.disabled = !names.length;
  input.title = names.length ? "" : "No other toolkits are in this room.";
}

function outputSchemaField(prop, required) {
  const field = jsonField("Output schema", required, "run-output-schema", DEFAULT_OUTPUT_SCHEMA);
  return { ...field, title: "Output schema" };
}

function toggleRawInput() {
  const raw = $("run-raw").checked;
  if (raw && state.form.read && !$("run-raw").disabled) {
    $("run-raw-input").value = pretty(state.form.read({ strict: false }));
  }
  $("run-fields").hidden = raw;
  $("run-raw-field").hidden = !raw;
}

function readArguments() {
  if (!$("run-raw").checked) return state.form.read();
  let args;
  try {
    args = JSON.parse($("run-raw-input").value);
  } catch (err) {
    throw new FormError(`The input is not valid JSON: ${err.message}`);
  }
  if (!args || typeof args !== "object" || Array.isArray(args)) {
    throw new FormError("The input must be a JSON object.");
  }
  return args;
}

async function runTask(event) {
  event.preventDefault();
  const agent = state.form.agent;
  if (!agent || !state.socket) return;
  showInline("run-error", "");
  let args;
  try {
    args = readArguments();
  } catch (err) {
    showInline("run-error", err.message);
    return;
  }
  $("run-submit").disabled = true;
  try {
    const started = await state.socket.request("tasks.start", { agent, arguments: args });
    started.tasks.forEach(mergeTask);
    renderTasks();
    openTask(started.task_ids[0]);
  } catch (err) {
    showInline("run-error", `The room refused the task: ${err.message}`);
  } finally {
    $("run-submit").disabled = false;
  }
}

// --- tasks ---------------------------------------------------------------------------------

function mergeTask({ events, ...task }) {
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

function onTaskUpdated(update) {
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

function renderTasks() {
  const tasks = [...state.tasks.values()].sort((a, b) => (b.created_at || 0) - (a.created_at || 0));
  replace($("tasks"), tasks.length ? tasks.map((t) =>
    el("li", {},
      el("button", {
        type: "button", class: `task-row${t.id === state.openTask ? " open" : ""}`,
        testid: "task-row", "data-task-id": t.id, "data-status": t.status,
        onclick: () => openTask(t.id),
      },
      statusPill(t.status),
      el("span", { class: "agent", text: t.agent }),
      el("span", { class: "when", text: clock(t.created_at) }),
      el("span", { class: "summary", text: taskSummary(t) }))))
    : note("No tasks yet: run one."));
}

function taskSummary(task) {
  const prompt = task.arguments?.prompt;
  return typeof prompt === "string" ? prompt : task.id;
}

function openTask(id) {
  state.openTask = id;
  showInline("task-message", "");
  $("task-panel").hidden = false;
  renderTasks();
  renderTaskView();
  refreshTask(id);
}

async function refreshTask(id) {
  if (!state.socket) return;
  try {
    mergeTask(await state.socket.request("tasks.get", { task_id: id }));
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
      el("strong", { text: `${t.status}${error.code ? ` (${error.code})` : ""}: ` }),
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
    await state.socket.request("tasks.cancel", { task_id: id });
  } catch (err) {
    showInline("task-message", `Could not cancel the task: ${err.message}`);
  } finally {
    $("task-cancel").disabled = false;
  }
}

window.addEventListener("error", (e) => showError(`Studio hit an error: ${e.message}`));
window.addEventListener("unhandledrejection", (e) =>
  showError(`Studio hit an error: ${e.reason?.message || e.reason}`));
start();
