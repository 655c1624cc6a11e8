// Hash routes, so every view can be linked and the back button works:
//   #/?prefix=&after=                 namespaces
//   #/ns/<ns>?prefix=&after=          a namespace: stats and keys
//   #/ns/<ns>/key/<key>               one item
//   #/ns/<ns>/live?prefix=            a namespace's changes as they happen
// Names are percent-encoded whole, so a key may hold "/", "?", "#" or "%".

const enc = encodeURIComponent;

function to(path, params = {}) {
  const kept = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
  return "#" + path + (kept.length ? "?" + new URLSearchParams(kept) : "");
}

export const link = {
  namespaces: (params) => to("/", params),
  namespace: (ns, params) => to(`/ns/${enc(ns)}`, params),
  item: (ns, key) => to(`/ns/${enc(ns)}/key/${enc(key)}`),
  live: (ns, params) => to(`/ns/${enc(ns)}/live`, params),
};

/** The view a hash names: {view, ns, key, params}; view "missing" if none. */
export function parse(hash) {
  const raw = hash.replace(/^#/, "");
  const mark = raw.indexOf("?");
  const params = new URLSearchParams(mark < 0 ? "" : raw.slice(mark + 1));
  let parts;
  try {
    parts = (mark < 0 ? raw : raw.slice(0, mark)).split("/").filter(Boolean).map(decodeURIComponent);
  } catch {
    return { view: "missing", params };
  }
  const [first, ns, kind, key, ...rest] = parts;
  if (parts.length === 0) return { view: "namespaces", params };
  if (first !== "ns" || ns === undefined || rest.length) return { view: "missing", params };
  if (kind === undefined) return { view: "namespace", ns, params };
  if (kind === "key" && key !== undefined) return { view: "item", ns, key, params };
  if (kind === "live" && key === undefined) return { view: "live", ns, params };
  return { view: "missing", params };
}

// A message for the next view (after a delete, the namespace says what was deleted).
let flash = null;

export function setFlash(node) {
  flash = node;
}

export function takeFlash() {
  const node = flash;
  flash = null;
  return node;
}
