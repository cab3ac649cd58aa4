// Indonesian and English words of the page; the choice is kept in localStorage.

const WORDS = {
  id: {
    title: "Harga Pasar Rakyat",
    tab_board: "Harga terkini", tab_map: "Peta", tab_series: "Grafik",
    tab_alerts: "Peringatan", tab_quality: "Kualitas data",
    commodity: "Komoditas", province: "Provinsi", market: "Pasar", all: "Semua",
    price: "Harga", vs_yesterday: "vs kemarin", vs_median: "vs median 7 hari", observed: "Waktu",
    rows: "{n} harga", live_ws: "langsung", live_poll: "diperbarui tiap {s} dtk",
    live_off: "terputus",
    compare_with: "Dibandingkan dengan", province_median: "median provinsi",
    national_median: "median nasional",
    cheaper: "lebih murah (< −5 %)", near: "sekitar median (±5 %)", dearer: "lebih mahal (> +5 %)",
    no_price: "tanpa harga", open_chart: "Lihat grafik", close: "Tutup",
    vs_reference: "vs {ref}",
    history: "Harga (penutupan harian)", forecast: "Prakiraan 7 hari",
    band80: "Interval 80 %", band95: "Interval 95 %", anomaly: "Anomali", alert: "Peringatan",
    no_history: "Belum ada riwayat harga untuk seri ini.",
    no_forecast: "Belum ada prakiraan (jalankan ./run.sh retrain).",
    forecast_from: "Prakiraan {model} dari {date}.",
    impact_title: "Penjelasan dampak ({month}): faktor dominan {factor}, skor {score}",
    no_alerts: "Belum ada peringatan.",
    status_open: "aktif", status_resolved: "selesai",
    severity_critical: "kritis", severity_warning: "waspada", severity_info: "info",
    source: "Sumber", received: "Diterima", accepted: "Lolos", quarantined: "Dikarantina",
    reasons: "Alasan", reason: "Alasan", quarantined_rows: "Baris yang dikarantina",
    when: "Kapan", subject: "Komoditas/metrik", raw: "Data mentah",
    page_of: "{from}–{to} dari {total}", none: "tidak ada",
    key_needed: "Baca data memerlukan kunci API. Kunci disimpan selama sesi ini.",
    key_wrong: "Kunci tidak diterima.", key_use: "Gunakan",
    load_error: "Gagal memuat: {detail}",
  },
  en: {
    title: "Traditional Market Prices",
    tab_board: "Live prices", tab_map: "Map", tab_series: "Chart",
    tab_alerts: "Alerts", tab_quality: "Data quality",
    commodity: "Commodity", province: "Province", market: "Market", all: "All",
    price: "Price", vs_yesterday: "vs yesterday", vs_median: "vs 7-day median", observed: "Time",
    rows: "{n} prices", live_ws: "live", live_poll: "refreshed every {s} s",
    live_off: "disconnected",
    compare_with: "Compared with", province_median: "provincial median",
    national_median: "national median",
    cheaper: "cheaper (< −5 %)", near: "near the median (±5 %)", dearer: "dearer (> +5 %)",
    no_price: "no price", open_chart: "Open chart", close: "Close",
    vs_reference: "vs {ref}",
    history: "Price (daily close)", forecast: "7-day forecast",
    band80: "80 % interval", band95: "95 % interval", anomaly: "Anomaly", alert: "Alert",
    no_history: "No price history for this series yet.",
    no_forecast: "No forecast yet (run ./run.sh retrain).",
    forecast_from: "{model} forecast from {date}.",
    impact_title: "Impact explanation ({month}): dominant factor {factor}, score {score}",
    no_alerts: "No alerts yet.",
    status_open: "open", status_resolved: "resolved",
    severity_critical: "critical", severity_warning: "warning", severity_info: "info",
    source: "Source", received: "Received", accepted: "Accepted", quarantined: "Quarantined",
    reasons: "Reasons", reason: "Reason", quarantined_rows: "Quarantined records",
    when: "When", subject: "Commodity/metric", raw: "Raw input",
    page_of: "{from}–{to} of {total}", none: "none",
    key_needed: "Reading data needs an API key. It is kept for this session.",
    key_wrong: "The key was not accepted.", key_use: "Use",
    load_error: "Could not load: {detail}",
  },
};

let lang = localStorage.getItem("smartmarket.lang") === "en" ? "en" : "id";

export function language() {
  return lang;
}

export function setLanguage(next) {
  lang = next;
  localStorage.setItem("smartmarket.lang", next);
  document.documentElement.lang = next;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
}

/** The word for `key` in the chosen language, with {name} placeholders filled from `values`. */
export function t(key, values = {}) {
  const text = WORDS[lang][key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}
