package id.smartmarket.judge;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The thresholds and names the judge uses, as streaming_jobs/jvm_judge.py hands them over (JSON
 * of conf/quality.yaml and the Python modules' constants: one source of truth).
 */
final class Rules implements Serializable {
  private static final long serialVersionUID = 1L;
  static final long DAY = 86400L;

  // prices
  final int historyDays, minHistory, crossMarketMinMarkets, quarantineMinFlags;
  final int historyPoints, stateDays, statePoints, recent;
  final double zscoreMax, iqrFactor, medianDeviationMax, crossMarketDeviation;
  final double crossMarketStrong, minIqr;
  // holds
  final double windowDays, levelTolerance;
  final int confirmReports;
  // sensors
  final int stuckReadings;
  final Map<String, Double> maxJump = new HashMap<>();
  // names
  final List<String> statRules, details;
  final String detailPrefix, flagsMask, reasonsMask, byRule, notConfirmedNote, confirmedNote;
  final String held, released, notConfirmed;
  final Set<String> reviewable = new HashSet<>();
  final Map<String, String> reviewDecisions = new HashMap<>();
  // row kinds (streaming_jobs/row_kinds.py RowKind) and the key prefixes of price and sensor groups
  final String eventKind, reviewKind, holdKind, decisionKind, releaseKind, priceKeys, sensorKeys;

  Rules(String json) {
    JsonNode root;
    try {
      root = new ObjectMapper().readTree(json);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    JsonNode p = root.get("prices");
    historyDays = p.get("history_days").asInt();
    minHistory = p.get("min_history").asInt();
    zscoreMax = p.get("zscore_max").asDouble();
    iqrFactor = p.get("iqr_factor").asDouble();
    medianDeviationMax = p.get("median_deviation_max").asDouble();
    crossMarketMinMarkets = p.get("cross_market_min_markets").asInt();
    crossMarketDeviation = p.get("cross_market_deviation").asDouble();
    crossMarketStrong = p.get("cross_market_strong").asDouble();
    quarantineMinFlags = p.get("quarantine_min_flags").asInt();
    historyPoints = p.get("history_points").asInt();
    stateDays = p.get("state_days").asInt();
    statePoints = p.get("state_points").asInt();
    JsonNode h = root.get("hold");
    windowDays = h.get("window_days").asDouble();
    levelTolerance = h.get("level_tolerance").asDouble();
    confirmReports = h.get("confirm_reports").asInt();
    JsonNode s = root.get("sensors");
    stuckReadings = s.get("stuck_readings").asInt();
    s.get("max_jump").fields().forEachRemaining(e -> maxJump.put(e.getKey(), e.getValue().asDouble()));
    JsonNode k = root.get("constants");
    recent = k.get("recent").asInt();
    minIqr = k.get("min_iqr").asDouble();
    statRules = strings(k.get("stat_rules"));
    details = strings(k.get("details"));
    detailPrefix = k.get("detail_prefix").asText();
    flagsMask = k.get("flags_mask").asText();
    reasonsMask = k.get("reasons_mask").asText();
    byRule = k.get("by_rule").asText();
    notConfirmedNote = k.get("not_confirmed_note").asText();
    confirmedNote = k.get("confirmed_note").asText();
    held = k.get("held").asText();
    released = k.get("released").asText();
    notConfirmed = k.get("not_confirmed").asText();
    reviewable.addAll(strings(k.get("reviewable")));
    k.get("review_decisions")
        .fields()
        .forEachRemaining(e -> reviewDecisions.put(e.getKey(), e.getValue().asText()));
    JsonNode kinds = k.get("kinds");
    eventKind = kinds.get("event").asText();
    reviewKind = kinds.get("review").asText();
    holdKind = kinds.get("hold").asText();
    decisionKind = kinds.get("decision").asText();
    releaseKind = kinds.get("release").asText();
    priceKeys = k.get("series_keys").get("price").asText() + "|";
    sensorKeys = k.get("series_keys").get("sensor").asText() + "|";
  }

  private static List<String> strings(JsonNode array) {
    List<String> out = new java.util.ArrayList<>();
    array.forEach(n -> out.add(n.asText()));
    return out;
  }

  long bit(String rule) {
    int i = statRules.indexOf(rule);
    if (i < 0) {
      throw new IllegalArgumentException("unknown statistical rule " + rule);
    }
    return 1L << i;
  }

  String detail(String name) {
    return detailPrefix + name;
  }
}
