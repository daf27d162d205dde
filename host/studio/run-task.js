// Run Task: pick an agent, fill the form generated from its input schema, start the task.

import { $, el, pretty, replace, showInline } from "./dom.js";
import { FormError, buildForm, hasFields, jsonField } from "./schema-form.js";
import { agents, request, state } from "./state.js";
import { mergeTask, openTask, renderTasks } from "./tasks.js";

const DEFAULT_OUTPUT_SCHEMA = {
  type: "object",
  properties: { answer: { type: "string" } },
  required: ["answer"],
  additionalProperties: false,
};

export function agentTitle(spec) {
  const title = spec.metadata.title || spec.title;
  return title && title !== spec.name ? `${title} (${spec.name})` : spec.name;
}

export function initRunTask() {
  $("run-form").addEventListener("submit", runTask);
  $("run-agent").addEventListener("change", () => {
    if ($("run-agent").value !== state.form.agent) renderRunForm();
  });
  $("run-raw").addEventListener("change", toggleRawInput);
}

// The room's agents or toolkits changed: refresh the agent list and the tools on offer.
export function agentsChanged() {
  renderAgentSelect();
  refreshToolChoices();
}

export function selectAgent(name) {
  $("run-agent").value = name;
  if (name !== state.form.agent) renderRunForm();
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
  if (!agent) return;
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
    const started = await request("tasks.start", { agent, arguments: args });
    started.tasks.forEach(mergeTask);
    renderTasks();
    openTask(started.task_ids[0]);
  } catch (err) {
    showInline("run-error", `The room refused the task: ${err.message}`);
  } finally {
    $("run-submit").disabled = false;
  }
}
