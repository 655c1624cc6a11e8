import { field } from "./json.js";

// Every request to /v1 goes through here. The token lives in this module's memory only:
// never a cookie (no other site can make the browser send it), never Web Storage (a reload
// forgets it and asks again).

let token = null;

export function setToken(secret) {
  token = secret || null;
}

export function hasToken() {
  return token !== null;
}

/** A failed request: the HTTP status and the server's {"error": {"code", "message"}}. */
export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** One path segment, percent-encoded. */
function segment(name) {
  return encodeURIComponent(name);
}

function query(params) {
  const kept = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
  return kept.length ? "?" + new URLSearchParams(kept) : "";
}

/**
 * Send a request; the answer's {data, text, response}, or throw ApiError.
 * `json` is a body already serialized as JSON text.
 */
export async function request(method, path, { params = {}, json, headers = {}, signal } = {}) {
  const init = { method, signal, cache: "no-store", credentials: "omit", headers: { ...headers } };
  if (token !== null) init.headers.Authorization = `Bearer ${token}`;
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = json;
  }
  let response;
  try {
    response = await fetch(path + query(params), init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "unreachable", `cannot reach the server (${error.message})`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    if (response.ok) throw new ApiError(response.status, "bad_response", "the answer is not JSON");
  }
  if (!response.ok) {
    const error = data?.error ?? {};
    const words = error.message ?? `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, error.code ?? `http_${response.status}`, words, error);
  }
  return { data, text, response };
}

const ns = (namespace) => `/v1/ns/${segment(namespace)}`;
const get = async (path, options) => (await request("GET", path, options)).data;

export const info = (signal) => get("/v1/info", { signal });

export const namespaces = (params, signal) => get("/v1/namespaces", { params, signal });

export const stats = (namespace, signal) => get(`${ns(namespace)}/stats`, { signal });

export const keys = (namespace, params, signal) =>
  get(`${ns(namespace)}/keys`, { params, signal });

export const changes = (namespace, params, signal) =>
  get(`${ns(namespace)}/changes`, { params, signal });

// One key's operations go through /batch: a browser turns a path segment "%2E%2E" back into
// ".." and drops it, so the keys "." and ".." could not be named in a path.

/** Run the single op `op` (its JSON text) on `namespace`: {data: its result, text}. */
async function one(namespace, opText, signal) {
  const json = `{"ops": [${opText}]}`;
  const { data, text } = await request("POST", `${ns(namespace)}/batch`, { json, signal });
  return { data: data.results[0], text: field(text, "results").slice(1, -1) };
}

/** The item (null if there is none), and the exact JSON text of its value (see json.js). */
export async function record(namespace, key, signal) {
  const { data, text } = await one(namespace, op("get", key), signal);
  return data === null ? null : { item: data, raw: field(text, "value") };
}

/**
 * Write `valueText` (valid JSON text, sent as typed) if the key is still at `version`
 * (0: only if it does not exist); `ttl` seconds, or null for never. The new version.
 */
export async function put(namespace, key, valueText, version, ttl) {
  const more = `, "value": ${valueText}, "ttl": ${JSON.stringify(ttl)}, "if_version": ${version}`;
  return (await one(namespace, op("put", key, more))).data;
}

/** Delete the key if it is still at `version`: whether it was there. */
export async function remove(namespace, key, version) {
  return (await one(namespace, op("delete", key, `, "if_version": ${version}`))).data;
}

/** A new expiry, `ttl` seconds from now (null: never): whether the key was there. */
export async function touch(namespace, key, ttl) {
  return (await one(namespace, op("touch", key, `, "ttl": ${JSON.stringify(ttl)}`))).data;
}

function op(name, key, more = "") {
  return `{"op": "${name}", "key": ${JSON.stringify(key)}${more}}`;
}
