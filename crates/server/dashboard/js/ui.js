// Small DOM helpers shared by the pages: element building, formatting, and toasts.

/** h("div.card", {onclick}, child, ...) builds an element; strings become text nodes. */
export function h(tag, props = {}, ...children) {
  // "name#id.class.class" (id and classes in any order)
  const parts = tag.match(/^[^.#]*|[.#][^.#]+/g);
  const el = document.createElement(parts[0] || "div");
  const classes = [];
  for (const p of parts.slice(1)) {
    if (p[0] === "#") el.id = p.slice(1);
    else classes.push(p.slice(1));
  }
  if (classes.length) el.className = classes.join(" ");
  if (props === null || typeof props !== "object" || props instanceof Node || Array.isArray(props)) {
    children.unshift(props);
    props = {};
  }
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "value") el.value = v;
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let i = -1;
  do {
    n /= 1024;
    i++;
  } while (n >= 1024 && i < units.length - 1);
  return `${n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(0)} ms`;
}

export function fmtTime(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString(undefined, { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

export function fmtDate(ms) {
  return new Date(ms).toLocaleString(undefined, { hour12: false });
}

let toastBox = null;
export function toast(text, kind = "ok") {
  if (!toastBox) {
    toastBox = h("div.toasts");
    document.body.append(toastBox);
  }
  const t = h(`div.toast.${kind}`, text);
  toastBox.append(t);
  setTimeout(() => t.remove(), 4000);
}

export function badge(text, kind = "") {
  return h(`span.badge${kind ? "." + kind : ""}`, text);
}
