package id.smartmarket.judge;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * The statistical sensor rules of streaming_jobs/sensor_judge.py: per device × metric, each
 * candidate against the {@code stuck_readings} readings before it (the state's accepted ones and
 * the batch's own, in time order) — {@code sensor_jump} farther than the metric's {@code max_jump}
 * from their median, {@code sensor_stuck} the same value that many times in a row.
 */
final class SensorJudge {
  private final Rules rules;

  SensorJudge(Rules rules) {
    this.rules = rules;
  }

  Verdict[] judge(List<SensorPoint> earlier, List<SensorPoint> candidates) {
    List<SensorPoint> pool = new ArrayList<>(earlier);
    pool.addAll(candidates);
    pool.sort(Point.ORDER);
    Map<SensorPoint, Integer> position = new IdentityHashMap<>();
    for (int i = 0; i < pool.size(); i++) {
      position.put(pool.get(i), i);
    }
    int n = rules.stuckReadings;
    Verdict[] out = new Verdict[candidates.size()];
    for (int c = 0; c < candidates.size(); c++) {
      SensorPoint reading = candidates.get(c);
      int at = position.get(reading);
      double[] previous = new double[n];
      int count = 0;
      boolean stuck = true;
      for (int back = 1; back <= n; back++) {
        boolean same = at - back >= 0 && pool.get(at - back).compareSeries(reading) == 0;
        double value = same ? pool.get(at - back).value : Double.NaN;
        if (same) {
          previous[count++] = value;
        }
        if (back < n && !(same && value == reading.value)) {
          stuck = false;
        }
      }
      double[] ordered = Arrays.copyOf(previous, count);
      Arrays.sort(ordered);
      double median = Stats.percentile(ordered, count, 0.5);
      double limit = rules.maxJump.getOrDefault(reading.metric, Double.NaN);
      Verdict v = new Verdict(rules.details.size());
      v.flags = stuck ? rules.bit("sensor_stuck") : 0;
      v.reasons = Math.abs(reading.value - median) > limit ? rules.bit("sensor_jump") : 0;
      v.details[rules.details.indexOf("previous_median")] = median;
      out[c] = v;
    }
    return out;
  }
}
