// Alerts feed: the newest alerts, then each new or changed one from the alerts WebSocket — the
// messages in the page's language (the API renders them: ?lang=id|en); a switch reloads them.
import { follow, getJson } from "./api.js";
import { language, t } from "./i18n.js";
import { commodityName, escapeHtml, formatTime } from "./format.js";
import { state } from "./state.js";

const feed = document.getElementById("alert-feed");
const alerts = new Map(); // alert_id → alert
let shown = null; // the language of the messages held
let reconnect = null; // the WebSocket's, for a new language

async function loadAlerts() {
  shown = language();
  const list = await getJson("/alerts", { limit: 200, lang: shown });
  alerts.clear();
  for (const alert of list) alerts.set(alert.alert_id, alert);
  renderAlerts();
}

function itemHtml(alert) {
  const known = state.markets.get(alert.market_id);
  const market = known?.name ?? alert.market_id ?? alert.region ?? "";
  const province = known?.province ?? (alert.market_id ? alert.region : "") ?? "";
  const severity = alert.severity ?? "info";
  return `<span class="badge ${escapeHtml(severity)}">${escapeHtml(t(`severity_${severity}`))}</span>
    <span class="badge status">${escapeHtml(t(`status_${alert.status}`))}</span>
    <strong>${escapeHtml(alert.message ?? alert.rule)}</strong>
    <small>${escapeHtml(market)}${province ? ` (${escapeHtml(province)})` : ""} ·
    ${escapeHtml(commodityName(alert.commodity))} ·
    ${formatTime(alert.updated_at ?? alert.opened_at)}</small>`;
}

export function renderAlerts() {
  if (shown !== null && shown !== language()) {
    loadAlerts();
    reconnect?.();
  }
  const items = [...alerts.values()].sort((a, b) =>
    String(b.updated_at ?? "").localeCompare(String(a.updated_at ?? "")),
  );
  feed.innerHTML = items.length
    ? items
        .map(
          (a) =>
            `<li class="alert ${escapeHtml(a.severity ?? "")}" data-alert="${escapeHtml(
              a.alert_id,
            )}">${itemHtml(a)}</li>`,
        )
        .join("")
    : `<li class="empty">${t("no_alerts")}</li>`;
}

export async function setupAlerts() {
  await loadAlerts();
  reconnect = follow("/alerts/ws", {
    params: () => ({ lang: language() }),
    onMessage: (message) => {
      if (message.type !== "alert") return;
      alerts.set(message.alert.alert_id, message.alert);
      renderAlerts();
      feed.querySelector(`[data-alert="${CSS.escape(message.alert.alert_id)}"]`)?.classList.add("flash");
    },
  });
}
