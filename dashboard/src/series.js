// Series chart: daily closes, the newest 7-day forecast with its 80 % and 95 % bands, anomalies
// and alerts marked on the line; the impact explanation of the newest critical alert.
import {
  CategoryScale,
  Chart,
  Filler,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  ScatterController,
  Tooltip,
} from "chart.js";
import { getAllPages, getJson } from "./api.js";
import { language, t } from "./i18n.js";
import { commodityName, escapeHtml, formatDate, formatDecimal, formatPercent, formatRupiah } from "./format.js";
import { fillSelect, state } from "./state.js";

Chart.register(
  CategoryScale,
  LinearScale,
  LineController,
  ScatterController,
  LineElement,
  PointElement,
  Filler,
  Legend,
  Tooltip,
);

const marketSelect = document.getElementById("series-market");
const commoditySelect = document.getElementById("series-commodity");
const rangeSelect = document.getElementById("series-range");
const note = document.getElementById("series-note");
const impactBox = document.getElementById("impact");
let chart = null;
let loaded = null; // the last answer, redrawn on a language switch
let asked = 0; // the newest load's number: an older answer that arrives after it is dropped

function alertMessage(alert) {
  return alert.message ?? alert.rule ?? "";
}

function commoditiesOf(marketId) {
  const market = state.markets.get(marketId);
  return market?.commodities?.length ? market.commodities : [];
}

function fillCommodities() {
  fillSelect(
    commoditySelect,
    commoditiesOf(marketSelect.value).map((c) => [c, commodityName(c)]),
  );
}

/** Select a series (from a link) and draw it. */
export async function showSeries(marketId, commodity) {
  if (marketId && state.markets.has(marketId)) marketSelect.value = marketId;
  fillCommodities();
  if (commodity && commoditiesOf(marketSelect.value).includes(commodity)) {
    commoditySelect.value = commodity;
  }
  await loadSeries();
}

async function loadSeries() {
  const market_id = marketSelect.value;
  const commodity = commoditySelect.value;
  if (!market_id || !commodity) return;
  const ask = ++asked;
  const [history, forecasts, anomalies, alerts] = await Promise.all([
    getAllPages("/prices/history", { market_id, commodity, granularity: "day", limit: 1000 }),
    getJson("/forecasts", { market_id, commodity }),
    getJson("/anomalies", { commodity, limit: 1000 }),
    getJson("/alerts", { commodity, limit: 1000, lang: language() }),
  ]);
  if (ask !== asked) return; // another series (or language) was asked for meanwhile
  loaded = {
    language: language(), // of the alerts' messages
    history,
    forecast: forecasts.find((f) => f.market_id === market_id) ?? forecasts[0] ?? null,
    anomalies: anomalies.filter((a) => a.market_id === market_id),
    alerts: alerts.filter((a) => a.market_id === market_id),
  };
  drawSeries();
}

/** The first day shown: `#series-range` days before the last close (0: everything). */
function shownFrom(lastDay) {
  const days = Number(rangeSelect.value);
  if (!days || !lastDay) return "";
  const day = new Date(`${lastDay}T00:00:00Z`);
  day.setUTCDate(day.getUTCDate() - days);
  return day.toISOString().slice(0, 10);
}

function dayOf(iso) {
  return new Intl.DateTimeFormat("en-CA", { timeZone: state.config.timezone }).format(new Date(iso));
}

/** Draw `loaded` (again): labels and messages follow the language. */
export function drawSeries() {
  if (!loaded) return;
  if (loaded.language !== language()) {
    loadSeries(); // the alerts' messages in the new language; draws again
    return;
  }
  const { history, forecast, anomalies, alerts } = loaded;
  const points = forecast?.points ?? [];
  const lastDay = history.length ? history[history.length - 1].period : null;
  const from = shownFrom(lastDay);
  const days = [...new Set([...history.map((h) => h.period), ...points.map((p) => p.target_date)])]
    .filter((d) => d >= from)
    .sort();
  const at = new Map(days.map((d, i) => [d, i]));
  const close = new Map(history.map((h) => [h.period, h.close]));
  const fc = new Map(points.map((p) => [p.target_date, p]));
  // the forecast line starts at the last close, so that it joins the history
  const forecastValue = (d) => (fc.has(d) ? fc.get(d).yhat : d === lastDay && points.length ? close.get(d) : null);
  const band = (key) => days.map((d) => (fc.has(d) ? fc.get(d)[key] : d === lastDay && points.length ? close.get(d) : null));
  const marks = (items, dateOf, valueOf) =>
    items
      .filter((i) => at.has(dateOf(i)))
      .map((i) => ({ x: dateOf(i), y: valueOf(i) ?? close.get(dateOf(i)), item: i }));
  const datasets = [
    { label: t("history"), data: days.map((d) => close.get(d) ?? null), borderColor: "#1565c0", pointRadius: 0, borderWidth: 2, spanGaps: true },
    { label: t("band95"), data: band("yhat_upper_95"), borderWidth: 0, pointRadius: 0, backgroundColor: "rgba(239,108,0,0.15)", fill: "+1" },
    { label: "95-", data: band("yhat_lower_95"), borderWidth: 0, pointRadius: 0 },
    { label: t("band80"), data: band("yhat_upper_80"), borderWidth: 0, pointRadius: 0, backgroundColor: "rgba(239,108,0,0.3)", fill: "+1" },
    { label: "80-", data: band("yhat_lower_80"), borderWidth: 0, pointRadius: 0 },
    { label: t("forecast"), data: days.map(forecastValue), borderColor: "#ef6c00", borderDash: [6, 4], pointRadius: 2, borderWidth: 2 },
    { type: "scatter", label: t("anomaly"), data: marks(anomalies, (a) => a.date, (a) => a.price), backgroundColor: "#8e24aa", pointRadius: 5 },
    { type: "scatter", label: t("alert"), data: marks(alerts, (a) => dayOf(a.opened_at), () => null), backgroundColor: "#c62828", pointStyle: "triangle", pointRadius: 8 },
  ];
  const options = {
    animation: false,
    maintainAspectRatio: false,
    interaction: { mode: "nearest", intersect: false },
    scales: {
      x: { type: "category", labels: days, ticks: { callback: (i) => formatDate(days[i]), maxTicksLimit: 8 } },
      y: { ticks: { callback: (v) => formatRupiah(v) } },
    },
    plugins: {
      legend: { labels: { filter: (item) => !item.text.endsWith("-") } },
      tooltip: {
        callbacks: {
          title: (items) => formatDate(items[0].raw?.x ?? days[items[0].dataIndex]),
          label: (item) => {
            const raw = item.raw;
            if (raw?.item?.alert_id) {
              const lines = [`${t("alert")}: ${alertMessage(raw.item)}`];
              const impact = raw.item.impact;
              if (impact) {
                if (!explained(impact)) lines.push(`  ${t("impact_unexplained_short", { r2: formatDecimal(impact.fit.r2) })}`);
                for (const [factor, weight] of Object.entries(impact.factors_with_weights)) {
                  lines.push(`  ${factor}: ${weight} %`);
                }
              }
              return lines;
            }
            if (raw?.item?.surge_prob != null) return surgeText(raw.item.surge_prob);
            if (raw?.item?.kind) return `${t("anomaly")}: ${raw.item.explanation ?? raw.item.kind}`;
            if (item.dataset.label.endsWith("-")) return null;
            return `${item.dataset.label}: ${formatRupiah(item.parsed.y)}`;
          },
        },
      },
    },
  };
  datasets.push(surgeMark(forecast, points));
  if (chart) chart.destroy();
  chart = new Chart(document.getElementById("series-chart"), { type: "line", data: { labels: days, datasets }, options });
  const notes = [history.length ? "" : t("no_history")];
  notes.push(forecast ? t("forecast_from", { model: forecast.model_name ?? "", date: formatDate(forecast.origin_date) }) : t("no_forecast"));
  if (forecast?.surge_prob != null) notes.push(`${surgeText(forecast.surge_prob)} (${t("surge_warns", { pct: Math.round(forecast.surge_warn_at * 100) })}).`);
  if (forecast?.surge_because) notes.push(t("surge_why", { because: forecast.surge_because }));
  if (forecast?.backtest_mape != null) notes.push(backtestText(forecast));
  note.textContent = notes.filter(Boolean).join(" ");
  // what is drawn, for the tests and for people reading the page source
  const drawn = (i) => datasets[i].data.filter((v) => v != null).length;
  Object.assign(chart.canvas.dataset, {
    history: drawn(0),
    forecast: points.length,
    band95: points.filter((p) => p.yhat_lower_95 != null && p.yhat_upper_95 != null).length,
    band80: points.filter((p) => p.yhat_lower_80 != null && p.yhat_upper_80 != null).length,
    anomalies: drawn(6),
    alerts: drawn(7),
    surge: forecast?.surge_prob ?? "",
    surgeWarned: surgeWarned(forecast),
    backtest: forecast?.backtest_mape ?? "",
  });
  drawImpact(alerts.find((a) => a.severity === "critical" && a.impact));
}

/** Whether the impact model's hold-out fit lets the answer name a dominant factor (the API's verdict). */
function explained(impact) {
  return impact.status === "explained";
}

/** The newest critical alert's impact explanation: its dominant factor, or — when the model's
 * hold-out fit is too weak — "mostly unexplained" with that R², the factor bars greyed. */
function drawImpact(alert) {
  impactBox.hidden = !alert;
  if (!alert) return;
  const impact = alert.impact;
  const bars = Object.entries(impact.factors_with_weights)
    .sort((a, b) => b[1] - a[1])
    .map(
      ([factor, weight]) =>
        `<div class="bar"><span>${escapeHtml(factor)}</span><i style="width:${weight}%"></i><b>${weight} %</b></div>`,
    )
    .join("");
  const words = { month: impact.month, score: Math.round(impact.impact_score) };
  const title = explained(impact)
    ? t("impact_title", { ...words, factor: impact.dominant_factor })
    : t("impact_unexplained", { ...words, r2: formatDecimal(impact.fit.r2) });
  impactBox.dataset.status = impact.status;
  impactBox.classList.toggle("unexplained", !explained(impact));
  impactBox.innerHTML = `<h3>${escapeHtml(title)}</h3><p>${escapeHtml(alertMessage(alert))}</p><p class="verdict">${escapeHtml(
    impact.message,
  )}</p>${bars}`;
}

export function setupSeries() {
  const markets = [...state.markets.values()]
    .filter((m) => m.commodities.length)
    .sort((a, b) => a.name.localeCompare(b.name));
  fillSelect(marketSelect, markets.map((m) => [m.market_id, m.name]));
  fillCommodities();
  marketSelect.addEventListener("change", () => {
    fillCommodities();
    loadSeries();
  });
  commoditySelect.addEventListener("change", loadSeries);
  rangeSelect.addEventListener("change", drawSeries);
}

/** How good the served forecast has been: its backtest against naive, its bands' coverage. */
function backtestText(forecast) {
  const plain = (value) => formatPercent(value, { signed: false });
  const share = (value) => (value == null ? "–" : plain(value * 100));
  return t("backtest", {
    mape: plain(forecast.backtest_mape),
    naive: plain(forecast.naive_mape),
    c80: share(forecast.coverage_80),
    c95: share(forecast.coverage_95),
  });
}

// ---- surge warning (gold.forecasts surge_prob) ----------------------------------------------
function surgeText(prob) {
  return t("surge", { pct: Math.round(prob * 100) });
}

/** Whether the series' surge probability reaches the threshold its surge_risk alert warns at
 * (the API's surge_warn_at: the series' own, else conf/alerts.yaml surge_risk.warning). */
function surgeWarned(forecast) {
  return forecast?.surge_prob != null && forecast.surge_prob >= forecast.surge_warn_at;
}

/** A diamond on the last forecast day: red when the series warns of a surge, grey below. */
function surgeMark(forecast, points) {
  const last = points[points.length - 1];
  const prob = forecast?.surge_prob;
  const data = prob != null && last ? [{ x: last.target_date, y: last.yhat_upper_80 ?? last.yhat, item: { surge_prob: prob } }] : [];
  const color = surgeWarned(forecast) ? "#c62828" : "#9e9e9e";
  return { type: "scatter", label: t("surge", { pct: prob != null ? Math.round(prob * 100) : "–" }), data, backgroundColor: color, pointStyle: "rectRot", pointRadius: 9 };
}
