// The inspector: asks /v1/info what the server is, then (in token mode, once a token is
// given) shows the view the location's hash names. Each view gets an AbortSignal that
// fires when it is left, so a late answer never lands on the next view.

import * as api from "./api.js";
import { errorBox, fill, h, message } from "./dom.js";
import { itemView } from "./item.js";
import { namespacesView, namespaceView } from "./lists.js";
import { liveView } from "./live.js";
import { link, parse } from "./routes.js";

const VIEWS = {
  namespaces: namespacesView,
  namespace: namespaceView,
  item: itemView,
  live: liveView,
  missing: missingView,
};
const main = document.getElementById("main");
const crumbs = document.getElementById("crumbs");
const serverLine = document.getElementById("server");
let server = null; // /v1/info: {version, auth, limits}
let current = null; // the AbortController of the view on screen

async function boot() {
  try {
    server = await api.info();
  } catch (error) {
    fill(main, h("h1", {}, "No server"), errorBox(error, "GET /v1/info failed: "));
    return;
  }
  window.addEventListener("hashchange", route);
  document.addEventListener("keydown", shortcut);
  route();
}

function route() {
  current?.abort();
  current = new AbortController();
  const { signal } = current;
  header();
  if (server.auth === "token" && !api.hasToken()) {
    tokenForm();
    return;
  }
  const where = parse(location.hash);
  breadcrumbs(where);
  const fail = (error) => failed(error, signal);
  const ctx = { ...where, main, signal, server, fail };
  try {
    Promise.resolve(VIEWS[where.view](ctx)).catch(fail);
  } catch (error) {
    fail(error);
  }
}

function failed(error, signal) {
  if (signal.aborted || error.name === "AbortError") return;
  if (error.status === 401 && server.auth === "token") {
    api.setToken(null);
    tokenForm(error);
    return;
  }
  if (!(error instanceof api.ApiError)) console.error(error);
  fill(main, h("h1", {}, error.status === 403 ? "Not allowed" : "Error"), errorBox(error),
    h("p", {}, h("a", { href: link.namespaces() }, "Back to the namespaces")));
}

function missingView({ main: into }) {
  fill(into, h("h1", {}, "No such page"),
    h("p", {}, h("a", { href: link.namespaces() }, "Back to the namespaces")));
}

function header() {
  const parts = [`botwire ${server.version}`, server.auth === "token" ? "token mode" : "open mode"];
  fill(serverLine, parts.join(" · "));
  if (api.hasToken()) {
    serverLine.append(" ", h("button", { type: "button", class: "link", onclick: forget },
      "Forget token"));
  }
}

function forget() {
  api.setToken(null);
  route();
}

function breadcrumbs({ view, ns, key, params }) {
  const trail = [["Namespaces", link.namespaces()]];
  if (ns !== undefined) trail.push([ns, link.namespace(ns, { prefix: params.get("prefix") })]);
  if (view === "item") trail.push([key, link.item(ns, key)]);
  if (view === "live") trail.push(["live", link.live(ns)]);
  fill(crumbs, trail.map(([text, href], i) => {
    const last = i === trail.length - 1;
    const up = i === trail.length - 2 ? "u" : null; // "u": one level up
    return [i ? h("span", { class: "sep", "aria-hidden": "true" }, "›") : null,
      h("a", { href, "aria-current": last ? "page" : null, "data-key": up }, text)];
  }));
}

function tokenForm(error = null) {
  fill(crumbs);
  const input = h("input", { type: "password", id: "token", name: "token", required: true,
    autocomplete: "off", spellcheck: "false" });
  const status = h("div", {}, error ? errorBox(error, "The server refused the token: ") : null);
  const submit = async (event) => {
    event.preventDefault();
    api.setToken(input.value.trim());
    try {
      await api.namespaces({ limit: 1 });
    } catch (failure) {
      api.setToken(null);
      const words = failure.status === 401 ? "The server did not accept this token: " : "";
      fill(status, errorBox(failure, words));
      input.select();
      return;
    }
    route();
  };
  document.title = "Token · botwire";
  fill(main,
    h("h1", {}, "Token"),
    h("p", {}, "This server runs in token mode. Paste a token made with ",
      h("code", {}, "botwire token create"), ": you will see the namespaces it reaches."),
    h("p", { class: "muted" }, "The token stays in this page's memory only (no cookie, no ",
      "storage): reloading the page asks for it again."),
    h("form", { class: "token", onsubmit: submit },
      h("label", { for: "token" }, "Token"), " ", input, " ",
      h("button", { type: "submit", class: "primary" }, "Open")),
    status,
  );
  input.focus();
}

// Keys: "/" filter, j/k move between rows, u up, n next page, l live, e edit, d delete.
function shortcut(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target.closest?.("input, textarea, select, [contenteditable]")) return;
  if (event.key === "j" || event.key === "k") {
    const rows = [...main.querySelectorAll("[data-row]")];
    const at = rows.indexOf(document.activeElement);
    const next = event.key === "j" ? Math.min(rows.length - 1, at + 1) : Math.max(0, at - 1);
    rows[next]?.focus();
    event.preventDefault();
    return;
  }
  const found = document.querySelector(`[data-key="${CSS.escape(event.key)}"]`);
  if (found === null) return;
  event.preventDefault();
  if (found.matches("input")) found.focus();
  else found.click();
}

boot().catch((error) => fill(main, message("error", String(error))));
