// Forms that post to the API: what they send, and the errors that come back,
// shown beside the fields they are about.
//
// DRF nests the errors of list items ({"files": {"1": ["…"]}}) and of nested
// objects; every one becomes a sentence ("adapter_model.safetensors: …"),
// never "[object Object]". Errors of no field of the form (detail,
// non_field_errors, a field the page does not show) go to one list on top.

/** ``data`` without the fields left empty: an optional field empty is not sent at all. */
export function filledFields(data) {
  for (const [key, value] of Array.from(data.entries())) {
    if (typeof value === "string" && !value.trim()) data.delete(key);
  }
  return data;
}

const GENERAL = new Set(["detail", "non_field_errors"]);

function flatten(value, prefix, out) {
  if (value == null) return out;
  if (typeof value !== "object") {
    out.push(prefix ? `${prefix}: ${value}` : String(value));
  } else if (Array.isArray(value)) {
    value.forEach((item) => flatten(item, prefix, out));
  } else {
    for (const [key, inner] of Object.entries(value)) {
      flatten(inner, prefix ? `${prefix}, ${key}` : key, out);
    }
  }
  return out;
}

/**
 * The messages of an API error body, per field: {field: ["sentence", …]}.
 * ``itemNames`` names the items of list fields, e.g. {files: ["a.json", "b.bin"]};
 * items without a name are called "<itemLabel> N" (from ``itemLabels``, else "item").
 */
export function errorMessages(body, { itemNames = {}, itemLabels = {} } = {}) {
  const messages = {};
  if (body == null || typeof body !== "object" || Array.isArray(body)) {
    return body == null ? messages : { detail: flatten(body, "", []) };
  }
  for (const [field, value] of Object.entries(body)) {
    const lines = [];
    if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [key, inner] of Object.entries(value)) {
        const index = Number(key);
        const name = Number.isInteger(index)
          ? (itemNames[field]?.[index] ?? `${itemLabels[field] ?? "Item"} ${index + 1}`)
          : key;
        flatten(inner, name, lines);
      }
    } else {
      flatten(value, "", lines);
    }
    if (lines.length) messages[field] = lines;
  }
  return messages;
}

function errorList(id, lines) {
  const list = Object.assign(document.createElement("ul"), { className: "errorlist", id });
  list.dataset.clientErrors = "";
  list.replaceChildren(...lines.map((text) => Object.assign(document.createElement("li"), { textContent: text })));
  return list;
}

function controlsOf(form, field) {
  const found = form.elements.namedItem(field);
  if (!found) return [];
  return found instanceof Element ? [found] : Array.from(found);
}

function describe(control, id, add) {
  const ids = new Set((control.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean));
  if (add) ids.add(id); else ids.delete(id);
  if (ids.size) control.setAttribute("aria-describedby", [...ids].join(" "));
  else control.removeAttribute("aria-describedby");
  if (add) control.setAttribute("aria-invalid", "true");
  else control.removeAttribute("aria-invalid");
}

/** Remove the errors shown on the form: the page's own and those shown by ``showErrors``. */
export function clearErrors(form, general) {
  const removed = new Set();
  form.querySelectorAll(".field .errorlist").forEach((list) => {
    removed.add(list.id);
    list.remove();
  });
  form.querySelectorAll("[aria-describedby]").forEach((control) => {
    removed.forEach((id) => describe(control, id, false));
  });
  form.querySelectorAll("[aria-invalid]").forEach((control) => control.removeAttribute("aria-invalid"));
  form.querySelectorAll(".field.invalid").forEach((box) => box.classList.remove("invalid"));
  if (general) {
    general.replaceChildren();
    general.hidden = true;
  }
}

/**
 * Show ``messages`` ({field: [sentences]}, from ``errorMessages``) beside their
 * fields, marked aria-invalid and described by the list; the rest in ``general``
 * (a role=alert list). ``labels`` names fields the form does not show. Focus goes
 * to the first invalid field.
 */
export function showErrors(form, messages, general, labels = {}) {
  clearErrors(form, general);
  const leftOver = [];
  let first = null;
  for (const [field, lines] of Object.entries(messages)) {
    const controls = GENERAL.has(field) ? [] : controlsOf(form, field);
    const box = controls[0]?.closest(".field");
    if (!box) {
      const label = labels[field] ?? (GENERAL.has(field) ? "" : field.replaceAll("_", " "));
      leftOver.push(...lines.map((line) => (label ? `${label}: ${line}` : line)));
      continue;
    }
    const id = `${controls[0].id || field}_error`;
    box.dataset.field = field;
    box.classList.add("invalid");
    box.append(errorList(id, lines));
    controls.forEach((control) => describe(control, id, true));
    first ??= controls[0];
  }
  if (general && leftOver.length) {
    general.replaceChildren(...leftOver.map((text) => Object.assign(document.createElement("li"), { textContent: text })));
    general.hidden = false;
  }
  first?.focus();
}
