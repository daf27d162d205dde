// A form generated from a JSON Schema object: one field per property. Strings, numbers,
// integers, booleans, enums and arrays of strings get real inputs; anything else gets a JSON
// textarea. `overrides[name](prop, required)` may supply a field of its own.

import { el, pretty } from "./dom.js";

export class FormError extends Error {}

const fieldId = (name) => `field-${name.replace(/[^A-Za-z0-9_-]/g, "_")}`;

function typeOf(prop) {
  if (typeof prop.type === "string") return prop.type;
  if (Array.isArray(prop.type)) return prop.type.find((t) => t !== "null");
  return undefined;
}

function isStringArray(prop) {
  return typeOf(prop) === "array" && prop.items && typeOf(prop.items) === "string" &&
    !prop.items.enum;
}

function label(name, prop, required, id) {
  return el("label", { for: id },
    el("span", { class: "field-name", text: name }),
    required ? el("span", { class: "required", title: "required", text: " *" }) : null,
    prop.description ? el("span", { class: "hint", text: ` — ${prop.description}` }) : null);
}

// Each builder returns {input, read}; read() gives the value, or undefined to leave it out.
function missing(name, required) {
  if (required) throw new FormError(`${name} is required`);
  return undefined;
}

function stringField(name, prop, required, id) {
  const long = name === "prompt" || (prop.maxLength ?? 0) > 200;
  const input = long
    ? el("textarea", { id, testid: id, rows: 5 })
    : el("input", { id, testid: id, type: "text" });
  input.value = prop.default ?? "";
  return { input, read: () => input.value === "" ? missing(name, required) : input.value };
}

function numberField(name, prop, required, id, integer) {
  const input = el("input", { id, testid: id, type: "number", step: integer ? 1 : "any" });
  input.value = prop.default ?? "";
  const read = () => {
    const text = input.value.trim();
    if (text === "") return missing(name, required);
    const value = Number(text);
    if (!Number.isFinite(value)) throw new FormError(`${name} must be a number`);
    if (integer && !Number.isInteger(value)) throw new FormError(`${name} must be a whole number`);
    return value;
  };
  return { input, read };
}

function choiceField(name, choices, required, id, initial) {
  const input = el("select", { id, testid: id },
    required ? null : el("option", { value: "", text: "(not set)" }),
    choices.map((c) => el("option", { value: JSON.stringify(c), text: String(c) })));
  if (initial !== undefined) input.value = JSON.stringify(initial);
  const read = () => input.value === "" ? missing(name, required) : JSON.parse(input.value);
  return { input, read };
}

function booleanField(name, prop, required, id) {
  if (!required) return choiceField(name, [true, false], false, id, prop.default);
  const input = el("input", { id, testid: id, type: "checkbox" });
  input.checked = Boolean(prop.default);
  return { input, read: () => input.checked };
}

function linesField(name, prop, required, id) {
  const input = el("textarea", { id, testid: id, rows: 3, placeholder: "one item per line" });
  input.value = (prop.default || []).join("\n");
  const read = () => {
    const items = input.value.split("\n").map((s) => s.trim()).filter(Boolean);
    return items.length ? items : missing(name, required);
  };
  return { input, read };
}

export function jsonField(name, required, id, initial) {
  const input = el("textarea", { id, testid: id, rows: 6, class: "code", spellcheck: "false" });
  input.value = initial === undefined ? "" : pretty(initial);
  const read = () => {
    if (input.value.trim() === "") return missing(name, required);
    try {
      return JSON.parse(input.value);
    } catch (err) {
      throw new FormError(`${name} is not valid JSON: ${err.message}`);
    }
  };
  return { input, read };
}

function buildField(name, prop, required) {
  const id = fieldId(name);
  const type = typeOf(prop);
  if (Array.isArray(prop.enum)) return choiceField(name, prop.enum, required, id, prop.default);
  if (type === "string") return stringField(name, prop, required, id);
  if (type === "number" || type === "integer") {
    return numberField(name, prop, required, id, type === "integer");
  }
  if (type === "boolean") return booleanField(name, prop, required, id);
  if (isStringArray(prop)) return linesField(name, prop, required, id);
  return jsonField(name, required, id, prop.default);
}

export function hasFields(schema) {
  return Boolean(schema && schema.properties && Object.keys(schema.properties).length);
}

// Fill `container` with the fields of `schema`; returns read(options) -> the arguments.
// An override returns {input, read, title?}; `input.id` ties the label to it.
export function buildForm(container, schema, overrides = {}) {
  const required = new Set(schema.required || []);
  const fields = Object.entries(schema.properties || {}).map(([name, prop]) => {
    const isRequired = required.has(name);
    const field = overrides[name]
      ? overrides[name](prop, isRequired)
      : buildField(name, prop, isRequired);
    container.append(el("div", { class: "field" },
      label(field.title || name, prop, isRequired, field.input.id), field.input));
    return [name, field];
  });
  // strict=false skips fields that are missing or wrong, for a JSON draft of the input.
  return ({ strict = true } = {}) => {
    const args = {};
    for (const [name, field] of fields) {
      let value;
      try {
        value = field.read();
      } catch (err) {
        if (strict || !(err instanceof FormError)) throw err;
      }
      if (value !== undefined) args[name] = value;
    }
    return args;
  };
}
