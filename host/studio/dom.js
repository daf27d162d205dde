// Small DOM helpers. Text goes in through textContent only, so room data never becomes markup.

export const $ = (id) => document.getElementById(id);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "testid") node.dataset.testid = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  node.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

export const pretty = (value) => JSON.stringify(value, null, 2);

// A result as the user wants to read it: text as text, anything else as indented JSON.
export function renderValue(value, testid) {
  if (typeof value === "string") return el("pre", { class: "text", testid, text: value });
  return el("pre", { class: "json", testid, text: pretty(value) });
}

export function clock(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleTimeString() : "";
}

export function statusPill(status, testid) {
  return el("span", { class: `status status-${status}`, testid, text: status });
}

export function replace(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined));
}

// --- messages to the user ---------------------------------------------------------------

export function showError(message) {
  $("error-text").textContent = message;
  $("error").hidden = false;
}

export function clearError() {
  $("error").hidden = true;
}

export function showInline(id, message) {
  $(id).textContent = message;
  $(id).hidden = !message;
}

export function note(text) {
  return el("p", { class: "empty", text });
}

export function badge(text) {
  return el("span", { class: "badge", text });
}
