package dev.convspark.ml.training;

import java.io.Serializable;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.NumericType;
import org.apache.spark.sql.types.StructType;

/**
 * Reads the {@code weightCol} of Spark's internal rows, the column cast to double as MLlib casts
 * it: each row's weight in the loss, a finite number, 0 or more. Anything else is refused, naming
 * the column and the value.
 */
public final class WeightReader implements Serializable {
  private static final long serialVersionUID = 1L;

  private final String column;

  private WeightReader(String column) {
    this.column = column;
  }

  /** The column's name. */
  public String column() {
    return column;
  }

  /**
   * The reader for column {@code column} of {@code schema}.
   *
   * @throws IllegalArgumentException when the column is missing or not numeric
   */
  public static WeightReader of(StructType schema, String column) {
    return of(schema, column, "");
  }

  /**
   * As {@link #of(StructType, String)}, {@code missing} appended to the message for a missing
   * column (what to do about it).
   */
  public static WeightReader of(StructType schema, String column, String missing) {
    if (!java.util.Arrays.asList(schema.fieldNames()).contains(column)) {
      throw new IllegalArgumentException("weightCol '" + column + "' does not exist; columns are "
          + String.join(", ", schema.fieldNames()) + missing);
    }
    DataType t = schema.apply(column).dataType();
    if (!(t instanceof NumericType)) {
      throw new IllegalArgumentException("weightCol '" + column + "' has type " + t.simpleString()
          + "; expected a numeric type holding each row's weight (a finite number, 0 or more)");
    }
    return new WeightReader(column);
  }

  /**
   * The weight in field {@code index} of {@code row}, a double.
   *
   * @throws IllegalArgumentException naming the column and the value for a weight that is null,
   *                                  negative, not a number or too large for a float
   */
  float read(InternalRow row, int index) {
    if (row.isNullAt(index)) {
      throw new IllegalArgumentException("weightCol '" + column + "' holds a null; every row needs a weight (a finite"
          + " number, 0 or more)");
    }
    double w = row.getDouble(index);
    if (!(w >= 0) || (float) w == Float.POSITIVE_INFINITY) {
      throw new IllegalArgumentException("weightCol '" + column + "' holds " + w
          + "; weights must be finite numbers, 0 or more");
    }
    return (float) w;
  }

  /** Refuses a sum of training weights of 0: nothing would be learned. */
  void requirePositive(double total) {
    if (!(total > 0)) {
      throw new IllegalArgumentException("weightCol '" + column + "' gives every training row a weight of 0;"
          + " at least one must weigh more than 0");
    }
  }
}
