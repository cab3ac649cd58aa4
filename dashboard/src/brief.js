// The weekly brief of the board's province (docs/briefs.md): the last whole week as a PDF or a
// spreadsheet, in the page's language, downloaded with the session's key (reads may need one).
import { API, readHeaders } from "./api.js";
import { language, t } from "./i18n.js";

const province = document.getElementById("board-province");
const buttons = [...document.querySelectorAll(".brief-buttons button")];
const error = document.getElementById("brief-error");

function enable() {
  for (const button of buttons) {
    button.disabled = !province.value;
    button.title = province.value ? "" : t("brief_pick");
  }
}

async function download(format) {
  const query = new URLSearchParams({ province: province.value, format, lang: language() });
  const response = await fetch(`${API}/reports/brief?${query}`, { headers: readHeaders() });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    error.textContent = t("load_error", { detail: body.detail ?? response.status });
    error.hidden = false;
    return;
  }
  error.hidden = true;
  const named = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") ?? "");
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = named ? named[1] : `brief.${format}`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
}

export function setupBrief() {
  province.addEventListener("change", enable);
  for (const button of buttons) {
    button.addEventListener("click", () => download(button.dataset.format));
  }
  enable();
}
