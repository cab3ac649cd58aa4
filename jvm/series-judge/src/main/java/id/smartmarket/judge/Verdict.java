package id.smartmarket.judge;

import java.util.Arrays;

/** A judge's verdict on one event: the rules that flag it, those that quarantine it, the numbers. */
final class Verdict {
  long flags;
  long reasons;
  /** By detail name, in the order of {@link Rules#details} (NaN: not computed). */
  final double[] details;

  Verdict(int detailCount) {
    details = new double[detailCount];
    Arrays.fill(details, Double.NaN);
  }
}
