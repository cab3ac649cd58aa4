package id.smartmarket.judge;

import java.io.Serializable;
import java.util.HashMap;
import java.util.Map;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.DoubleType;
import org.apache.spark.sql.types.StructType;

/**
 * Where the step's columns are: the input rows' (a validated event, or a review) and the output
 * rows' (the input's but the key, then the verdict columns of streaming_jobs/series_judge.py).
 */
final class Layout implements Serializable {
  private static final long serialVersionUID = 1L;
  private final Map<String, Integer> in = new HashMap<>();
  private final Map<String, Integer> out = new HashMap<>();
  /** Per output column, the input column it copies (-1: a verdict column). */
  private final int[] source;
  private final boolean[] isDouble;

  Layout(StructType input, StructType output) {
    for (int i = 0; i < input.fields().length; i++) {
      in.put(input.fields()[i].name(), i);
    }
    source = new int[output.fields().length];
    isDouble = new boolean[output.fields().length];
    for (int i = 0; i < output.fields().length; i++) {
      String name = output.fields()[i].name();
      out.put(name, i);
      source[i] = in.getOrDefault(name, -1);
      isDouble[i] = output.fields()[i].dataType() instanceof DoubleType;
    }
  }

  int in(String name) {
    Integer i = in.get(name);
    if (i == null) {
      throw new IllegalArgumentException("no input column " + name);
    }
    return i;
  }

  int out(String name) {
    Integer i = out.get(name);
    if (i == null) {
      throw new IllegalArgumentException("no output column " + name);
    }
    return i;
  }

  /** An output row's values: the input row's columns, the verdict columns null. */
  Object[] copy(Row row) {
    Object[] values = new Object[source.length];
    for (int i = 0; i < source.length; i++) {
      if (source[i] >= 0) {
        values[i] = row.get(source[i]);
      }
    }
    return values;
  }

  /** The row Spark gets: a NaN is null there, as a number the Python judge did not compute. */
  Row row(Object[] values) {
    Object[] copy = values.clone();
    for (int i = 0; i < copy.length; i++) {
      if (isDouble[i] && copy[i] instanceof Double d && d.isNaN()) {
        copy[i] = null;
      }
    }
    return RowFactory.create(copy);
  }
}
