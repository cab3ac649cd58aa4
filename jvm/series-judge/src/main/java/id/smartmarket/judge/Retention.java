package id.smartmarket.judge;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Which points the state keeps (streaming_jobs/series_state.py {@code newest_points}): per
 * series, the newest {@code width} at or before each anchor, at most {@code horizon} seconds older.
 */
final class Retention {
  private Retention() {}

  /** Points to keep per series around {@code anchors} (series key → newest time). */
  record Window(Map<String, Long> anchors, int width, long horizon) {}

  /** The newest time of each series among {@code points}. */
  static Map<String, Long> anchors(List<? extends Point> points) {
    Map<String, Long> out = new HashMap<>();
    for (Point p : points) {
      out.merge(p.series(), p.sec, Math::max);
    }
    return out;
  }

  /** The points any window keeps, in {@link Point#ORDER} (an event seen twice kept once). */
  static <P extends Point> List<P> newest(List<P> points, List<Window> windows) {
    Map<String, Integer> last = new HashMap<>();
    for (int i = 0; i < points.size(); i++) {
      last.put(points.get(i).eventId, i);
    }
    List<P> once = new ArrayList<>(last.size());
    for (int i = 0; i < points.size(); i++) {
      if (last.get(points.get(i).eventId) == i) {
        once.add(points.get(i));
      }
    }
    once.sort(Point.ORDER);
    boolean[] keep = new boolean[once.size()];
    for (int start = 0; start < once.size(); ) {
      int end = runEnd(once, start);
      String series = once.get(start).series();
      for (Window window : windows) {
        Long anchor = window.anchors().get(series);
        if (anchor == null) {
          continue;
        }
        int upper = firstAtOrAfter(once, start, end, anchor + 1);
        int lower = firstAtOrAfter(once, start, end, anchor - window.horizon());
        for (int i = Math.max(lower, upper - window.width()); i < upper; i++) {
          keep[i] = true;
        }
      }
      start = end;
    }
    List<P> kept = new ArrayList<>();
    for (int i = 0; i < once.size(); i++) {
      if (keep[i]) {
        kept.add(once.get(i));
      }
    }
    return kept;
  }

  /** The end of the run of {@code sorted}'s series that starts at {@code start}. */
  static int runEnd(List<? extends Point> sorted, int start) {
    int end = start + 1;
    while (end < sorted.size() && sorted.get(end).compareSeries(sorted.get(start)) == 0) {
      end++;
    }
    return end;
  }

  /** The first position in [from, to) whose time is at least {@code sec} ({@code to}: none). */
  static int firstAtOrAfter(List<? extends Point> sorted, int from, int to, long sec) {
    int lo = from;
    int hi = to;
    while (lo < hi) {
      int mid = (lo + hi) >>> 1;
      if (sorted.get(mid).sec < sec) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }
}
