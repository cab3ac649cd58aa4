package id.smartmarket.judge;

/** An accepted sensor reading: a point of a device's metric. */
final class SensorPoint extends Point {
  private String series;
  final String market;
  final String device;
  final String metric;
  final double value;

  SensorPoint(String market, String device, String metric, long sec, double value, String eventId) {
    super(sec, eventId);
    this.market = market;
    this.device = device;
    this.metric = metric;
    this.value = value;
  }

  @Override
  String series() {
    if (series == null) {
      series = key(market, device, metric);
    }
    return series;
  }

  @Override
  int compareSeries(Point other) {
    SensorPoint o = (SensorPoint) other;
    int c = compareNullable(market, o.market);
    c = c != 0 ? c : compareNullable(device, o.device);
    return c != 0 ? c : compareNullable(metric, o.metric);
  }
}
