package id.smartmarket.judge;

import java.util.Comparator;

/** A point of a series as the state keeps it: when it was observed and which event it is. */
abstract class Point {
  final long sec;
  final String eventId;

  Point(long sec, String eventId) {
    this.sec = sec;
    this.eventId = eventId;
  }

  /** The series, as a map key. */
  abstract String series();

  /** The order of the series (as the Python judge's sorted factor codes order them). */
  abstract int compareSeries(Point other);

  /** Series, time, event id: the order the judges and the state keep points in. */
  static final Comparator<Point> ORDER =
      (a, b) -> {
        int c = a.compareSeries(b);
        if (c != 0) {
          return c;
        }
        c = Long.compare(a.sec, b.sec);
        return c != 0 ? c : a.eventId.compareTo(b.eventId);
      };

  /** Null first, as pandas' factorize codes a missing value (-1). */
  static int compareNullable(String a, String b) {
    if (a == null || b == null) {
      return a == null ? (b == null ? 0 : -1) : 1;
    }
    return a.compareTo(b);
  }

  static String key(String... parts) {
    StringBuilder out = new StringBuilder();
    for (String part : parts) {
      out.append(part == null ? "\u0002" : part).append('\u0001');
    }
    return out.toString();
  }
}
