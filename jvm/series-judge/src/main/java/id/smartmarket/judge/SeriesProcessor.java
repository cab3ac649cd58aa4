package id.smartmarket.judge;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.streaming.OutputMode;
import org.apache.spark.sql.streaming.StatefulProcessor;
import org.apache.spark.sql.streaming.TTLConfig;
import org.apache.spark.sql.streaming.TimeMode;
import org.apache.spark.sql.streaming.TimerValues;
import org.apache.spark.sql.streaming.ValueState;
import org.apache.spark.sql.types.StructType;
import scala.collection.Iterator;
import scala.jdk.javaapi.CollectionConverters;

/**
 * The silver query's stateful step (streaming_jobs/series_judge.py, in the JVM): per key, the
 * prices of a bucket of provinces × commodities and the reviews of their held prices ({@code
 * p|…}), the sensor readings of a bucket of markets ({@code s|…}), or the rows decided before the
 * step ({@code x}, passed on). The state of a key is its points and its held prices waiting for a
 * decision; a key without either has none.
 */
final class SeriesProcessor extends StatefulProcessor<String, Row, Row> {
  private static final long serialVersionUID = 1L;
  private final Layout layout;
  private final Rules rules;
  private transient ValueState<byte[]> points;
  private transient ValueState<byte[]> holds;

  SeriesProcessor(StructType input, StructType output, String rulesJson) {
    layout = new Layout(input, output);
    rules = new Rules(rulesJson);
  }

  @Override
  public void init(OutputMode outputMode, TimeMode timeMode) {
    points = getHandle().getValueState("points", Encoders.BINARY(), TTLConfig.NONE());
    holds = getHandle().getValueState("holds", Encoders.BINARY(), TTLConfig.NONE());
  }

  @Override
  public Iterator<Row> handleInputRows(String key, Iterator<Row> input, TimerValues timers) {
    List<Row> rows = new ArrayList<>(CollectionConverters.asJava(input.toSeq()));
    List<Object[]> out;
    if (key.startsWith(rules.priceKeys)) {
      out = prices(rows);
    } else if (key.startsWith(rules.sensorKeys)) {
      out = sensors(rows);
    } else {
      out = passed(rows);
    }
    List<Row> result = new ArrayList<>(out.size());
    for (Object[] values : out) {
      result.add(layout.row(values));
    }
    return CollectionConverters.asScala(result.iterator());
  }

  private List<Object[]> passed(List<Row> rows) {
    int kind = layout.in("_kind");
    List<Object[]> out = new ArrayList<>(rows.size());
    for (Row row : rows) {
      Object[] values = layout.copy(row);
      values[layout.out("kind")] =
          rules.reviewKind.equals(row.get(kind)) ? rules.reviewKind : rules.eventKind;
      values[layout.out(rules.flagsMask)] = 0L;
      values[layout.out(rules.reasonsMask)] = 0L;
      out.add(values);
    }
    return out;
  }

  /** The judged rows' values: the input's, kind {@code event}, the verdict's masks and numbers. */
  private List<Object[]> judged(List<Row> rows, Verdict[] verdicts) {
    List<Object[]> out = new ArrayList<>(rows.size());
    for (int i = 0; i < rows.size(); i++) {
      Object[] values = layout.copy(rows.get(i));
      values[layout.out("kind")] = rules.eventKind;
      values[layout.out(rules.flagsMask)] = verdicts[i].flags;
      values[layout.out(rules.reasonsMask)] = verdicts[i].reasons;
      for (int d = 0; d < rules.details.size(); d++) {
        values[layout.out(rules.detail(rules.details.get(d)))] = verdicts[i].details[d];
      }
      out.add(values);
    }
    return out;
  }

  private String string(Row row, String column) {
    return (String) row.get(layout.in(column));
  }

  private long seconds(Row row) {
    return ((Number) row.get(layout.in("_sec"))).longValue();
  }

  private List<Object[]> sensors(List<Row> rows) {
    List<SensorPoint> earlier = StateCodec.points(points.exists() ? points.get() : null, StateCodec.SENSOR_READER);
    List<SensorPoint> candidates = new ArrayList<>(rows.size());
    for (Row r : rows) {
      candidates.add(
          new SensorPoint(
              string(r, "market_id"), string(r, "device_id"), string(r, "metric"), seconds(r),
              ((Number) r.get(layout.in("value"))).doubleValue(), string(r, "event_id")));
    }
    Verdict[] verdicts = new SensorJudge(rules).judge(earlier, candidates);
    List<SensorPoint> accepted = new ArrayList<>();
    for (int i = 0; i < verdicts.length; i++) {
      if (verdicts[i].reasons == 0) {
        accepted.add(candidates.get(i));
      }
    }
    List<SensorPoint> kept = new ArrayList<>(earlier);
    kept.addAll(accepted);
    List<SensorPoint> newest =
        Retention.newest(
            kept,
            List.of( // behind the newest reading, and behind the batch's (a backfill's) newest
                new Retention.Window(Retention.anchors(kept), rules.stuckReadings, Rules.DAY),
                new Retention.Window(Retention.anchors(accepted), rules.stuckReadings, Rules.DAY)));
    save(StateCodec.points(newest, StateCodec.SENSOR_WRITER), newest.isEmpty(), List.of());
    return judged(rows, verdicts);
  }

  private List<Object[]> prices(List<Row> rows) {
    List<Row> reviews = new ArrayList<>();
    List<Row> prices = new ArrayList<>(rows.size());
    int kind = layout.in("_kind");
    for (Row r : rows) {
      (rules.reviewKind.equals(r.get(kind)) ? reviews : prices).add(r);
    }
    List<PricePoint> earlier = StateCodec.points(points.exists() ? points.get() : null, StateCodec.PRICE_READER);
    List<PricePoint> candidates = new ArrayList<>(prices.size());
    for (Row r : prices) {
      candidates.add(
          new PricePoint(
              string(r, "_group"), string(r, "commodity"), string(r, "market_id"), seconds(r),
              ((Number) r.get(layout.in("_day"))).intValue(),
              ((Number) r.get(layout.in("price"))).doubleValue(), string(r, "event_id")));
    }
    Verdict[] verdicts = new PriceJudge(rules).judge(earlier, candidates);
    List<Object[]> out = judged(prices, verdicts);
    List<PricePoint> all = new ArrayList<>(earlier);
    all.addAll(candidates);
    List<PricePoint> kept =
        Retention.newest(
            all,
            List.of(
                // what a late price, behind its series' newest, is compared with
                new Retention.Window(
                    Retention.anchors(all), rules.statePoints, rules.stateDays * Rules.DAY),
                // a backfill's own recent past, for its next batch
                new Retention.Window(
                    Retention.anchors(candidates), rules.historyPoints, rules.historyDays * Rules.DAY)));
    byte[] keptBlob = StateCodec.points(kept, StateCodec.PRICE_WRITER);
    List<Object[]> stored = StateCodec.rows(holds.exists() ? holds.get() : null);
    boolean anyHeld = false;
    for (Verdict v : verdicts) {
      anyHeld |= v.reasons != 0;
    }
    if (stored.isEmpty() && !anyHeld) {
      save(keptBlob, kept.isEmpty(), List.of());
      return out;
    }
    Holds decide = new Holds(rules, layout);
    Object now = rows.get(0).get(layout.in("ingest_time"));
    List<Object[]> pool = new ArrayList<>(stored);
    Set<String> fresh = new HashSet<>();
    int eventId = layout.out("event_id");
    for (int i = 0; i < verdicts.length; i++) {
      if (verdicts[i].reasons != 0) {
        Object[] hold = decide.fresh(out.get(i), now);
        pool.add(hold);
        fresh.add((String) hold[eventId]);
      }
    }
    Map<String, Holds.Decision> decisions =
        Holds.decided(decide.confirmations(pool, kept), decide.reviewed(pool, reviews));
    int status = layout.out("status");
    int previous = layout.out("previous_status");
    int decided = layout.out("decided");
    List<Object[]> waiting = new ArrayList<>();
    List<Object[]> extra = new ArrayList<>();
    for (Object[] hold : pool) {
      Holds.Decision decision = decisions.get((String) hold[eventId]);
      hold[previous] = null;
      hold[decided] = false;
      if (decision != null) {
        hold[previous] = hold[status];
        hold[status] = decision.decision();
        hold[decided] = true;
      }
      if (decision != null || fresh.contains((String) hold[eventId])) {
        extra.add(withKind(hold, rules.holdKind));
      }
      if (decision != null) {
        Object[] row = withKind(hold, rules.decisionKind);
        row[layout.out("decision")] = decision.decision();
        row[layout.out("decided_by")] = decision.decidedBy();
        row[layout.out("decision_note")] = decision.note();
        row[layout.out("supports")] = decision.supports();
        row[layout.out("refutes")] = decision.refutes();
        extra.add(row);
        if (rules.released.equals(hold[status])) {
          Object[] release = withKind(hold, rules.releaseKind);
          // its statistical reasons stay as flags: a price's reasons are among its flags
          release[layout.out(rules.reasonsMask)] = 0L;
          extra.add(release);
        }
      }
      if (rules.reviewable.contains(hold[status])) {
        Object[] keep = hold.clone();
        keep[previous] = null;
        keep[decided] = null;
        waiting.add(keep);
      }
    }
    save(keptBlob, kept.isEmpty(), waiting);
    out.addAll(extra);
    return out;
  }

  private Object[] withKind(Object[] values, String kind) {
    Object[] copy = values.clone();
    copy[layout.out("kind")] = kind;
    return copy;
  }

  private void save(byte[] pointsBlob, boolean noPoints, List<Object[]> waiting) {
    if (noPoints) {
      points.clear();
    } else {
      points.update(pointsBlob);
    }
    if (waiting.isEmpty()) {
      holds.clear();
    } else {
      holds.update(StateCodec.rows(waiting));
    }
  }
}
