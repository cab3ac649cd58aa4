// Supply: days of stock cover per province on a map of the province outlines, the shipments in
// transit with their delay, and the route analyzer (GET /supply/route/analyze) as a small form.
import L from "leaflet";
import { getJson } from "./api.js";
import { t } from "./i18n.js";
import { commodityName, escapeHtml, formatTime } from "./format.js";
import { fillSelect } from "./state.js";

const commoditySelect = document.getElementById("supply-commodity");
const form = document.getElementById("route-form");
const answer = document.getElementById("route-answer");
let map = null;
let outlines = null;
let layer = null;
let rows = [];

/** Colour of a province by its days of cover (the stock_cover_low levels: 1 and 3 days). */
function coverColour(days) {
  if (days == null) return "#9e9e9e";
  if (days < 1) return "#d73027";
  if (days < 3) return "#fdae61";
  return "#1a9850";
}

function number(value, digits = 1) {
  return value == null ? "–" : Number(value).toLocaleString(undefined, { maximumFractionDigits: digits });
}

function drawCover() {
  const commodity = commoditySelect.value;
  const chosen = rows.filter((r) => !commodity || r.commodity === commodity);
  const byProvince = new Map(chosen.map((r) => [r.province, r]));
  if (layer) layer.remove();
  layer = L.geoJSON(outlines, {
    style: (feature) => {
      const row = byProvince.get(feature.properties.name ?? feature.properties.province);
      return { color: "#555", weight: 1, fillOpacity: 0.6, fillColor: coverColour(row?.days_of_cover) };
    },
    onEachFeature: (feature, shape) => {
      const name = feature.properties.name ?? feature.properties.province;
      const row = byProvince.get(name);
      shape.bindTooltip(
        row
          ? `${escapeHtml(name)}: ${t("cover_days", { n: number(row.days_of_cover) })}`
          : escapeHtml(name),
      );
    },
  }).addTo(map);
  document.querySelector("#supply-cover tbody").innerHTML = chosen
    .map(
      (r) => `<tr><td>${escapeHtml(r.province)}</td><td>${escapeHtml(commodityName(r.commodity))}</td>
        <td class="num">${number(r.stock, 0)}</td><td class="num">${number(r.days_of_cover)}</td>
        <td class="num">${r.shipments_in_transit}</td><td class="num">${r.shipments_late}</td></tr>`,
    )
    .join("");
}

function drawShipments(shipments) {
  document.querySelector("#supply-shipments tbody").innerHTML = shipments
    .map(
      (s) => `<tr class="${s.late ? "late" : ""}"><td>${escapeHtml(s.shipment_id)}</td>
        <td>${escapeHtml(commodityName(s.commodity))}</td>
        <td>${escapeHtml(s.origin_id)} → ${escapeHtml(s.destination_id)}</td>
        <td>${formatTime(s.expected_at)}</td><td class="num">${number(s.delay_hours)}</td></tr>`,
    )
    .join("");
}

async function analyze(event) {
  event.preventDefault();
  const params = Object.fromEntries(new FormData(form).entries());
  try {
    const route = await getJson("/supply/route/analyze", params);
    const factors = route.factors
      .map(
        (f) => `<li>${escapeHtml(f.name)}: ${t("weight")} ${number(f.weight)} %, ${t("score")}
          ${number(f.score, 2)} — ${escapeHtml(f.detail)}</li>`,
      )
      .join("");
    answer.innerHTML = `<p>${number(route.distance_km, 0)} km${route.sea_crossing ? ` (${t("sea_leg")})` : ""},
      ${t("transit_hours", { n: number(route.transit_hours) })},
      ${t("expected_delay", { n: number(route.expected_delay_hours) })},
      ${t("delay_risk")} <strong data-testid="delay-risk">${number(route.delay_risk)}</strong>/100</p>
      <ul>${factors}</ul>`;
  } catch (error) {
    answer.innerHTML = `<p class="error">${escapeHtml(String(error.message ?? error))}</p>`;
  }
  answer.hidden = false;
}

export async function setupSupply(geojson) {
  const [stock, shipments] = await Promise.all([
    getJson("/supply/stock"),
    getJson("/supply/shipments", { state: "in_transit", limit: 50 }),
  ]);
  // the answers first: a set-up that fails is tried again whole, with nothing made twice
  outlines = geojson;
  rows = stock;
  map = L.map("supply-map", { zoomSnap: 0.5 }).setView([-2.5, 118], 4.5);
  const commodities = [...new Set(rows.map((r) => r.commodity))].sort();
  fillSelect(commoditySelect, commodities.map((c) => [c, commodityName(c)]), t("all"));
  commoditySelect.addEventListener("change", drawCover);
  form.addEventListener("submit", analyze);
  drawCover();
  drawShipments(shipments);
}

export function supplyShown() {
  map?.invalidateSize();
}
