package dev.convspark.ml.training;

import java.io.Serializable;
import org.apache.spark.ml.linalg.SQLDataTypes;
import org.apache.spark.ml.linalg.Vector;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.util.ArrayData;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

/**
 * Turns one value of the features column into the engine's input: {@code size} floats, one sample
 * in NHWC order. Accepted column types: Spark's image struct (as the {@code image} and {@code idx}
 * sources produce; 8-bit pixels scaled to [0, 1]), an MLlib {@code Vector}, {@code array<float>},
 * {@code array<double>}, or {@code binary} holding the sample in the model's declared input shape
 * (NHWC), either {@code size} unsigned bytes (scaled to [0, 1]) or {@code 4 * size} bytes of
 * little-endian float32. Other values are used as they are, and must number exactly {@code size}.
 */
public final class FeatureReader implements Serializable {
  private static final long serialVersionUID = 1L;

  private enum Kind { IMAGE, VECTOR, FLOAT_ARRAY, DOUBLE_ARRAY, BINARY }

  private final Kind kind;
  private final String column;
  private final int size;
  /** For an image struct: its number of fields and the position of {@code data} among them. */
  private final int imageFields;
  private final int imageData;

  private FeatureReader(Kind kind, String column, int size, int imageFields, int imageData) {
    this.kind = kind;
    this.column = column;
    this.size = size;
    this.imageFields = imageFields;
    this.imageData = imageData;
  }

  /**
   * The reader for column {@code column} of {@code schema}.
   *
   * @throws IllegalArgumentException when the column is missing or of a type the model cannot read
   */
  public static FeatureReader of(StructType schema, String column, int size) {
    if (!java.util.Arrays.asList(schema.fieldNames()).contains(column)) {
      throw new IllegalArgumentException("features column '" + column + "' does not exist; columns are "
          + String.join(", ", schema.fieldNames()));
    }
    DataType t = schema.apply(column).dataType();
    Kind k;
    int fields = 0;
    int data = -1;
    if (t instanceof StructType s && java.util.Arrays.asList(s.fieldNames()).contains("data")
        && java.util.Arrays.asList(s.fieldNames()).contains("nChannels")) {
      k = Kind.IMAGE;
      fields = s.fields().length;
      data = s.fieldIndex("data");
    } else if (t.sameType(SQLDataTypes.VectorType())) {
      k = Kind.VECTOR;
    } else if (t instanceof ArrayType a && a.elementType().equals(DataTypes.FloatType)) {
      k = Kind.FLOAT_ARRAY;
    } else if (t instanceof ArrayType a && a.elementType().equals(DataTypes.DoubleType)) {
      k = Kind.DOUBLE_ARRAY;
    } else if (t.equals(DataTypes.BinaryType)) {
      k = Kind.BINARY;
    } else {
      throw new IllegalArgumentException("features column '" + column + "' has type " + t.simpleString()
          + "; expected an image struct, a Vector, array<float>, array<double> or binary");
    }
    return new FeatureReader(k, column, size, fields, data);
  }

  /** Writes the value of {@code row}'s field {@code index} into {@code dst} at {@code offset}. */
  public void read(Row row, int index, float[] dst, int offset) {
    if (row.isNullAt(index)) {
      throw new IllegalArgumentException("features column '" + column + "' holds a null");
    }
    switch (kind) {
      case IMAGE -> {
        byte[] data = (byte[]) row.getStruct(index).getAs("data");
        check(data.length);
        for (int i = 0; i < size; i++) {
          dst[offset + i] = (data[i] & 0xff) / 255f;
        }
      }
      case VECTOR -> {
        Vector v = (Vector) row.get(index);
        check(v.size());
        // A dense vector hands out its own array; a sparse one is expanded once.
        double[] a = v.toArray();
        for (int i = 0; i < size; i++) {
          dst[offset + i] = (float) a[i];
        }
      }
      case FLOAT_ARRAY, DOUBLE_ARRAY -> {
        java.util.List<Number> a = row.getList(index);
        check(a.size());
        for (int i = 0; i < size; i++) {
          Number v = a.get(i);
          if (v == null) {
            throw new IllegalArgumentException("features column '" + column + "' holds a null at position " + i);
          }
          dst[offset + i] = v.floatValue();
        }
      }
      case BINARY -> binary((byte[]) row.get(index), dst, offset);
    }
    checkFinite(dst, offset);
  }

  /**
   * As {@link #read(Row, int, float[], int)} for Spark's internal row: the value is read where it
   * lies (a vector's values, an array's elements), without building row or vector objects.
   */
  public void read(InternalRow row, int index, float[] dst, int offset) {
    if (row.isNullAt(index)) {
      throw new IllegalArgumentException("features column '" + column + "' holds a null");
    }
    switch (kind) {
      case IMAGE -> {
        byte[] data = row.getStruct(index, imageFields).getBinary(imageData);
        check(data.length);
        for (int i = 0; i < size; i++) {
          dst[offset + i] = (data[i] & 0xff) / 255f;
        }
      }
      case VECTOR -> {
        // VectorUDT's internal form: (type: 0 sparse / 1 dense, size, indices, values).
        InternalRow v = row.getStruct(index, 4);
        ArrayData values = v.getArray(3);
        if (v.getByte(0) == 1) {
          check(values.numElements());
          for (int i = 0; i < size; i++) {
            dst[offset + i] = (float) values.getDouble(i);
          }
        } else {
          check(v.getInt(1));
          ArrayData indices = v.getArray(2);
          java.util.Arrays.fill(dst, offset, offset + size, 0f);
          for (int i = 0; i < indices.numElements(); i++) {
            dst[offset + indices.getInt(i)] = (float) values.getDouble(i);
          }
        }
      }
      case FLOAT_ARRAY, DOUBLE_ARRAY -> {
        ArrayData a = row.getArray(index);
        check(a.numElements());
        for (int i = 0; i < size; i++) {
          if (a.isNullAt(i)) {
            throw new IllegalArgumentException("features column '" + column + "' holds a null at position " + i);
          }
          dst[offset + i] = kind == Kind.FLOAT_ARRAY ? a.getFloat(i) : (float) a.getDouble(i);
        }
      }
      case BINARY -> binary(row.getBinary(index), dst, offset);
    }
    checkFinite(dst, offset);
  }

  private void binary(byte[] data, float[] dst, int offset) {
    if (data.length == size) {
      for (int i = 0; i < size; i++) {
        dst[offset + i] = (data[i] & 0xff) / 255f;
      }
    } else if (data.length == 4L * size) {
      java.nio.ByteBuffer.wrap(data).order(java.nio.ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(dst, offset, size);
    } else {
      String encoded = encodedImageFormat(data);
      throw new IllegalArgumentException("features column '" + column + "' holds " + data.length
          + " bytes in a row, but the model's input needs " + size + " (unsigned bytes) or " + 4L * size
          + " (float32)" + (encoded == null ? "" : "; they are a " + encoded + " file: decode it first (Spark's image"
          + " source reads image files; the score job decodes a binaryFile table's content)"));
    }
  }

  /**
   * The image format whose file {@code b} starts as (PNG, JPEG, GIF or BMP, by their first bytes),
   * or null: what tells an encoded image file from a sample's own bytes.
   */
  public static String encodedImageFormat(byte[] b) {
    if (b == null) {
      return null;
    }
    if (startsWith(b, 0x89, 'P', 'N', 'G')) {
      return "PNG";
    }
    if (startsWith(b, 0xff, 0xd8, 0xff)) {
      return "JPEG";
    }
    if (startsWith(b, 'G', 'I', 'F', '8')) {
      return "GIF";
    }
    return startsWith(b, 'B', 'M') ? "BMP" : null;
  }

  private static boolean startsWith(byte[] b, int... prefix) {
    if (b.length < prefix.length) {
      return false;
    }
    for (int i = 0; i < prefix.length; i++) {
      if ((b[i] & 0xff) != prefix[i]) {
        return false;
      }
    }
    return true;
  }

  private void checkFinite(float[] dst, int offset) {
    for (int i = 0; i < size; i++) {
      if (!Float.isFinite(dst[offset + i])) {
        throw new IllegalArgumentException("features column '" + column + "' holds a non-finite value ("
            + dst[offset + i] + ") at position " + i);
      }
    }
  }

  private void check(int n) {
    if (n != size) {
      throw new IllegalArgumentException("features column '" + column + "' holds " + n
          + " values per row but the model's input needs " + size);
    }
  }
}
