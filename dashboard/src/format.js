// Rupiah, percentages, local market time (WIB) and names of catalogue ids.
import { language } from "./i18n.js";

let zone = "Asia/Jakarta";
const ZONE_NAMES = { "Asia/Jakarta": "WIB", "Asia/Makassar": "WITA", "Asia/Jayapura": "WIT" };

export function setTimeZone(name) {
  zone = name;
}

const rupiah = new Intl.NumberFormat("id-ID", { maximumFractionDigits: 0 });

/** `Rp 42.054` (Indonesian grouping in both languages: it is how prices are written). */
export function formatRupiah(value) {
  return value == null ? "–" : `Rp ${rupiah.format(Math.round(value))}`;
}

/** A percentage (`value` in %), e.g. `+3,5 %`; `{ signed: false }` for an error or a share. */
export function formatPercent(value, { signed = true } = {}) {
  if (value == null) return "–";
  const number = new Intl.NumberFormat(language() === "id" ? "id-ID" : "en-GB", {
    maximumFractionDigits: 1,
    minimumFractionDigits: 1,
    signDisplay: signed ? "exceptZero" : "auto",
  }).format(value);
  return `${number} %`;
}

/** A plain number with `digits` decimals, the language's way, e.g. `0,24` (id) / `0.24` (en). */
export function formatDecimal(value, digits = 2) {
  if (value == null) return "–";
  return new Intl.NumberFormat(language() === "id" ? "id-ID" : "en-GB", {
    maximumFractionDigits: digits,
    minimumFractionDigits: digits,
  }).format(value);
}

/** A timestamp in the markets' time zone, e.g. `21 Mar 2025 10.00 WIB`. */
export function formatTime(iso) {
  if (!iso) return "–";
  const text = new Intl.DateTimeFormat(language() === "id" ? "id-ID" : "en-GB", {
    timeZone: zone,
    day: "numeric",
    month: "short",
    year: "numeric",
    hour: "2-digit",
    minute: "2-digit",
  }).format(new Date(iso));
  return `${text} ${ZONE_NAMES[zone] ?? zone}`;
}

/** A local date (YYYY-MM-DD) written the reader's way. */
export function formatDate(day) {
  const [y, m, d] = day.split("-").map(Number);
  return new Intl.DateTimeFormat(language() === "id" ? "id-ID" : "en-GB", {
    day: "numeric",
    month: "short",
    year: "numeric",
    timeZone: "UTC",
  }).format(new Date(Date.UTC(y, m - 1, d)));
}

let commodityNames = {}; // catalogue id → [Indonesian, English] (GET /dashboard/config.json)

export function setCommodityNames(names) {
  commodityNames = names ?? {};
}

/** The catalogue's name of a commodity in the page's language (`cabai_merah` → `Cabai Merah
 * Besar` / `Big red chili`); an id the catalogue does not know: `bawang_merah` → `Bawang Merah`. */
export function commodityName(id) {
  const names = commodityNames[id];
  if (names) return names[language() === "id" ? 0 : 1];
  return id ? id.replace(/_/g, " ").replace(/\b\w/g, (c) => c.toUpperCase()) : "–";
}

/** Colour class of a relative change: rising prices are bad news for buyers. */
export function changeClass(pct) {
  if (pct == null) return "flat";
  if (pct >= 5) return "up2";
  if (pct >= 1) return "up1";
  if (pct <= -5) return "down2";
  if (pct <= -1) return "down1";
  return "flat";
}

export function escapeHtml(text) {
  return String(text ?? "").replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c],
  );
}
