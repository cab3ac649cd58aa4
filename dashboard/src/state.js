// What the pages share: settings, the market registry and the newest prices.

export const state = {
  config: {},
  /** market_id → market of GET /markets */
  markets: new Map(),
  /** "market_id|commodity" → item of GET /prices/live */
  live: new Map(),
};

/** Replace a select's options with `[value, label]` pairs (after an "all" option if given),
 * keeping the chosen value when it is still there. */
export function fillSelect(select, options, allLabel) {
  const chosen = select.value;
  const all = allLabel == null ? [] : [["", allLabel]];
  select.innerHTML = "";
  for (const [value, label] of [...all, ...options]) select.add(new Option(label, value));
  if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
}
