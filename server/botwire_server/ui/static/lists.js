// The namespaces, and one namespace's stats and keys, a page at a time.

import * as api from "./api.js";
import { bytes, count, fill, filterForm, h, pager, relative, usage } from "./dom.js";
import { link, takeFlash } from "./routes.js";

const PAGE = 100;

export async function namespacesView({ main, params, signal, server }) {
  const prefix = params.get("prefix") ?? "";
  const after = params.get("after") ?? "";
  const page = await api.namespaces({ prefix, after, limit: PAGE }, signal);
  const { max_bytes: quota, writes_per_day: perDay } = server.limits;
  const rows = page.namespaces.map((n) =>
    h("tr", {},
      h("th", { scope: "row" }, h("a", { href: link.namespace(n.namespace), "data-row": true },
        n.namespace)),
      h("td", { class: "num" }, count(n.keys)),
      h("td", {}, usage(n.bytes, quota, bytes)),
      h("td", {}, usage(n.writes_today, perDay, count))));
  document.title = "Namespaces · botwire";
  fill(main,
    h("h1", {}, "Namespaces"),
    takeFlash(),
    filterForm("Namespace prefix", prefix, (p) => link.namespaces({ prefix: p })),
    rows.length
      ? h("table", { class: "list" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Namespace"),
          h("th", { scope: "col", class: "num" }, "Keys"), h("th", { scope: "col" }, "Stored"),
          h("th", { scope: "col" }, "Writes today (UTC)"))),
        h("tbody", {}, rows))
      : h("p", { class: "empty" }, empty("No namespace", prefix, after)),
    pager(after, page.next, link.namespaces({ prefix, after: page.next }),
      link.namespaces({ prefix })),
  );
}

export async function namespaceView({ main, ns, params, signal, server }) {
  const prefix = params.get("prefix") ?? "";
  const after = params.get("after") ?? "";
  const [stats, page] = await Promise.all([
    api.stats(ns, signal),
    api.keys(ns, { prefix, after, limit: PAGE }, signal),
  ]);
  const limits = stats.limits ?? server.limits;
  document.title = `${ns} · botwire`;
  fill(main,
    h("div", { class: "title" }, h("h1", { class: "name" }, ns),
      h("a", { href: link.live(ns, { prefix }), class: "button", "data-key": "l" },
        "Live changes")),
    takeFlash(),
    h("dl", { class: "facts" },
      h("dt", {}, "Keys"), h("dd", {}, count(stats.keys)),
      h("dt", {}, "Stored"), h("dd", {}, usage(stats.bytes, limits.max_bytes, bytes)),
      h("dt", {}, "Writes today"), h("dd", {}, usage(stats.writes_today, limits.writes_per_day,
        count), limits.writes_per_day ? ` (resets ${relative(stats.window_resets_at)})` : null)),
    filterForm("Key prefix", prefix, (p) => link.namespace(ns, { prefix: p })),
    page.keys.length
      ? h("ul", { class: "keys" }, page.keys.map((key) =>
        h("li", {}, h("a", { href: link.item(ns, key), "data-row": true }, key))))
      : h("p", { class: "empty" }, empty("No key", prefix, after)),
    pager(after, page.next, link.namespace(ns, { prefix, after: page.next }),
      link.namespace(ns, { prefix })),
  );
}

function empty(what, prefix, after) {
  if (after) return `${what} after “${after}”.`;
  return prefix ? `${what} starts with “${prefix}”.` : `${what} yet.`;
}
