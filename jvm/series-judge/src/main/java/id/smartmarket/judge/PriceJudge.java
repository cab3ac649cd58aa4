package id.smartmarket.judge;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * The statistical price rules of streaming_jobs/price_judge.py, on a pool of the state's points
 * and the batch's candidates of a bucket: each candidate against the newest {@code
 * history_points} prices of its market × commodity in the {@code history_days} before it (its own
 * second excluded), and against the other markets of its province that day.
 */
final class PriceJudge {
  private final Rules rules;

  PriceJudge(Rules rules) {
    this.rules = rules;
  }

  /** The verdict on each candidate (same order as {@code candidates}). */
  Verdict[] judge(List<PricePoint> earlier, List<PricePoint> candidates) {
    List<PricePoint> pool = new ArrayList<>(earlier.size() + candidates.size());
    pool.addAll(earlier);
    pool.addAll(candidates);
    pool.sort(Point.ORDER); // stable: the state's points before the batch's on a tie
    int size = pool.size();
    int[] runStart = new int[size];
    int[] runEnd = new int[size];
    for (int start = 0; start < size; ) {
      int end = Retention.runEnd(pool, start);
      for (int i = start; i < end; i++) {
        runStart[i] = start;
        runEnd[i] = end;
      }
      start = end;
    }
    double[] change = changes(pool, runStart);
    Map<PricePoint, Integer> position = new IdentityHashMap<>();
    for (int i = 0; i < size; i++) {
      position.put(pool.get(i), i);
    }
    CrossMarkets cross = new CrossMarkets(pool, candidates);
    Verdict[] out = new Verdict[candidates.size()];
    for (int c = 0; c < candidates.size(); c++) {
      int at = position.get(candidates.get(c));
      out[c] = verdict(pool, change, at, runStart[at], runEnd[at], cross.of(candidates.get(c)));
    }
    return out;
  }

  /** Each price's change against the median of the {@code recent} prices before it in its series. */
  private double[] changes(List<PricePoint> pool, int[] runStart) {
    double[] out = new double[pool.size()];
    double[] before = new double[rules.recent];
    for (int i = 0; i < pool.size(); i++) {
      int count = 0;
      for (int back = 1; back <= rules.recent && i - back >= runStart[i]; back++) {
        before[count++] = pool.get(i - back).price;
      }
      double[] ordered = Arrays.copyOf(before, count);
      Arrays.sort(ordered);
      double base = Stats.percentile(ordered, count, 0.5);
      out[i] = pool.get(i).price / base - 1;
    }
    return out;
  }

  private Verdict verdict(
      List<PricePoint> pool, double[] change, int at, int start, int end, double[] cross) {
    PricePoint candidate = pool.get(at);
    int width = rules.historyPoints;
    int upper = Retention.firstAtOrAfter(pool, start, end, candidate.sec);
    int lower = Retention.firstAtOrAfter(pool, start, end, candidate.sec - rules.historyDays * Rules.DAY);
    lower = Math.max(lower, upper - width);
    double[] values = new double[upper - lower];
    double[] prices = new double[upper - lower];
    int n = 0;
    for (int i = lower; i < upper; i++) {
      if (!Double.isNaN(change[i])) {
        values[n++] = change[i];
      }
      prices[i - lower] = pool.get(i).price;
    }
    double[] ordered = Arrays.copyOf(values, n);
    Arrays.sort(ordered);
    Arrays.sort(prices);
    double mean = n > 0 ? Stats.nansum(ordered, n, width) / n : Double.NaN;
    double[] squares = new double[n];
    for (int i = 0; i < n; i++) {
      squares[i] = (ordered[i] - mean) * (ordered[i] - mean);
    }
    double std = n > 1 ? Math.sqrt(Stats.nansum(squares, n, width) / (n - 1)) : Double.NaN;
    double q1 = Stats.percentile(ordered, n, 0.25);
    double q3 = Stats.percentile(ordered, n, 0.75);
    double median = Stats.percentile(prices, prices.length, 0.5);

    double price = candidate.price;
    double own = change[at];
    double crossMedian = cross[0];
    int crossN = (int) cross[1];
    boolean enough = n >= rules.minHistory && !Double.isNaN(own);
    double spread = fmax(Double.isNaN(std) ? rules.minIqr : std, rules.minIqr);
    double z = (own - mean) / spread;
    double iqr = fmax(q3 - q1, rules.minIqr);
    double low = q1 - rules.iqrFactor * iqr;
    double high = q3 + rules.iqrFactor * iqr;
    double level = Math.abs(price / median - 1);
    boolean compared = crossN >= rules.crossMarketMinMarkets;
    double deviation = compared ? Math.abs(price / crossMedian - 1) : Double.NaN;
    boolean[] hits = {
      enough && Math.abs(z) > rules.zscoreMax,
      enough && (own < low || own > high),
      enough && level > rules.medianDeviationMax,
      compared && deviation > rules.crossMarketDeviation,
    };
    String[] names = {"zscore", "iqr", "median_deviation", "cross_market"};
    Verdict v = new Verdict(rules.details.size());
    int count = 0;
    for (int i = 0; i < hits.length; i++) {
      if (hits[i]) {
        v.flags |= rules.bit(names[i]);
        count++;
      }
    }
    boolean quarantined =
        count >= rules.quarantineMinFlags || (compared && deviation > rules.crossMarketStrong);
    v.reasons = quarantined ? v.flags : 0;
    set(v, "history_n", n);
    set(v, "change", enough ? own : Double.NaN);
    set(v, "z_score", enough ? z : Double.NaN);
    set(v, "change_iqr_low", enough ? low : Double.NaN);
    set(v, "change_iqr_high", enough ? high : Double.NaN);
    set(v, "rolling_median", enough ? median : Double.NaN);
    set(v, "cross_market_median", compared ? crossMedian : Double.NaN);
    return v;
  }

  private void set(Verdict v, String detail, double value) {
    v.details[rules.details.indexOf(detail)] = value;
  }

  /** numpy's fmax: the other when one is NaN. */
  private static double fmax(double a, double b) {
    if (Double.isNaN(a)) {
      return b;
    }
    return Double.isNaN(b) ? a : Math.max(a, b);
  }

  /**
   * The median of the daily medians of the other markets of a candidate's province ×
   * commodity on its day, and how many markets it rests on (NaN and 0 when none).
   */
  private static final class CrossMarkets {
    /** province × commodity and day → market × commodity → that day's prices. */
    private final Map<String, Map<String, List<Double>>> slots = new HashMap<>();
    private final Map<String, double[]> known = new HashMap<>();
    private final Map<String, Map<String, Double>> daily = new HashMap<>();

    CrossMarkets(List<PricePoint> pool, List<PricePoint> candidates) {
      for (PricePoint c : candidates) {
        slots.putIfAbsent(slot(c), new HashMap<>());
      }
      for (PricePoint p : pool) {
        Map<String, List<Double>> slot = slots.get(slot(p));
        if (slot != null) {
          slot.computeIfAbsent(p.series(), k -> new ArrayList<>()).add(p.price);
        }
      }
    }

    private static String slot(PricePoint p) {
      return p.group + '\u0001' + p.day;
    }

    double[] of(PricePoint candidate) {
      String slot = slot(candidate);
      String series = candidate.series();
      Map<String, Double> medians = daily.computeIfAbsent(slot, this::dailyMedians);
      return known.computeIfAbsent(
          slot + '\u0003' + series,
          k -> {
            double[] ordered =
                medians.entrySet().stream()
                    .filter(e -> !e.getKey().equals(series))
                    .mapToDouble(Map.Entry::getValue)
                    .sorted()
                    .toArray();
            return new double[] {Stats.percentile(ordered, ordered.length, 0.5), ordered.length};
          });
    }

    /** Each market × commodity's median price of a slot: the middle of its sorted prices. */
    private Map<String, Double> dailyMedians(String slot) {
      Map<String, Double> out = new HashMap<>();
      slots.get(slot).forEach(
          (series, prices) -> {
            double[] day = prices.stream().mapToDouble(Double::doubleValue).sorted().toArray();
            int m = day.length;
            out.put(series, 0.5 * (day[(m - 1) / 2] + day[m / 2]));
          });
      return out;
    }
  }
}
