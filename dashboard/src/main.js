// The dashboard: loads the registry and the newest prices once, keeps them live, and shows one
// page at a time (#board, #map, #series/<market>/<commodity>, #alerts, #quality, #ops/<minutes>,
// #supply, #subscriptions).
import "./style.css";
import { follow, getJson } from "./api.js";
import { language, setLanguage, t } from "./i18n.js";
import { escapeHtml, setCommodityNames, setTimeZone } from "./format.js";
import { state } from "./state.js";
import { renderBoard, setupBoard, updateRow } from "./board.js";
import { setupBrief } from "./brief.js";
import { mapShown, renderMap, setupMap } from "./map.js";
import { drawSeries, setupSeries, showSeries } from "./series.js";
import { renderAlerts, setupAlerts } from "./alerts.js";
import { renderQuality, setupQuality } from "./quality.js";
import { renderOperations, setupOperations, showOperations } from "./operations.js";
import { setupSupply, supplyShown } from "./supply.js";
import { renderNews, setupNews } from "./news.js";
import { renderSubscriptions, setupSubscriptions } from "./subscriptions.js";

const PAGES = ["board", "map", "series", "alerts", "quality", "supply", "ops", "subscriptions"];
const started = new Map(); // page → promise of its set-up
const status = document.getElementById("live-status");
let liveMode = "off";

function showStatus(mode) {
  liveMode = mode;
  status.className = `status ${mode}`;
  status.textContent =
    mode === "ws" ? t("live_ws") : mode === "poll" ? t("live_poll", { s: state.config.poll_seconds }) : t("live_off");
}

async function refreshLive() {
  for (const row of await getJson("/prices/live")) updateRow(row);
  renderMap();
}

function startLive() {
  const pollSeconds = state.config.poll_seconds;
  if (state.config.live_prices_socket) {
    follow("/prices/ws", {
      onMessage: (message) => {
        updateRow(message.price && typeof message.price === "object" ? message.price : message);
        renderMap();
      },
      onFallback: refreshLive,
      onState: showStatus,
      pollSeconds,
    });
  } else {
    setInterval(refreshLive, pollSeconds * 1000);
    showStatus("poll");
  }
}

const setups = {
  map: async () => setupMap(await (await fetch("/dashboard/provinces.geojson")).json()),
  series: async () => setupSeries(),
  quality: setupQuality,
  ops: setupOperations,
  supply: async () => setupSupply(await (await fetch("/dashboard/provinces.geojson")).json()),
  subscriptions: setupSubscriptions,
};

async function route() {
  const [page, ...args] = (location.hash.slice(1) || "board").split("/").map(decodeURIComponent);
  const name = PAGES.includes(page) ? page : "board";
  for (const p of PAGES) document.getElementById(`page-${p}`).hidden = p !== name;
  for (const a of document.querySelectorAll("#tabs a")) {
    a.classList.toggle("active", a.dataset.page === name);
  }
  if (setups[name] && !started.has(name)) started.set(name, setups[name]());
  const shown = document.getElementById(`page-${name}`);
  shown.querySelector(":scope > p[data-setup-error]")?.remove(); // not the page's own error lines
  try {
    await started.get(name);
  } catch (error) {
    started.delete(name); // set up again when the page is next shown: the API may answer then
    const text = escapeHtml(String(error.message ?? error));
    shown.insertAdjacentHTML("afterbegin", `<p class="error" data-setup-error>${text}</p>`);
    throw error;
  }
  if (name === "map") mapShown();
  if (name === "supply") supplyShown();
  if (name === "series") await showSeries(args[0], args[1]);
  if (name === "ops") await showOperations(args[0]);
  document.body.dataset.page = name;
}

function rerender() {
  renderBoard();
  renderAlerts();
  renderNews();
  renderMap();
  drawSeries();
  if (started.has("quality")) renderQuality();
  if (started.has("ops")) renderOperations();
  if (started.has("subscriptions")) renderSubscriptions();
  showStatus(liveMode);
  document.getElementById("lang").textContent = language() === "id" ? "EN" : "ID";
}

async function main() {
  setLanguage(language());
  document.getElementById("lang").textContent = language() === "id" ? "EN" : "ID";
  state.config = await (await fetch("/dashboard/config.json")).json();
  setTimeZone(state.config.timezone);
  setCommodityNames(state.config.commodities);
  const [markets, live] = await Promise.all([getJson("/markets"), getJson("/prices/live")]);
  for (const market of markets) state.markets.set(market.market_id, market);
  for (const row of live) state.live.set(`${row.market_id}|${row.commodity}`, row);
  setupBoard();
  setupBrief();
  renderBoard();
  performance.mark("board-rendered"); // what `./run.sh bench dashboard` measures
  startLive();
  document.getElementById("lang").addEventListener("click", () => {
    setLanguage(language() === "id" ? "en" : "id");
    rerender();
  });
  window.addEventListener("hashchange", route);
  await route();
  await setupAlerts();
  await setupNews();
  document.body.dataset.ready = "true";
}

main().catch((error) => {
  document.querySelector("main").insertAdjacentHTML(
    "afterbegin",
    `<p class="error">${String(error.message ?? error).replace(/</g, "&lt;")}</p>`,
  );
  throw error;
});
