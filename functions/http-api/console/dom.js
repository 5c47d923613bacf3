// Building the page without markup: every string becomes a text node, so
// what a customer or an agent wrote is shown as text, never parsed as HTML.

/**
 * Creates an element. `attrs` holds attributes (set with setAttribute),
 * `class`, and `on` (event name -> handler); children are nodes or strings
 * (strings become text nodes); null and undefined children are skipped.
 */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "on") {
      for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    } else if (name === "value") {
      node.value = value;
    } else if (value === true) {
      node.setAttribute(name, "");
    } else {
      node.setAttribute(name, String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the children of `node`. */
export function replace(node, ...children) {
  node.replaceChildren();
  append(node, children);
}

/** "2 h 5 min" from an ISO time to now. */
export function age(iso, now = Date.now()) {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "unknown";
  const minutes = Math.max(0, Math.floor((now - then) / 60000));
  if (minutes < 1) return "under a minute";
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} days`;
}

/** A readable UTC time with the ISO time in a <time> element. */
export function time(iso) {
  const date = new Date(iso);
  const text = Number.isNaN(date.getTime()) ? String(iso) : date.toISOString().replace("T", " ").slice(0, 16) + " UTC";
  return el("time", { datetime: iso }, text);
}

/** The console's own link to a case page. */
export function caseHref(caseId) {
  return `#/case/${encodeURIComponent(caseId)}`;
}
