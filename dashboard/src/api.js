// Reads from /api/v1 with the session's API key (asked for when reads need one), and live
// streams: a WebSocket, or polling when the socket cannot be had.
import { t } from "./i18n.js";

export const API = "/api/v1";
const KEY = "smartmarket.apiKey";
let asking = null;

function askForKey(wrong) {
  if (!asking) {
    asking = new Promise((resolve) => {
      const dialog = document.getElementById("key-dialog");
      const input = document.getElementById("key-input");
      document.getElementById("key-error").hidden = !wrong;
      dialog.addEventListener(
        "close",
        () => {
          sessionStorage.setItem(KEY, input.value.trim());
          asking = null;
          resolve();
        },
        { once: true },
      );
      dialog.showModal();
    });
  }
  return asking;
}

/** The headers of a read: the session's API key, if one was given. */
export function readHeaders() {
  const key = sessionStorage.getItem(KEY);
  return key ? { "X-API-Key": key } : {};
}

/** GET `path` (under /api/v1) as JSON; on 401 asks for a key and tries again. */
export async function getJson(path, params = {}) {
  const query = new URLSearchParams(
    Object.entries(params).filter(([, v]) => v != null && v !== ""),
  ).toString();
  const url = `${API}${path}${query ? `?${query}` : ""}`;
  for (;;) {
    const key = sessionStorage.getItem(KEY);
    const response = await fetch(url, { headers: readHeaders() });
    if (response.status === 401 || response.status === 403) {
      await askForKey(Boolean(key));
      continue;
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(t("load_error", { detail: body.detail ?? response.status }));
    }
    return response.json();
  }
}

/** Every page of a cursor-paged endpoint (GET /prices/history). */
export async function getAllPages(path, params) {
  const items = [];
  let cursor = null;
  do {
    const page = await getJson(path, { ...params, cursor });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

function socketUrl(path, params) {
  const query = new URLSearchParams(
    Object.entries({ ...params, api_key: sessionStorage.getItem(KEY) }).filter(([, v]) => v),
  ).toString();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}${API}${path}${query ? `?${query}` : ""}`;
}

/**
 * Follow a WebSocket of the API: `onMessage(parsed)` for each frame. When the socket does not
 * open (or drops), `onFallback()` is called every `pollSeconds` until it is back; `onState` is
 * told "ws", "poll" or "off". `params()`: the query of each connection. Returns `reconnect()`,
 * which opens a new connection (with the params of then) at once.
 */
export function follow(
  path,
  { onMessage, onFallback, onState = () => {}, pollSeconds = 5, params = () => ({}) },
) {
  let timer = null;
  let retry = 1;
  let socket = null;
  let pending = null;
  const poll = () => {
    if (timer || !onFallback) return;
    onState("poll");
    timer = setInterval(onFallback, pollSeconds * 1000);
  };
  const connect = () => {
    pending = null;
    socket = new WebSocket(socketUrl(path, params()));
    socket.onopen = () => {
      retry = 1;
      clearInterval(timer);
      timer = null;
      onState("ws");
    };
    socket.onmessage = (event) => onMessage(JSON.parse(event.data));
    socket.onclose = () => {
      if (onFallback) {
        poll();
        onFallback();
      } else onState("off");
      retry = Math.min(retry * 2, 60);
      pending = setTimeout(connect, retry * 1000);
    };
  };
  connect();
  return () => {
    clearTimeout(pending);
    if (socket) socket.onclose = null;
    socket?.close();
    connect();
  };
}
