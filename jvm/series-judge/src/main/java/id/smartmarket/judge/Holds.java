package id.smartmarket.judge;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.spark.sql.Row;

/**
 * Held prices, as streaming_jobs/holds.py decides them: a price the statistical rules quarantined
 * waits in the state of its bucket until later reports confirm it ({@code released}), one comes
 * back to the earlier level ({@code not_confirmed}) or an operator's review decides.
 */
final class Holds {
  /** A decision on a hold; supports and refutes null for an operator's. */
  record Decision(String decision, String decidedBy, String note, Long supports, Long refutes) {}

  private final Rules rules;
  private final Layout layout;
  private final int eventId, commodity, market, sec, price, status, baseline;

  Holds(Rules rules, Layout layout) {
    this.rules = rules;
    this.layout = layout;
    eventId = layout.out("event_id");
    commodity = layout.out("commodity");
    market = layout.out("market_id");
    sec = layout.out("_sec");
    price = layout.out("price");
    status = layout.out("status");
    baseline = layout.out("baseline");
  }

  /** A judged price the statistical rules quarantined, as a new hold (its output row's values). */
  Object[] fresh(Object[] judged, Object now) {
    Object[] hold = judged.clone();
    double rolling = number(judged[layout.out(rules.detail("rolling_median"))]);
    double level =
        Double.isNaN(rolling) ? number(judged[layout.out(rules.detail("cross_market_median"))]) : rolling;
    hold[layout.out("hold_reasons_mask")] = judged[layout.out(rules.reasonsMask)];
    hold[baseline] = level;
    hold[layout.out("move")] = (Double) judged[price] / level - 1;
    hold[layout.out("held_at")] = now;
    hold[status] = rules.held;
    return hold;
  }

  static double number(Object value) {
    return value == null ? Double.NaN : (Double) value;
  }

  /**
   * The rule's decisions on the {@code held} holds of {@code pool} from the state's points after
   * the batch (held prices among them).
   */
  Map<String, Decision> confirmations(List<Object[]> pool, List<PricePoint> points) {
    Map<String, List<PricePoint>> bySeries = new HashMap<>();
    for (PricePoint p : points) {
      bySeries.computeIfAbsent(p.series(), k -> new ArrayList<>()).add(p);
    }
    long window = (long) (rules.windowDays * Rules.DAY);
    double tolerance = rules.levelTolerance;
    Map<String, Decision> out = new LinkedHashMap<>();
    for (Object[] hold : pool) {
      if (!rules.held.equals(hold[status])) {
        continue;
      }
      String id = (String) hold[eventId];
      long at = (Long) hold[sec];
      double level = (Double) hold[price];
      double before = number(hold[baseline]);
      long supports = 0;
      long refutes = 0;
      String series = Point.key((String) hold[commodity], (String) hold[market]);
      for (PricePoint p : bySeries.getOrDefault(series, List.of())) {
        if (p.eventId.equals(id) || Math.abs(p.sec - at) > window) {
          continue;
        }
        if (Math.abs(p.price / level - 1) <= tolerance) {
          supports++;
        }
        if (p.sec > at && Math.abs(p.price / before - 1) <= tolerance) {
          refutes++;
        }
      }
      if (refutes > 0) {
        out.put(id, new Decision(rules.notConfirmed, rules.byRule, rules.notConfirmedNote, supports, refutes));
      } else if (supports >= rules.confirmReports) {
        String note = rules.confirmedNote.replace("{supports}", Long.toString(supports));
        out.put(id, new Decision(rules.released, rules.byRule, note, supports, refutes));
      }
    }
    return out;
  }

  /**
   * Operators' decisions on reviewable holds from the batch's valid reviews: of several of one
   * hold the first requested wins.
   */
  Map<String, Decision> reviewed(List<Object[]> pool, List<Row> reviews) {
    Set<String> reviewable = new HashSet<>();
    for (Object[] hold : pool) {
      if (rules.reviewable.contains(hold[status])) {
        reviewable.add((String) hold[eventId]);
      }
    }
    int target = layout.in("review_target_event_id");
    int requested = layout.in("review_requested_at");
    int partition = layout.in("partition");
    int offset = layout.in("offset");
    List<Row> mine = new ArrayList<>();
    for (Row r : reviews) {
      if (reviewable.contains(r.getString(target))) {
        mine.add(r);
      }
    }
    mine.sort(
        Comparator.<Row, Comparable<Object>>comparing(
                r -> comparable(r.get(requested)), Comparator.nullsLast(Comparator.naturalOrder()))
            .thenComparing(r -> comparable(r.get(partition)), Comparator.nullsLast(Comparator.naturalOrder()))
            .thenComparing(r -> comparable(r.get(offset)), Comparator.nullsLast(Comparator.naturalOrder())));
    Map<String, Decision> out = new LinkedHashMap<>();
    for (Row r : mine) {
      String note = r.getString(layout.in("review_note"));
      out.putIfAbsent(
          r.getString(target),
          new Decision(
              rules.reviewDecisions.get(r.getString(layout.in("review_decision"))),
              "operator:" + r.getString(layout.in("review_reviewer")),
              note == null ? "" : note,
              null,
              null));
    }
    return out;
  }

  @SuppressWarnings("unchecked")
  private static Comparable<Object> comparable(Object value) {
    return (Comparable<Object>) value;
  }

  /** The batch's decisions: an operator's wins over the rule's on the same hold. */
  static Map<String, Decision> decided(Map<String, Decision> byRule, Map<String, Decision> byOperator) {
    Map<String, Decision> out = new LinkedHashMap<>(byOperator);
    byRule.forEach(out::putIfAbsent);
    return out;
  }
}
