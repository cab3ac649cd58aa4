package id.smartmarket.judge;

import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.streaming.OutputMode;
import org.apache.spark.sql.streaming.TimeMode;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.StructType;

/** The entry point streaming_jobs/jvm_judge.py calls through py4j. */
public final class SeriesJudge {
  private SeriesJudge() {}

  /**
   * The prepared rows of streaming_jobs/silver.py {@code judge}, grouped by {@code key}, judged
   * by {@link SeriesProcessor}: the rows of the output schema ({@code outputJson}, Spark's JSON of
   * a struct) with their verdicts and the decisions on held prices.
   *
   * @param rulesJson the thresholds and names (streaming_jobs/jvm_judge.py)
   */
  public static Dataset<Row> judge(
      Dataset<Row> prepared, String key, String outputJson, String rulesJson) {
    StructType output = (StructType) DataType.fromJson(outputJson);
    SeriesProcessor processor = new SeriesProcessor(prepared.schema(), output, rulesJson);
    return prepared
        .groupBy(functions.col(key))
        .as(Encoders.STRING(), Encoders.row(prepared.schema()))
        .transformWithState(processor, TimeMode.None(), OutputMode.Append(), Encoders.row(output));
  }
}
