package id.smartmarket.judge;

import java.util.Arrays;

/**
 * The arithmetic of the Python judge (streaming_jobs/price_judge.py), operation for operation, so
 * that both reach the same doubles: percentiles as Spark's {@code percentile}, and sums in the
 * order numpy's {@code nansum} adds a row.
 */
final class Stats {
  private Stats() {}

  /** Spark's percentile of the first {@code n} values of ascending {@code ordered} (NaN: none). */
  static double percentile(double[] ordered, int n, double q) {
    if (n == 0) {
      return Double.NaN;
    }
    double position = q * (n - 1);
    int lower = (int) Math.max(Math.floor(position), 0);
    int higher = (int) Math.max(Math.ceil(position), 0);
    if (lower == higher) {
      return ordered[lower];
    }
    return (higher - position) * ordered[lower] + (position - lower) * ordered[higher];
  }

  /**
   * numpy's pairwise sum of {@code values[0..n)} followed by zeros up to {@code width} (the NaN
   * a {@code nansum} row holds after its values count as 0): eight accumulators, then halves.
   */
  static double nansum(double[] values, int n, int width) {
    double[] row = Arrays.copyOf(values, Math.max(width, n));
    Arrays.fill(row, n, row.length, 0.0);
    return pairwise(row, 0, row.length);
  }

  private static double pairwise(double[] a, int from, int n) {
    if (n < 8) {
      double res = 0.0;
      for (int i = 0; i < n; i++) {
        res += a[from + i];
      }
      return res;
    }
    if (n <= 128) {
      double[] r = new double[8];
      System.arraycopy(a, from, r, 0, 8);
      int i = 8;
      for (; i < n - (n % 8); i += 8) {
        for (int j = 0; j < 8; j++) {
          r[j] += a[from + i + j];
        }
      }
      double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
      for (; i < n; i++) {
        res += a[from + i];
      }
      return res;
    }
    int n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise(a, from, n2) + pairwise(a, from + n2, n - n2);
  }

  /** The median of the present (non-NaN) values, as the judge takes it. */
  static double median(double[] values) {
    double[] present = Arrays.stream(values).filter(v -> !Double.isNaN(v)).sorted().toArray();
    return percentile(present, present.length, 0.5);
  }
}
