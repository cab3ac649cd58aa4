package id.smartmarket.judge;

/** A price that passed the hard rules: a market × commodity's point, in a province × commodity. */
final class PricePoint extends Point {
  private String series;
  final String group;
  final String commodity;
  final String market;
  final int day;
  final double price;

  PricePoint(String group, String commodity, String market, long sec, int day, double price,
      String eventId) {
    super(sec, eventId);
    this.group = group;
    this.commodity = commodity;
    this.market = market;
    this.day = day;
    this.price = price;
  }

  @Override
  String series() {
    if (series == null) {
      series = key(commodity, market);
    }
    return series;
  }

  @Override
  int compareSeries(Point other) {
    PricePoint o = (PricePoint) other;
    int c = compareNullable(commodity, o.commodity);
    return c != 0 ? c : compareNullable(market, o.market);
  }
}
