// One item: its value pretty-printed, its version and times; edit (guarded by the version
// it was opened at), delete, and set or clear its expiry.

import * as api from "./api.js";
import { bytes, errorBox, fill, h, message, when } from "./dom.js";
import { layout, pretty } from "./json.js";
import { link, setFlash } from "./routes.js";

const load = api.record; // {item, raw}, or null if there is no such key

export async function itemView(ctx) {
  const { main, ns, key, signal } = ctx;
  document.title = `${key} · ${ns} · botwire`;
  const found = await load(ns, key, signal);
  if (found === null) {
    fill(main, h("h1", { class: "name" }, key),
      message("note", "There is no such key in ", h("code", {}, ns),
        " (it may have been deleted, or have expired). ",
        h("a", { href: link.namespace(ns) }, "Back to the namespace")));
    return;
  }
  show(ctx, found);
}

/** Render `found` and wire its actions; `note` goes above the value. */
function show(ctx, found, note = null) {
  const { main, ns, key, signal } = ctx;
  const { item, raw } = found;
  const status = h("div", { class: "status" }, note);
  const say = (...children) => fill(status, ...children);
  const reopen = async (done) => {
    let now;
    try {
      now = await load(ns, key, signal);
    } catch (error) {
      say(done, errorBox(error, "Could not read it again: "));
      return;
    }
    if (now === null) itemView(ctx).catch(ctx.fail);
    else show(ctx, now, done);
  };
  const valueBox = h("pre", { class: "json", tabindex: 0, "aria-label": "Value" }, colored(raw));
  const actions = h("div", { class: "actions" });

  const viewing = () => {
    valueBox.hidden = false;
    editor?.remove();
    fill(actions,
      h("button", { type: "button", "data-key": "e", onclick: editing }, "Edit"),
      h("button", { type: "button", class: "danger", "data-key": "d", onclick: confirmDelete },
        "Delete…"),
    );
  };

  let editor = null;
  const cancel = () => {
    say();
    viewing();
  };
  const editKeys = (event) => { // in the editor or on its buttons
    if (!editor?.isConnected) return;
    if (event.key === "Escape") cancel();
    else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) save(item);
  };
  actions.addEventListener("keydown", editKeys);
  const editing = () => {
    editor = h("textarea", { class: "json", spellcheck: "false", "aria-label": "Value (JSON)",
      rows: Math.min(30, Math.max(6, pretty(raw).split("\n").length + 1)), value: pretty(raw),
      onkeydown: editKeys });
    valueBox.hidden = true;
    valueBox.after(editor);
    fill(actions,
      h("button", { type: "button", class: "primary", onclick: () => save(item) }, "Save"),
      h("button", { type: "button", onclick: cancel }, "Cancel"),
      h("span", { class: "hint" }, "Ctrl+Enter saves, Esc cancels"),
    );
    editor.focus();
  };

  // `base`: the item the edit is guarded by (its version, its expiry to keep).
  const save = async (base) => {
    const text = editor.value;
    try {
      JSON.parse(text);
    } catch (error) {
      say(message("error", "Not valid JSON, nothing was sent: ", error.message));
      return;
    }
    const ttl = base.expires_at === null ? null
      : Math.max(0.001, base.expires_at - Date.now() / 1000); // keep the expiry
    let version;
    try {
      version = await api.put(ns, key, text, base.version, ttl);
    } catch (error) {
      if (error.code === "conflict") await conflict();
      else say(errorBox(error, "Not saved: "));
      return;
    }
    await reopen(message("ok", `Saved: version ${version}.`));
  };

  // Someone else wrote first: show what they wrote, keep the edit, overwrite nothing.
  const conflict = async () => {
    let theirs;
    try {
      theirs = await load(ns, key, signal);
    } catch (error) {
      say(errorBox(error, "Not saved (changed by someone else), and not read again: "));
      return;
    }
    const box = message("error", h("strong", {}, "Changed by someone else since you opened it."),
      " Your edit was not saved.");
    if (theirs === null) box.append(" The key has since been deleted.");
    else {
      box.append(` It is now version ${theirs.item.version}:`,
        h("pre", { class: "json theirs" }, colored(theirs.raw)));
    }
    const next = theirs?.item ?? { version: 0, expires_at: null };
    box.append(h("div", { class: "actions" },
      h("button", { type: "button", onclick: () => (theirs ? show(ctx, theirs) : reopen()) },
        "Discard my edit"),
      h("button", { type: "button", onclick: () => save(next) },
        theirs ? "Save mine over theirs" : "Save mine again")));
    say(box);
    box.scrollIntoView({ block: "nearest" });
  };

  const confirmDelete = () => {
    const yes = h("button", { type: "button", class: "danger", onclick: remove }, "Delete");
    say(message("note", "Delete ", h("code", {}, key), "? This cannot be undone. ", yes, " ",
      h("button", { type: "button", onclick: () => say() }, "Cancel")));
    yes.focus();
  };

  const remove = async () => {
    try {
      const deleted = await api.remove(ns, key, item.version);
      setFlash(message("ok", deleted ? "Deleted " : "Already gone: ", h("code", {}, key), "."));
      location.hash = link.namespace(ns);
    } catch (error) {
      if (error.code !== "conflict") say(errorBox(error, "Not deleted: "));
      else {
        say(message("error", h("strong", {}, "Changed by someone else since you opened it:"),
          " not deleted. ", h("button", { type: "button", onclick: () => reopen() }, "Reload")));
      }
    }
  };

  const setExpiry = async (ttl) => {
    try {
      if (!(await api.touch(ns, key, ttl))) {
        say(message("error", "The key no longer exists."));
        return;
      }
    } catch (error) {
      say(errorBox(error, "Expiry not changed: "));
      return;
    }
    await reopen(message("ok", ttl === null ? "It never expires now." : "Expiry set."));
  };
  const seconds = h("input", { type: "number", id: "ttl", min: "0.001", step: "any",
    required: true, placeholder: "seconds", inputmode: "decimal" });
  const expiryForm = h("form", { class: "ttl", onsubmit: (event) => {
    event.preventDefault();
    setExpiry(Number(seconds.value));
  } },
  h("label", { for: "ttl" }, "Expire in"), " ", seconds, " seconds ",
  h("button", { type: "submit" }, "Set expiry"), " ",
  h("button", { type: "button", disabled: item.expires_at === null,
    onclick: () => setExpiry(null) }, "Never expire"));

  viewing();
  fill(ctx.main,
    h("h1", { class: "name" }, key),
    h("dl", { class: "facts" },
      h("dt", {}, "Version"), h("dd", { "data-field": "version" }, String(item.version)),
      h("dt", {}, "Created"), h("dd", {}, when(item.created_at)),
      h("dt", {}, "Updated"), h("dd", {}, when(item.updated_at)),
      h("dt", {}, "Expires"), h("dd", { "data-field": "expires" },
        item.expires_at === null ? "never" : when(item.expires_at)),
      h("dt", {}, "Size"), h("dd", {}, bytes(new TextEncoder().encode(raw).length))),
    valueBox, actions, status, expiryForm,
  );
  main.focus({ preventScroll: true });
}

/** The value's JSON, indented, its tokens in spans by kind (a very large one stays plain). */
function colored(raw) {
  if (raw.length > 100_000) return pretty(raw);
  return layout(raw).map(([piece, kind]) => (kind ? h("span", { class: `j-${kind}` }, piece)
    : piece));
}
