package dev.convspark.ml.training;

import java.io.Serializable;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.DecimalType;
import org.apache.spark.sql.types.NumericType;
import org.apache.spark.sql.types.StructType;

/**
 * Reads the label column of Spark's internal rows as a 0-based class index, refusing anything
 * else with a message naming the column and the value.
 */
public final class LabelReader implements Serializable {
  private static final long serialVersionUID = 1L;

  private final String column;
  private final DataType type;
  private final int classes;

  private LabelReader(String column, DataType type, int classes) {
    this.column = column;
    this.type = type;
    this.classes = classes;
  }

  /**
   * The reader for column {@code column} of {@code schema}, for labels in {@code [0, classes)}.
   *
   * @throws IllegalArgumentException when the column is missing or not numeric
   */
  public static LabelReader of(StructType schema, String column, int classes) {
    if (!java.util.Arrays.asList(schema.fieldNames()).contains(column)) {
      throw new IllegalArgumentException("label column '" + column + "' does not exist; columns are "
          + String.join(", ", schema.fieldNames()));
    }
    DataType t = schema.apply(column).dataType();
    if (!(t instanceof NumericType)) {
      throw new IllegalArgumentException("label column '" + column + "' has type " + t.simpleString()
          + "; expected a numeric type holding 0-based class indices" + (t.equals(DataTypes.StringType)
          ? " (MLlib's StringIndexer turns string labels into them)" : ""));
    }
    return new LabelReader(column, t, classes);
  }

  /**
   * The class index in field {@code index} of {@code row}.
   *
   * @throws IllegalArgumentException naming the column and the value for a label that is null, not
   *                                  an integer, or outside {@code [0, classes)}
   */
  int read(InternalRow row, int index) {
    if (row.isNullAt(index)) {
      throw new IllegalArgumentException("label column '" + column + "' holds a null; labels must be 0-based class"
          + " indices in [0, " + classes + ")");
    }
    double label;
    if (type.equals(DataTypes.IntegerType)) {
      label = row.getInt(index);
    } else if (type.equals(DataTypes.DoubleType)) {
      label = row.getDouble(index);
    } else if (type.equals(DataTypes.LongType)) {
      label = row.getLong(index);
    } else if (type.equals(DataTypes.FloatType)) {
      label = row.getFloat(index);
    } else if (type.equals(DataTypes.ShortType)) {
      label = row.getShort(index);
    } else if (type.equals(DataTypes.ByteType)) {
      label = row.getByte(index);
    } else if (type instanceof DecimalType d) {
      label = row.getDecimal(index, d.precision(), d.scale()).toDouble();
    } else {
      throw new IllegalArgumentException("label column '" + column + "' has type " + type.simpleString()
          + "; expected a numeric type holding 0-based class indices");
    }
    if (label != Math.rint(label) || label < 0 || label >= classes) {
      throw new IllegalArgumentException("label column '" + column + "' holds " + label
          + "; labels must be 0-based class indices in [0, " + classes + ")" + (label >= classes && label == Math.rint(label)
          ? " (the model's last layer has " + classes + " outputs; for more classes, end the model with a dense"
          + " layer of as many units, e.g. ...-dense" + (long) (label + 1) + ")" : ""));
    }
    return (int) label;
  }
}
