// What Studio knows about the room, shared by its modules, and the one way to ask the room.

import { RoomError } from "./room-socket.js";

export const FINISHED = new Set(["completed", "failed", "cancelled"]);

export const state = {
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
  olderTasksBefore: null,
  form: { agent: null, read: null, tools: null },
};

export async function request(type, data) {
  if (!state.socket) {
    throw new RoomError({ code: "unavailable", message: "not connected to the room" });
  }
  return state.socket.request(type, data);
}

// One entry per agent name: a toolkit whose metadata says agent, and who hosts it.
export function agents() {
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
