// A namespace's changes as they happen: long polls of /changes (the watch stream), newest
// first. The loop stops when the view is left (its signal aborts); a failed poll is retried
// from the same cursor after 1, 2, 4 ... 30 seconds, so no change is skipped.

import * as api from "./api.js";
import { fill, filterForm, h, message, relative, sleep, stamp } from "./dom.js";
import { link } from "./routes.js";

const WAIT = 25; // seconds the server may hold a poll
const KEPT = 500; // rows on screen
const RETRY = new Set([0, 429, 500, 502, 503, 504]); // worth another try: the rest will not change

export function liveView({ main, ns, params, signal, fail }) {
  const prefix = params.get("prefix") ?? "";
  const status = h("p", { class: "live-status", role: "status" }, "Connecting…");
  const rows = h("tbody");
  let seen = 0;
  const counter = h("span", { class: "muted" });
  document.title = `Live: ${ns} · botwire`;
  fill(main,
    h("div", { class: "title" }, h("h1", {}, "Changes in ", h("span", { class: "name" }, ns)),
      h("a", { href: link.namespace(ns, { prefix }), class: "button" },
        "Keys")),
    filterForm("Key prefix", prefix, (p) => link.live(ns, { prefix: p })),
    h("div", { class: "live-bar" }, status, counter,
      h("button", { type: "button", onclick: () => fill(rows) }, "Clear")),
    h("table", { class: "list wide changes" },
      h("thead", {}, h("tr", {}, ["Seen", "Key", "Version", "Change", "Expires"].map((t) =>
        h("th", { scope: "col" }, t)))),
      rows),
  );
  const live = (text) => {
    status.className = "live-status live";
    fill(status, text);
  };
  const showPage = (page) => {
    if (page.reset) {
      rows.prepend(h("tr", {}, h("td", { colspan: 5 }, message("note",
        "Some changes were not seen: the feed had moved past them."))));
    }
    for (const change of page.changes) rows.prepend(row(ns, change));
    while (rows.children.length > KEPT) rows.lastElementChild.remove();
    seen += page.changes.length;
    counter.textContent = seen ? `${seen} change${seen === 1 ? "" : "s"} seen` : "";
  };
  const retrying = (error, delay) => {
    status.className = "live-status retrying";
    fill(status, `Reconnecting in ${delay} s (`, h("code", {}, error.code), `: ${error.message})`);
  };
  watch(ns, prefix, signal, { live, showPage, retrying, stopped: fail });
}

async function watch(ns, prefix, signal, show) {
  let cursor = null;
  let failures = 0;
  while (!signal.aborted) {
    const started = Date.now();
    try {
      if (cursor === null) { // from now on: limit=0 answers only the newest version
        cursor = (await api.changes(ns, { prefix, limit: 0 }, signal)).next;
      } else {
        const params = { since: cursor, prefix, values: "true", wait: WAIT, limit: 100 };
        const page = await api.changes(ns, params, signal);
        cursor = page.next;
        show.showPage(page);
        if (!page.changes.length && Date.now() - started < 1000) await sleep(1000, signal);
      }
      failures = 0;
      show.live(prefix ? `Live: keys starting with “${prefix}”` : "Live");
    } catch (error) {
      if (signal.aborted) return;
      if (!RETRY.has(error.status)) {
        show.stopped(error);
        return;
      }
      failures += 1;
      const delay = Math.min(30, 2 ** (failures - 1));
      show.retrying(error, delay);
      await sleep(delay * 1000, signal);
    }
  }
}

function row(ns, change) {
  const what = change.deleted
    ? h("span", { class: "tag deleted" }, "deleted")
    : h("code", { class: "preview" }, preview(change.value));
  const expires = change.deleted ? "" : change.expires_at == null ? "never"
    : relative(change.expires_at);
  return h("tr", {},
    h("td", { class: "muted" }, stamp(Date.now() / 1000).slice(11)),
    h("th", { scope: "row" }, h("a", { href: link.item(ns, change.key), "data-row": true },
      change.key)),
    h("td", { class: "num" }, String(change.version)),
    h("td", {}, what),
    h("td", {}, expires));
}

function preview(value) {
  if (value === undefined) return "(changed)";
  const text = JSON.stringify(value);
  return text.length > 160 ? text.slice(0, 159) + "…" : text;
}
