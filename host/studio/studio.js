// Studio: the room in a web page. Joins the room's WebSocket, keeps a live picture of
// participants, toolkits, schemas and tasks, and runs tasks on the room's agents.

import { $, clearError, showError } from "./dom.js";
import { RoomSocket, explainRefusal } from "./room-socket.js";
import { renderParticipants, renderSchemas, renderToolkits, reloadSchemas } from "./room-panels.js";
import { agentsChanged, initRunTask } from "./run-task.js";
import { state } from "./state.js";
import {
  initTasks, mergeTask, onTaskProgress, onTaskUpdated, openTask, renderTasks,
} from "./tasks.js";

const tokenKey = (room) => `taskroom.studio.token.${room}`;

function setConnection(text, kind) {
  const pill = $("connection");
  pill.textContent = text;
  pill.className = `pill pill-${kind}`;
  pill.dataset.state = kind;
}

// The room comes from ?room= (or the token's own room claim), the token from #token=
// (browsers never send the fragment to the server) or, failing that, this tab's storage.
function joinFromAddress() {
  let token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
  const room = new URLSearchParams(location.search).get("room") || roomClaim(token);
  if (token) {
    // Keep the token out of the address bar and history too; remember it for this tab only.
    history.replaceState(null, "", location.pathname + location.search);
    if (room) sessionStorage.setItem(tokenKey(room), token);
  } else if (room) {
    token = sessionStorage.getItem(tokenKey(room)) || "";
  }
  state.room = room;
  state.token = token;
  if (room && token) connect();
  else showJoin();
}

// The room a token names, read (not verified: the server does that) from its JWT payload.
function roomClaim(token) {
  try {
    const payload = token.split(".")[1].replaceAll("-", "+").replaceAll("_", "/");
    const room = JSON.parse(atob(payload)).room;
    return typeof room === "string" && room !== "*" ? room : "";
  } catch {
    return "";
  }
}

function start() {
  $("join-form").addEventListener("submit", onJoinSubmit);
  $("leave").addEventListener("click", leave);
  $("reconnect").addEventListener("click", connect);
  $("error-close").addEventListener("click", clearError);
  initRunTask();
  initTasks();
  // A pasted link that differs only after '#' does not reload the page.
  window.addEventListener("hashchange", () => {
    if (location.hash.includes("token=")) joinFromAddress();
  });
  joinFromAddress();
}

function showJoin() {
  setConnection("not connected", "offline");
  $("studio").hidden = true;
  $("leave").hidden = true;
  $("join").hidden = false;
  $("join-room").value = state.room;
  $("join-token").value = state.token;
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
    state.token = "";
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
  state.olderTasksBefore = null;
  $("join").hidden = true;
  $("studio").hidden = false;
  $("leave").hidden = false;
  $("room-name").textContent = data.room;
  document.title = `${data.room} · taskroom studio`;
  setConnection(`connected as ${state.me.name} (${state.me.role})`, "online");
  renderParticipants();
  toolkitsChanged();
  renderSchemas();
  try {
    await socket.request("tasks.subscribe", { all: true });
    const [listed, schemas] = await Promise.all([
      socket.request("tasks.list", { limit: 50 }),
      socket.request("schemas.list"),
    ]);
    listed.tasks.forEach(mergeTask);
    state.olderTasksBefore = listed.next_before;
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
    toolkitsChanged();
  },
  "toolkit.unregistered": ({ name, participant_id: host }) => {
    state.toolkits = state.toolkits.filter((t) => !sameInstance(t, host, name));
    toolkitsChanged();
  },
  "schema.changed": () => reloadSchemas(),
  "task.updated": onTaskUpdated,
  "task.progress": onTaskProgress,
  "room.dismissed": ({ reason }) => showError(`The room dismissed you: ${reason}`),
  error: ({ message }) => showError(`The room reported an error: ${message}`),
};

function toolkitsChanged() {
  renderToolkits();
  agentsChanged();
}

const sameInstance = (t, host, name) => t.participant_id === host && t.toolkit.name === name;

window.addEventListener("error", (e) => showError(`Studio hit an error: ${e.message}`));
window.addEventListener("unhandledrejection", (e) =>
  showError(`Studio hit an error: ${e.reason?.message || e.reason}`));
start();
