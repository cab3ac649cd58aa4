// Live board: the newest price per market × commodity, its change vs yesterday and vs the
// 7-day median, filterable, PAGE_ROWS rows a page; rows update in place as prices arrive.
import { t } from "./i18n.js";
import {
  changeClass,
  commodityName,
  escapeHtml,
  formatPercent,
  formatRupiah,
  formatTime,
} from "./format.js";
import { state, fillSelect } from "./state.js";

const body = () => document.querySelector("#board tbody");
const filters = {
  commodity: document.getElementById("board-commodity"),
  province: document.getElementById("board-province"),
  market: document.getElementById("board-market"),
};

/** Rows drawn at once: a national board (16 000 markets × 25 commodities) stays light. */
const PAGE_ROWS = 200;
const pager = {
  box: document.getElementById("board-pager"),
  label: document.getElementById("board-page"),
  prev: document.getElementById("board-prev"),
  next: document.getElementById("board-next"),
  page: 0,
};

function provinceOf(row) {
  return state.markets.get(row.market_id)?.province ?? row.region ?? "";
}

function visible(row) {
  return (
    (!filters.commodity.value || row.commodity === filters.commodity.value) &&
    (!filters.province.value || provinceOf(row) === filters.province.value) &&
    (!filters.market.value || row.market_id === filters.market.value)
  );
}

function rowHtml(row) {
  const market = state.markets.get(row.market_id);
  return `<td><a href="#series/${encodeURIComponent(row.market_id)}/${row.commodity}">${escapeHtml(
    market?.name ?? row.market_id,
  )}</a><small>${escapeHtml(provinceOf(row))}</small></td>
    <td>${escapeHtml(commodityName(row.commodity))}</td>
    <td class="num price" data-label="${t("price")}">${formatRupiah(row.price)}<small>/${escapeHtml(row.unit)}</small></td>
    <td class="num ${changeClass(row.change_previous_day_pct)}" data-label="${t("vs_yesterday")}">${formatPercent(
      row.change_previous_day_pct,
    )}</td>
    <td class="num ${changeClass(row.change_median_7d_pct)}" data-label="${t("vs_median")}">${formatPercent(
      row.change_median_7d_pct,
    )}</td>
    <td class="time" data-label="${t("observed")}">${formatTime(row.observed_at)}</td>`;
}

function rowKey(row) {
  return `${row.market_id}|${row.commodity}`;
}

/** Redraw the whole table (filters, language or a full reload changed). */
export function renderBoard() {
  const rows = [...state.live.values()]
    .filter(visible)
    .sort(
      (a, b) =>
        a.commodity.localeCompare(b.commodity) ||
        (state.markets.get(a.market_id)?.name ?? a.market_id).localeCompare(
          state.markets.get(b.market_id)?.name ?? b.market_id,
        ),
    );
  const pages = Math.max(1, Math.ceil(rows.length / PAGE_ROWS));
  pager.page = Math.min(pager.page, pages - 1);
  const first = pager.page * PAGE_ROWS;
  body().innerHTML = rows
    .slice(first, first + PAGE_ROWS)
    .map((row) => `<tr data-key="${escapeHtml(rowKey(row))}">${rowHtml(row)}</tr>`)
    .join("");
  document.getElementById("board-count").textContent = t("rows", { n: rows.length });
  pager.box.hidden = pages === 1;
  pager.label.textContent = `${first + 1}–${Math.min(first + PAGE_ROWS, rows.length)}`;
  pager.prev.disabled = pager.page === 0;
  pager.next.disabled = pager.page === pages - 1;
  showEmptyBoard(state.live.size === 0);
}

/** One price arrived: update its row (or add it) and let it flash. */
export function updateRow(row) {
  const previous = state.live.get(rowKey(row));
  if (previous && previous.event_id === row.event_id) return;
  state.live.set(rowKey(row), row);
  const tr = body().querySelector(`tr[data-key="${CSS.escape(rowKey(row))}"]`);
  if (!tr) {
    if (visible(row)) renderBoard();
    return;
  }
  tr.innerHTML = rowHtml(row);
  tr.classList.remove("flash");
  void tr.offsetWidth; // restart the animation
  tr.classList.add("flash");
}

export function setupBoard() {
  const commodities = [...new Set([...state.live.values()].map((r) => r.commodity))].sort();
  fillSelect(filters.commodity, commodities.map((c) => [c, commodityName(c)]), t("all"));
  const provinces = [...new Set([...state.markets.values()].map((m) => m.province))].sort();
  fillSelect(filters.province, provinces.map((p) => [p, p]), t("all"));
  const markets = [...state.markets.values()].sort((a, b) => a.name.localeCompare(b.name));
  fillSelect(filters.market, markets.map((m) => [m.market_id, m.name]), t("all"));
  for (const select of Object.values(filters)) {
    select.addEventListener("change", () => {
      pager.page = 0;
      renderBoard();
    });
  }
  pager.prev.addEventListener("click", () => {
    pager.page -= 1;
    renderBoard();
  });
  pager.next.addEventListener("click", () => {
    pager.page += 1;
    renderBoard();
  });
}

const WAYS_IN = [
  ["./run.sh ingest FILE.csv", "empty_ingest"],
  ["./run.sh watch DIR", "empty_watch"],
  ["./run.sh replay FILE.csv --speed max", "empty_replay"],
  ["POST /api/v1/prices", "empty_api"],
];

/** No price at all yet: say how to get prices in (the table is hidden until one arrives). */
function showEmptyBoard(empty) {
  const box = document.getElementById("board-empty");
  document.querySelector("#page-board .table-wrap").hidden = empty;
  box.hidden = !empty;
  if (!empty) return;
  const ways = WAYS_IN.map(
    ([command, key]) => `<li><code>${escapeHtml(command)}</code> — ${escapeHtml(t(key))}</li>`,
  ).join("");
  box.innerHTML = `<strong>${escapeHtml(t("empty_title"))}</strong>
    <p>${escapeHtml(t("empty_simulator"))}</p>
    <p>${escapeHtml(t("empty_own"))}</p><ul>${ways}</ul>
    <p><small>${escapeHtml(t("empty_docs"))}</small></p>`;
}
