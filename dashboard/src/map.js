// Map: the offline province outlines (and tiles, when configured), each province filled by the
// chosen commodity's price there (its published average, else its markets' median, from
// GET /prices/regions) against the national median; one marker per market of the registry,
// coloured by its price against the provincial or national median; a click opens its panel.
import L from "leaflet";
import { getJson } from "./api.js";
import { t } from "./i18n.js";
import {
  changeClass,
  commodityName,
  escapeHtml,
  formatPercent,
  formatRupiah,
  formatTime,
} from "./format.js";
import { fillSelect, state } from "./state.js";

const COLOURS = { cheap: "#1a9850", near: "#fdae61", dear: "#d73027", none: "#9e9e9e" };
const UNPRICED = "#e8eef3"; // a province without a price of the commodity
const REGIONS_EVERY_MS = 5000; // the province fills follow live prices at most this often
const commoditySelect = document.getElementById("map-commodity");
const referenceSelect = document.getElementById("map-reference");
const panel = document.getElementById("market-panel");
let map = null;
const markers = new Map();
let openMarket = null;
let outlines = null;
let regionsDue = null; // the pending refresh of the province fills

function median(values) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Each market's deviation (%) from the reference median of the chosen commodity. */
function deviations(commodity, reference) {
  const rows = [...state.live.values()].filter(
    (r) => r.commodity === commodity && state.markets.get(r.market_id)?.kind !== "aggregate",
  );
  const province = (r) => state.markets.get(r.market_id)?.province;
  const medians = new Map();
  const national = median(rows.map((r) => r.price));
  for (const r of rows) {
    const key = reference === "national" ? "" : province(r);
    if (!medians.has(key)) {
      const peers = reference === "national" ? rows : rows.filter((p) => province(p) === key);
      medians.set(key, reference === "national" ? national : median(peers.map((p) => p.price)));
    }
  }
  return new Map(
    rows.map((r) => {
      const m = medians.get(reference === "national" ? "" : province(r));
      return [r.market_id, { row: r, pct: m ? (100 * (r.price - m)) / m : null }];
    }),
  );
}

function colourOf(entry) {
  if (!entry || entry.pct == null) return COLOURS.none;
  if (entry.pct < -5) return COLOURS.cheap;
  if (entry.pct > 5) return COLOURS.dear;
  return COLOURS.near;
}

/** Fill each province by its price of the chosen commodity against the national median. */
async function fillProvinces() {
  regionsDue = null;
  const commodity = commoditySelect.value;
  if (!commodity) return;
  const found = await getJson("/prices/regions", { commodity, level: "province" });
  if (commodity !== commoditySelect.value) return; // another commodity was chosen meanwhile
  const national = found.national_median;
  const byCode = new Map(found.items.map((r) => [r.code, r]));
  outlines.setStyle((feature) => {
    const region = byCode.get(feature.properties.province_code);
    const pct = region?.price != null && national ? (100 * (region.price - national)) / national : null;
    return { fillColor: pct == null ? UNPRICED : colourOf({ pct }) };
  });
  document.getElementById("map").dataset.provincesPriced = String(byCode.size);
}

function scheduleProvinces(now = false) {
  if (now) clearTimeout(regionsDue);
  else if (regionsDue) return;
  regionsDue = setTimeout(fillProvinces, now ? 0 : REGIONS_EVERY_MS);
}

export function renderMap() {
  if (!map) return;
  scheduleProvinces();
  const commodity = commoditySelect.value;
  const found = deviations(commodity, referenceSelect.value);
  const byProvince = deviations(commodity, "province");
  const national = deviations(commodity, "national");
  for (const [marketId, marker] of markers) {
    const entry = found.get(marketId);
    marker.setStyle({ fillColor: colourOf(entry) });
    if (entry) marker.bringToFront(); // priced markets above the grey ones they overlap
    const market = state.markets.get(marketId);
    const versus = (key, deviation) =>
      deviation?.pct == null ? "" : `<br>${formatPercent(deviation.pct)} ${t("vs_reference", { ref: t(key) })}`;
    marker.setTooltipContent(
      entry
        ? `<b>${escapeHtml(market.name)}</b><br>${formatRupiah(entry.row.price)}${versus(
            "province_median",
            byProvince.get(marketId),
          )}${versus("national_median", national.get(marketId))}`
        : `<b>${escapeHtml(market.name)}</b><br>${t("no_price")}`,
    );
  }
  if (openMarket) showPanel(openMarket);
}

function showPanel(marketId) {
  openMarket = marketId;
  const market = state.markets.get(marketId);
  const found = deviations(commoditySelect.value, referenceSelect.value).get(marketId);
  const rows = [...state.live.values()]
    .filter((r) => r.market_id === marketId)
    .sort((a, b) => a.commodity.localeCompare(b.commodity));
  const reference = t(referenceSelect.value === "national" ? "national_median" : "province_median");
  panel.innerHTML = `<button type="button" class="close" aria-label="${t("close")}">×</button>
    <h2>${escapeHtml(market.name)}</h2>
    <p>${escapeHtml(market.city)}, ${escapeHtml(market.province)} · ${escapeHtml(marketId)}</p>
    ${
      found?.pct != null
        ? `<p class="${changeClass(found.pct)}">${escapeHtml(
            commodityName(commoditySelect.value),
          )}: ${formatPercent(found.pct)} ${t("vs_reference", { ref: reference })}</p>`
        : ""
    }
    <table class="grid compact"><tbody>${rows
      .map(
        (r) => `<tr><td><a href="#series/${encodeURIComponent(marketId)}/${r.commodity}">${escapeHtml(
          commodityName(r.commodity),
        )}</a></td><td class="num">${formatRupiah(r.price)}</td>
        <td class="num ${changeClass(r.change_previous_day_pct)}">${formatPercent(
          r.change_previous_day_pct,
        )}</td></tr>`,
      )
      .join("")}</tbody></table>
    <p class="hint">${rows.length ? formatTime(rows[0].observed_at) : t("no_price")}</p>`;
  panel.hidden = false;
  panel.querySelector(".close").onclick = () => {
    panel.hidden = true;
    openMarket = null;
  };
}

export async function setupMap(provinces) {
  const commodities = [...new Set([...state.live.values()].map((r) => r.commodity))].sort();
  fillSelect(commoditySelect, commodities.map((c) => [c, commodityName(c)]));
  map = L.map("map", { zoomSnap: 0.5 }).setView([-2.5, 118], 5);
  const { tile_url: tileUrl, tile_attribution: attribution } = state.config;
  if (tileUrl) L.tileLayer(tileUrl, { attribution, maxZoom: 18 }).addTo(map);
  outlines = L.geoJSON(provinces, {
    style: { color: "#5b6b7a", weight: 1, fillColor: UNPRICED, fillOpacity: tileUrl ? 0.45 : 1 },
    interactive: false,
  }).addTo(map);
  map.attributionControl.addAttribution("Provinces: cahyadsn/wilayah_boundaries (MIT)");
  const placed = [];
  for (const market of state.markets.values()) {
    if (market.lat == null || market.lon == null) continue;
    const marker = L.circleMarker([market.lat, market.lon], {
      radius: 7,
      color: "#263238",
      weight: 1,
      fillOpacity: 0.9,
      className: "market-marker",
    })
      .bindTooltip(market.name)
      .on("click", () => showPanel(market.market_id))
      .addTo(map);
    marker.getElement?.()?.setAttribute("data-market", market.market_id);
    markers.set(market.market_id, marker);
    placed.push([market.lat, market.lon]);
  }
  if (placed.length) map.fitBounds(placed, { padding: [20, 20], maxZoom: 11, animate: false });
  commoditySelect.addEventListener("change", () => {
    renderMap();
    scheduleProvinces(true);
  });
  referenceSelect.addEventListener("change", renderMap);
  renderMap();
  scheduleProvinces(true);
}

/** Leaflet measures its box when shown: call when the map page becomes visible. */
export function mapShown() {
  map?.invalidateSize({ animate: false });
}
