// The room as it is now: participants, agents, toolkits with their tools, and schemas.

import { $, badge, el, note, pretty, replace, showError } from "./dom.js";
import { agentTitle, selectAgent } from "./run-task.js";
import { agents, request, state } from "./state.js";

export function renderParticipants() {
  const people = [...state.participants.values()].sort((a, b) => a.name.localeCompare(b.name));
  $("participants-count").textContent = String(people.length);
  replace($("participants"), people.map((p) =>
    el("li", { testid: "participant", "data-name": p.name, "data-role": p.role },
      el("span", { class: "name", text: p.name }),
      badge(p.role),
      p.id === state.me?.id ? el("span", { class: "you", text: "you" }) : null)));
}

export function renderToolkits() {
  const sorted = [...state.toolkits].sort((a, b) =>
    a.toolkit.name.localeCompare(b.toolkit.name) ||
    a.participant_name.localeCompare(b.participant_name));
  replace($("toolkits"), sorted.length ? sorted.map(toolkitView) : note("No toolkits yet."));
  renderAgents();
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

export async function reloadSchemas() {
  try {
    state.schemas = (await request("schemas.list")).schemas;
  } catch (err) {
    showError(`Could not load the room's schemas: ${err.message}`);
  }
  renderSchemas();
}

export function renderSchemas() {
  replace($("schemas"), state.schemas.length ? state.schemas.map((s) =>
    el("details", { class: "schema", testid: "schema", "data-name": s.name },
      el("summary", { text: s.name }),
      s.schema ? el("pre", { class: "json", text: pretty(s.schema) }) : note("loading…")))
    : note("No schemas in this room."));
}
