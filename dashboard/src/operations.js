// Operations: the pipeline's and the stack's numbers over a window (#ops/<minutes>, one hour
// by default: ingest rate, Kafka lag, batch duration, freshness, quarantine by reason, holds
// open, restarts) as sparklines, and the alerts Prometheus has firing — from GET /ops/overview
// (operators when reads are closed). The page asks again as often as a new point comes.
import { getJson } from "./api.js";
import { t } from "./i18n.js";
import { escapeHtml } from "./format.js";

const REFRESH_SECONDS = [5, 60]; // the fewest and most seconds between two asks
const WIDTH = 160;
const HEIGHT = 32;
let overview = null;
let timer = null;

function formatValue(value, unit) {
  if (value == null) return "–";
  const digits = Math.abs(value) >= 100 || Number.isInteger(value) ? 0 : 2;
  return `${value.toFixed(digits)} ${unit}`;
}

/** An SVG polyline of `points` ([time, value] pairs), scaled to the box. */
export function sparkline(points) {
  if (points.length < 2) return `<svg class="spark" width="${WIDTH}" height="${HEIGHT}"></svg>`;
  const times = points.map((p) => p[0]);
  const values = points.map((p) => p[1]);
  const [t0, t1] = [Math.min(...times), Math.max(...times)];
  const [v0, v1] = [Math.min(0, ...values), Math.max(...values)];
  const x = (time) => ((time - t0) / (t1 - t0 || 1)) * WIDTH;
  const y = (value) => HEIGHT - 2 - ((value - v0) / (v1 - v0 || 1)) * (HEIGHT - 4);
  const line = points.map(([time, value]) => `${x(time).toFixed(1)},${y(value).toFixed(1)}`).join(" ");
  return `<svg class="spark" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}"
    role="img"><polyline points="${line}" /></svg>`;
}

function panelHtml(panel) {
  const rows = panel.series.length
    ? panel.series
        .map((s) => {
          const last = s.points.length ? s.points[s.points.length - 1][1] : null;
          return `<tr><td>${escapeHtml(s.label || panel.title)}</td><td>${sparkline(s.points)}</td>
            <td class="num">${escapeHtml(formatValue(last, panel.unit))}</td></tr>`;
        })
        .join("")
    : `<tr><td colspan="3">${t("ops_no_data")}</td></tr>`;
  return `<div class="ops-panel" data-panel="${escapeHtml(panel.id)}">
    <h3>${escapeHtml(t(`ops_${panel.id}`))}</h3><table class="grid"><tbody>${rows}</tbody></table></div>`;
}

function alertsHtml(alerts) {
  if (!alerts.length) return `<p>${t("ops_no_alerts")}</p>`;
  return `<ul class="feed">${alerts
    .map(
      (a) => `<li class="${escapeHtml(a.severity)}"><strong>${escapeHtml(a.name)}</strong>
        (${escapeHtml(a.state)}) ${escapeHtml(a.summary)}</li>`,
    )
    .join("")}</ul>`;
}

export function renderOperations() {
  if (!overview) return;
  document.getElementById("ops-panels").innerHTML = overview.panels.map(panelHtml).join("");
  document.getElementById("ops-alerts").innerHTML = alertsHtml(overview.alerts);
}

async function load() {
  clearTimeout(timer);
  const box = document.getElementById("ops-error");
  const minutes = Number(document.getElementById("ops-window").value);
  let step = REFRESH_SECONDS[1];
  try {
    overview = await getJson("/ops/overview", { minutes });
    step = overview.step_seconds;
    box.hidden = true;
    renderOperations();
  } catch (error) {
    box.textContent = String(error.message ?? error);
    box.hidden = false;
  }
  const [fewest, most] = REFRESH_SECONDS;
  timer = setTimeout(load, Math.min(most, Math.max(fewest, step)) * 1000);
}

/** The page over the window of `minutes` (one of the choices; else the one chosen before). */
export async function showOperations(minutes) {
  const select = document.getElementById("ops-window");
  if ([...select.options].some((o) => o.value === minutes)) select.value = minutes;
  await load();
}

export function setupOperations() {
  document.getElementById("ops-window").addEventListener("change", (event) => {
    location.hash = `#ops/${event.target.value}`;
  });
}
