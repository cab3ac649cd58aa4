// Alert subscriptions (docs/alerts.md#subscriptions): a user logs in (POST /auth/token; the token
// is kept for the tab's session), lists their subscriptions, adds and removes them.
import { API } from "./api.js";
import { t } from "./i18n.js";
import { escapeHtml } from "./format.js";

const TOKEN = "smartmarket.userToken";
const USER = "smartmarket.user";
const loginForm = document.getElementById("login-form");
const panel = document.getElementById("subs-panel");
const form = document.getElementById("subs-form");
const error = document.getElementById("subs-error");
const body = document.querySelector("#subs-table tbody");

/** A call of /api/v1 with the user's token; throws the API's own sentence on a refusal. */
async function call(method, path, payload) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN)}` };
  if (payload) headers["Content-Type"] = "application/json";
  const response = await fetch(`${API}${path}`, {
    method,
    headers,
    body: payload ? JSON.stringify(payload) : undefined,
  });
  if (response.status === 401) logout();
  if (!response.ok) {
    const answer = await response.json().catch(() => ({}));
    throw new Error(answer.detail ?? String(response.status));
  }
  return response.status === 204 ? null : response.json();
}

function showError(message) {
  error.textContent = message ?? "";
  error.hidden = !message;
}

const list = (id) =>
  document
    .getElementById(id)
    .value.split(",")
    .map((s) => s.trim())
    .filter(Boolean);

async function load() {
  const rows = await call("GET", "/subscriptions");
  body.innerHTML = rows
    .map((s) => {
      const filters = [...s.provinces, ...s.regencies, ...s.commodities, ...s.rules].join(", ");
      return `<tr data-id="${escapeHtml(s.subscription_id)}">
        <td>${escapeHtml(s.channel)}</td><td>${escapeHtml(s.recipient)}</td>
        <td>${escapeHtml(filters || t("everything"))}</td><td>${escapeHtml(s.min_severity)}</td>
        <td>${s.digest ? "✓" : ""}</td>
        <td><button type="button" class="remove">${escapeHtml(t("remove"))}</button></td></tr>`;
    })
    .join("");
}

function logout() {
  sessionStorage.removeItem(TOKEN);
  sessionStorage.removeItem(USER);
  renderSubscriptions();
}

/** Login form or the user's subscriptions, as the session stands. */
export function renderSubscriptions() {
  const user = sessionStorage.getItem(USER);
  loginForm.hidden = Boolean(user);
  panel.hidden = !user;
  if (user) document.getElementById("subs-who").textContent = t("logged_in_as", { user });
}

export async function setupSubscriptions() {
  loginForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const username = document.getElementById("login-user").value.trim();
    const password = document.getElementById("login-password").value;
    const response = await fetch(`${API}/auth/token`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, password }),
    });
    if (!response.ok) {
      showError(t("login_failed"));
      return;
    }
    sessionStorage.setItem(TOKEN, (await response.json()).access_token);
    sessionStorage.setItem(USER, username);
    showError(null);
    renderSubscriptions();
    await load().catch((e) => showError(e.message));
  });
  document.getElementById("logout").addEventListener("click", logout);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await call("POST", "/subscriptions", {
        channel: document.getElementById("subs-channel").value,
        recipient: document.getElementById("subs-recipient").value.trim(),
        provinces: list("subs-provinces"),
        regencies: list("subs-regencies"),
        commodities: list("subs-commodities"),
        rules: list("subs-rules"),
        min_severity: document.getElementById("subs-severity").value,
        digest: document.getElementById("subs-digest").checked,
      });
      showError(null);
      await load();
    } catch (e) {
      showError(e.message);
    }
  });
  body.addEventListener("click", async (event) => {
    const row = event.target.closest("button.remove")?.closest("tr");
    if (!row) return;
    try {
      await call("DELETE", `/subscriptions/${encodeURIComponent(row.dataset.id)}`);
      await load();
    } catch (e) {
      showError(e.message);
    }
  });
  renderSubscriptions();
  if (sessionStorage.getItem(USER)) await load().catch((e) => showError(e.message));
}
