// News feed (alerts page): the newest headlines with the commodities they name and the way they
// say each price goes (GET /api/v1/news), refreshed every minute.
import { getJson } from "./api.js";
import { t } from "./i18n.js";
import { commodityName, escapeHtml, formatTime } from "./format.js";

const feed = document.getElementById("news-feed");
const ARROWS = { up: "▲", down: "▼", stable: "=" };
const REFRESH_MS = 60_000;
let items = [];

function mentionHtml(mention) {
  const way = mention.direction ?? "none";
  return `<span class="badge news-${escapeHtml(way)}">${ARROWS[way] ?? "·"} ${escapeHtml(
    commodityName(mention.commodity),
  )}</span>`;
}

function itemHtml(item) {
  const title = item.url
    ? `<a href="${escapeHtml(item.url)}" rel="noopener noreferrer" target="_blank">${escapeHtml(item.title)}</a>`
    : escapeHtml(item.title);
  return `${item.mentions.map(mentionHtml).join(" ")} <strong>${title}</strong>
    <small>${escapeHtml(item.source)} · ${escapeHtml(item.province ?? "Indonesia")} ·
    ${formatTime(item.published_at)}</small>`;
}

export function renderNews() {
  feed.innerHTML = items.length
    ? items.map((item) => `<li class="news">${itemHtml(item)}</li>`).join("")
    : `<li class="empty">${t("no_news")}</li>`;
}

async function refresh() {
  items = await getJson("/news", { limit: 30 });
  renderNews();
}

export async function setupNews() {
  // the feed is an extra: a failing read leaves it empty, never the page unready
  await refresh().catch(renderNews);
  setInterval(() => refresh().catch(() => {}), REFRESH_MS);
}
