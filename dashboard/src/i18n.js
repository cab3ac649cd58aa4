// Indonesian and English words of the page; the choice is kept in localStorage.

// key: [Indonesian, English]
const WORDS = {
  title: ["Harga Pasar Rakyat", "Traditional Market Prices"],
  tab_board: ["Harga terkini", "Live prices"],
  tab_map: ["Peta", "Map"],
  tab_series: ["Grafik", "Chart"],
  tab_alerts: ["Peringatan", "Alerts"],
  tab_quality: ["Kualitas data", "Data quality"],
  commodity: ["Komoditas", "Commodity"],
  province: ["Provinsi", "Province"],
  market: ["Pasar", "Market"],
  all: ["Semua", "All"],
  price: ["Harga", "Price"],
  vs_yesterday: ["vs kemarin", "vs yesterday"],
  vs_median: ["vs median 7 hari", "vs 7-day median"],
  observed: ["Waktu", "Time"],
  rows: ["{n} harga", "{n} prices"],
  live_ws: ["langsung", "live"],
  live_poll: ["diperbarui tiap {s} dtk", "refreshed every {s} s"],
  live_off: ["terputus", "disconnected"],
  compare_with: ["Dibandingkan dengan", "Compared with"],
  province_median: ["median provinsi", "provincial median"],
  national_median: ["median nasional", "national median"],
  cheaper: ["lebih murah (< −5 %)", "cheaper (< −5 %)"],
  near: ["sekitar median (±5 %)", "near the median (±5 %)"],
  dearer: ["lebih mahal (> +5 %)", "dearer (> +5 %)"],
  no_price: ["tanpa harga", "no price"],
  open_chart: ["Lihat grafik", "Open chart"],
  close: ["Tutup", "Close"],
  vs_reference: ["vs {ref}", "vs {ref}"],
  period: ["Periode", "Period"],
  days_90: ["90 hari", "90 days"],
  days_365: ["1 tahun", "1 year"],
  days_all: ["semua", "all"],
  history: ["Harga (penutupan harian)", "Price (daily close)"],
  forecast: ["Prakiraan 7 hari", "7-day forecast"],
  band80: ["Interval 80 %", "80 % interval"],
  band95: ["Interval 95 %", "95 % interval"],
  anomaly: ["Anomali", "Anomaly"],
  alert: ["Peringatan", "Alert"],
  no_history: ["Belum ada riwayat harga untuk seri ini.", "No price history for this series yet."],
  no_forecast: ["Belum ada prakiraan (jalankan ./run.sh retrain).", "No forecast yet (run ./run.sh retrain)."],
  forecast_from: ["Prakiraan {model} dari {date}.", "{model} forecast from {date}."],
  impact_title: ["Penjelasan dampak ({month}): faktor dominan {factor}, skor {score}", "Impact explanation ({month}): dominant factor {factor}, score {score}"],
  no_alerts: ["Belum ada peringatan.", "No alerts yet."],
  news: ["Berita harga", "Price news"],
  no_news: ["Belum ada berita.", "No headlines yet."],
  status_open: ["aktif", "open"],
  status_resolved: ["selesai", "resolved"],
  severity_critical: ["kritis", "critical"],
  severity_warning: ["waspada", "warning"],
  severity_info: ["info", "info"],
  source: ["Sumber", "Source"],
  received: ["Diterima", "Received"],
  accepted: ["Lolos", "Accepted"],
  quarantined: ["Dikarantina", "Quarantined"],
  reasons: ["Alasan", "Reasons"],
  reason: ["Alasan", "Reason"],
  quarantined_rows: ["Baris yang dikarantina", "Quarantined records"],
  when: ["Kapan", "When"],
  subject: ["Komoditas/metrik", "Commodity/metric"],
  raw: ["Data mentah", "Raw input"],
  page_of: ["{from}–{to} dari {total}", "{from}–{to} of {total}"],
  none: ["tidak ada", "none"],
  key_needed: ["Baca data memerlukan kunci API. Kunci disimpan selama sesi ini.", "Reading data needs an API key. It is kept for this session."],
  key_wrong: ["Kunci tidak diterima.", "The key was not accepted."],
  key_use: ["Gunakan", "Use"],
  load_error: ["Gagal memuat: {detail}", "Could not load: {detail}"],
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
  const text = WORDS[key]?.[lang === "id" ? 0 : 1] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}
