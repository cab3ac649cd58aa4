// Data quality: received / accepted / quarantined per day and per source (with reasons), and
// the quarantined records themselves, a page at a time.
import { BarController, BarElement, Chart } from "chart.js";
import { getJson } from "./api.js";
import { t } from "./i18n.js";
import { escapeHtml, formatDate, formatTime } from "./format.js";
import { fillSelect } from "./state.js";

Chart.register(BarController, BarElement);

const PAGE = 20;
const sourceSelect = document.getElementById("q-source");
const reasonSelect = document.getElementById("q-reason");
let rows = [];
let offset = 0;
let chart = null;

function sum(items, key) {
  return items.reduce((total, item) => total + item[key], 0);
}

function drawSummary() {
  const bySource = new Map();
  for (const row of rows) bySource.set(row.source, [...(bySource.get(row.source) ?? []), row]);
  const reasons = new Set();
  document.querySelector("#quality-sources tbody").innerHTML = [...bySource]
    .sort()
    .map(([source, items]) => {
      const byReason = {};
      for (const item of items) {
        for (const [reason, n] of Object.entries(item.quarantined_by_reason)) {
          byReason[reason] = (byReason[reason] ?? 0) + n;
          reasons.add(reason);
        }
      }
      const text = Object.entries(byReason)
        .sort((a, b) => b[1] - a[1])
        .map(([reason, n]) => `${reason} ${n}`)
        .join(", ");
      return `<tr><td>${escapeHtml(source)}</td><td class="num">${sum(items, "received")}</td>
        <td class="num">${sum(items, "accepted")}</td><td class="num">${sum(items, "quarantined")}</td>
        <td>${escapeHtml(text || t("none"))}</td></tr>`;
    })
    .join("");
  fillSelect(sourceSelect, [...bySource.keys()].sort().map((s) => [s, s]), t("all"));
  fillSelect(reasonSelect, [...reasons].sort().map((r) => [r, r]), t("all"));

  const byDay = new Map();
  for (const row of rows) byDay.set(row.date, [...(byDay.get(row.date) ?? []), row]);
  const days = [...byDay.keys()].sort();
  const series = (key, colour, label) => ({
    label,
    data: days.map((d) => sum(byDay.get(d), key)),
    backgroundColor: colour,
    stack: "records",
  });
  if (chart) chart.destroy();
  chart = new Chart(document.getElementById("quality-chart"), {
    type: "bar",
    data: {
      labels: days.map(formatDate),
      datasets: [
        series("accepted", "#43a047", t("accepted")),
        series("quarantined", "#e53935", t("quarantined")),
      ],
    },
    options: { animation: false, maintainAspectRatio: false, scales: { x: { stacked: true }, y: { stacked: true } } },
  });
}

async function drawQuarantine() {
  const page = await getJson("/quarantine", {
    source: sourceSelect.value,
    reason: reasonSelect.value,
    limit: PAGE,
    offset,
  });
  document.querySelector("#quarantine tbody").innerHTML = page.items
    .map(
      (r) => `<tr><td class="time">${formatTime(r.quarantined_at)}</td>
        <td>${escapeHtml(r.source ?? "")}</td><td>${escapeHtml(r.market_id ?? "")}</td>
        <td>${escapeHtml(r.subject ?? "")}</td>
        <td>${escapeHtml([...r.reasons, r.error].filter(Boolean).join(", "))}</td>
        <td><details><summary>${escapeHtml((r.raw ?? "").slice(0, 40))}…</summary>
        <pre>${escapeHtml(r.raw ?? "")}</pre><pre>${escapeHtml(JSON.stringify(r.details))}</pre></details></td></tr>`,
    )
    .join("");
  document.getElementById("q-page").textContent = page.total
    ? t("page_of", { from: offset + 1, to: offset + page.items.length, total: page.total })
    : t("none");
  document.getElementById("q-prev").disabled = offset === 0;
  document.getElementById("q-next").disabled = offset + PAGE >= page.total;
}

export function renderQuality() {
  drawSummary();
  return drawQuarantine();
}

export async function setupQuality() {
  rows = await getJson("/quality");
  const restart = () => {
    offset = 0;
    drawQuarantine();
  };
  sourceSelect.addEventListener("change", restart);
  reasonSelect.addEventListener("change", restart);
  document.getElementById("q-prev").onclick = () => {
    offset = Math.max(0, offset - PAGE);
    drawQuarantine();
  };
  document.getElementById("q-next").onclick = () => {
    offset += PAGE;
    drawQuarantine();
  };
  await renderQuality();
}
