package dev.convspark.ml.training;

import java.io.Serializable;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

/**
 * Reads the {@code validationIndicatorCol} of Spark's internal rows: true holds the row out of
 * training for validation. Anything but a non-null boolean is refused, naming the column.
 */
public final class IndicatorReader implements Serializable {
  private static final long serialVersionUID = 1L;

  private final String column;

  private IndicatorReader(String column) {
    this.column = column;
  }

  /** The column's name. */
  String column() {
    return column;
  }

  /**
   * The reader for column {@code column} of {@code schema}.
   *
   * @throws IllegalArgumentException when the column is missing or not boolean
   */
  public static IndicatorReader of(StructType schema, String column) {
    if (!java.util.Arrays.asList(schema.fieldNames()).contains(column)) {
      throw new IllegalArgumentException("validationIndicatorCol '" + column + "' does not exist; columns are "
          + String.join(", ", schema.fieldNames()));
    }
    DataType t = schema.apply(column).dataType();
    if (!t.equals(DataTypes.BooleanType)) {
      throw new IllegalArgumentException("validationIndicatorCol '" + column + "' has type " + t.simpleString()
          + "; expected boolean (true: a validation row, false: a training row)");
    }
    return new IndicatorReader(column);
  }

  /**
   * Whether the row is a validation row.
   *
   * @throws IllegalArgumentException for a null, naming the column
   */
  boolean read(InternalRow row, int index) {
    if (row.isNullAt(index)) {
      throw new IllegalArgumentException("validationIndicatorCol '" + column + "' holds a null; every row must be"
          + " marked true (validation) or false (training)");
    }
    return row.getBoolean(index);
  }
}
