// Building the page: every piece of data becomes a text node, never markup.

/** An element: h("a", {href: "#/"}, "text", child, [more]); `on*` props are listeners. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "value") el.value = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  el.append(...nodes(children));
  return el;
}

/** Children as nodes: strings and numbers become text nodes, arrays are flattened. */
export function nodes(children) {
  const out = [];
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    out.push(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return out;
}

/** A message box: kind is "error" (role=alert), "ok" or "note" (role=status). */
export function message(kind, ...children) {
  const role = kind === "error" ? "alert" : "status";
  return h("div", { class: `msg msg-${kind}`, role }, ...children);
}

/** An API error as a message box: its code, then the server's own words. */
export function errorBox(error, prefix = "") {
  const code = error.code ? h("code", {}, error.code) : null;
  return message("error", prefix, code, code ? ": " : "", error.message || String(error));
}

const numbers = new Intl.NumberFormat();

export function count(n) {
  return numbers.format(n);
}

export function bytes(n) {
  if (n < 1000) return `${count(n)} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = n / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  const digits = value < 10 && !Number.isInteger(value) ? 1 : 0;
  return `${value.toFixed(digits)} ${units[unit]}`;
}

/** "used of limit" and a meter, or just "used" where the limit is 0 (none). */
export function usage(used, limit, format) {
  if (!limit) return h("span", {}, format(used));
  return h(
    "span",
    { class: "usage" },
    `${format(used)} of ${format(limit)}`,
    h("meter", { min: 0, max: limit, value: Math.min(used, limit), low: limit * 0.7,
      high: limit * 0.9, optimum: 0, title: `${Math.round((100 * used) / limit)}%` }),
  );
}

const pad2 = (n) => String(n).padStart(2, "0");

/** Unix seconds as local "YYYY-MM-DD HH:MM:SS". */
export function stamp(seconds) {
  const d = new Date(seconds * 1000);
  const day = `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`;
  return `${day} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

const relativeFormat = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

/** Unix seconds relative to now: "in 5 minutes", "3 hours ago". */
export function relative(seconds) {
  const diff = seconds - Date.now() / 1000;
  const size = Math.abs(diff);
  const [unit, per] =
    size < 60 ? ["second", 1] : size < 3600 ? ["minute", 60] : size < 86400 ? ["hour", 3600]
      : ["day", 86400];
  return relativeFormat.format(Math.round(diff / per), unit);
}

/** A time element: absolute local time, then relative ("in 5 minutes"). */
export function when(seconds) {
  const iso = new Date(seconds * 1000).toISOString();
  return h("time", { datetime: iso, title: iso }, `${stamp(seconds)} (${relative(seconds)})`);
}

/** A prefix filter ("/" focuses it); submitting goes to `target(prefix)`. */
export function filterForm(label, value, target) {
  const input = h("input", { type: "search", name: "prefix", value, "data-key": "/",
    spellcheck: "false", autocomplete: "off", placeholder: "prefix", "aria-label": label });
  const submit = (event) => {
    event.preventDefault();
    location.hash = target(input.value);
  };
  return h("form", { class: "filter", role: "search", onsubmit: submit },
    h("label", {}, label, " ", input), " ", h("button", { type: "submit" }, "Filter"),
    value ? h("a", { href: target(""), class: "clear" }, "clear") : null);
}

/** "Next page" (key n) when there is one, and "First page" when this is not the first. */
export function pager(after, next, nextHref, firstHref) {
  if (!after && !next) return null;
  return h("nav", { class: "pager", "aria-label": "Pages" },
    after ? h("a", { href: firstHref }, "« First page") : null,
    next ? h("a", { href: nextHref, "data-key": "n", rel: "next" }, "Next page »") : null);
}

/** Resolve after `ms`, or at once when `signal` aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}

/** Replace the children of `el` (null, false and undefined children are left out). */
export function fill(el, ...children) {
  el.replaceChildren(...nodes(children));
}
