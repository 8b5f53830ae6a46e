package dev.convspark.datasets.spark;

import dev.convspark.datasets.idx.IdxHeader;
import dev.convspark.datasets.idx.IdxReader;
import dev.convspark.datasets.idx.IdxType;
import dev.convspark.datasets.spark.IdxOptions.ImageFormat;
import java.io.Serializable;
import java.nio.ByteBuffer;
import java.util.Arrays;
import org.apache.spark.ml.linalg.SQLDataTypes;
import org.apache.spark.ml.linalg.Vectors;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.catalyst.expressions.UnsafeArrayData;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.Metadata;
import org.apache.spark.sql.types.MetadataBuilder;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.sql.types.UserDefinedType;
import org.apache.spark.unsafe.types.UTF8String;

/**
 * How the records of a read become columns: the schema, and the conversion of one record's bytes
 * (big-endian, as in the file) to a row value. Columns: {@code index} (the record's position in
 * its file), {@code label} when there are labels, then the value column.
 */
final class IdxLayout implements Serializable {
  private static final long serialVersionUID = 1L;

  /** OpenCV type codes of 8-bit images with 1, 3 and 4 channels, as Spark's image source uses. */
  static final int CV_8UC1 = 0;
  static final int CV_8UC3 = 16;
  static final int CV_8UC4 = 24;

  final ImageFormat format;
  final IdxType type;
  final int[] shape;
  final int elements;
  final int recordBytes;
  final boolean hasLabels;
  final boolean scale;
  private final StructType schema;

  private IdxLayout(ImageFormat format, IdxType type, int[] shape, boolean hasLabels, boolean scale) {
    this.format = format;
    this.type = type;
    this.shape = shape;
    int e = 1;
    for (int d : shape) {
      e = Math.multiplyExact(e, d);
    }
    this.elements = e;
    this.recordBytes = Math.multiplyExact(e, type.bytes());
    this.hasLabels = hasLabels;
    this.scale = scale && type == IdxType.UNSIGNED_BYTE;
    this.schema = buildSchema();
  }

  /** The layout for files with header {@code h}, as the options ask. */
  static IdxLayout of(IdxHeader h, IdxOptions options, boolean hasLabels, String file) {
    int[] shape = h.recordShape();
    boolean imageLike = h.type() == IdxType.UNSIGNED_BYTE
        && (shape.length == 2 || (shape.length == 3 && (shape[2] == 1 || shape[2] == 3 || shape[2] == 4)));
    ImageFormat f = options.imageFormat;
    if (f == null) {
      f = imageLike ? ImageFormat.IMAGE : ImageFormat.RAW;
    } else if (f == ImageFormat.IMAGE && !imageLike) {
      throw new IllegalArgumentException("option imageFormat=image needs unsigned-byte records of shape [height, width]"
          + " or [height, width, 1|3|4], but " + file + " holds " + h.type() + " records of shape "
          + Arrays.toString(shape) + " (use imageFormat=array, vector or raw)");
    }
    if ((f == ImageFormat.VECTOR || f == ImageFormat.ARRAY) && shape.length == 0) {
      throw new IllegalArgumentException("option imageFormat=" + f.name().toLowerCase() + " needs records with at least"
          + " one dimension, but " + file + " holds one scalar per record");
    }
    return new IdxLayout(f, h.type(), shape, hasLabels, options.scale);
  }

  StructType schema() {
    return schema;
  }

  private StructType buildSchema() {
    StructField index = DataTypes.createStructField("index", DataTypes.LongType, false);
    StructField label = DataTypes.createStructField("label", DataTypes.IntegerType, false);
    MetadataBuilder mb = new MetadataBuilder().putLongArray("idx.shape", Arrays.stream(shape).asLongStream().toArray())
        .putString("idx.type", type.name().toLowerCase());
    Metadata meta = mb.build();
    StructField value = switch (format) {
      case IMAGE -> DataTypes.createStructField("image", imageType(), false, meta);
      case VECTOR -> DataTypes.createStructField("features", SQLDataTypes.VectorType(), false, meta);
      case ARRAY -> DataTypes.createStructField("features", DataTypes.createArrayType(DataTypes.FloatType, false), false, meta);
      case RAW -> shape.length == 0
          ? DataTypes.createStructField("value", naturalType(), false, meta)
          : DataTypes.createStructField("data", DataTypes.createArrayType(naturalType(), false), false, meta);
    };
    return hasLabels ? new StructType(new StructField[] {index, label, value}) : new StructType(new StructField[] {index, value});
  }

  /** Exactly the schema of the column Spark's {@code image} data source produces. */
  static StructType imageType() {
    return new StructType(new StructField[] {
        DataTypes.createStructField("origin", DataTypes.StringType, true),
        DataTypes.createStructField("height", DataTypes.IntegerType, false),
        DataTypes.createStructField("width", DataTypes.IntegerType, false),
        DataTypes.createStructField("nChannels", DataTypes.IntegerType, false),
        DataTypes.createStructField("mode", DataTypes.IntegerType, false),
        DataTypes.createStructField("data", DataTypes.BinaryType, false)});
  }

  DataType naturalType() {
    return switch (type) {
      case UNSIGNED_BYTE, INT -> DataTypes.IntegerType;
      case BYTE -> DataTypes.ByteType;
      case SHORT -> DataTypes.ShortType;
      case FLOAT -> DataTypes.FloatType;
      case DOUBLE -> DataTypes.DoubleType;
    };
  }

  int channels() {
    return shape.length == 3 ? shape[2] : 1;
  }

  int mode() {
    return switch (channels()) {
      case 3 -> CV_8UC3;
      case 4 -> CV_8UC4;
      default -> CV_8UC1;
    };
  }

  /** Element {@code i} of the record at {@code off} of {@code buf}, as a float (scaled when asked). */
  float floatAt(ByteBuffer buf, int off, int i) {
    return switch (type) {
      case UNSIGNED_BYTE -> scale ? (buf.get(off + i) & 0xff) / 255f : buf.get(off + i) & 0xff;
      case BYTE -> buf.get(off + i);
      case SHORT -> buf.getShort(off + 2 * i);
      case INT -> buf.getInt(off + 4 * i);
      case FLOAT -> buf.getFloat(off + 4 * i);
      case DOUBLE -> (float) buf.getDouble(off + 8 * i);
    };
  }

  /** Reads a label of a labels file of type {@code labelType}. */
  static int label(ByteBuffer buf, int i, IdxType labelType) {
    // Labels files hold integers only (checked when the read is planned), so the value is exact.
    return (int) IdxReader.element(buf, labelType, i);
  }

  /** The value column of one record, as Spark's internal representation. */
  Object value(ByteBuffer buf, int off, UTF8String origin) {
    switch (format) {
      case IMAGE -> {
        byte[] data = new byte[recordBytes];
        buf.get(off, data);
        return new GenericInternalRow(new Object[] {origin, shape[0], shape[1], channels(), mode(), data});
      }
      case VECTOR -> {
        double[] v = new double[elements];
        for (int i = 0; i < elements; i++) {
          v[i] = type == IdxType.DOUBLE ? buf.getDouble(off + 8 * i) : floatAt(buf, off, i);
        }
        @SuppressWarnings("unchecked")
        UserDefinedType<org.apache.spark.ml.linalg.Vector> udt =
            (UserDefinedType<org.apache.spark.ml.linalg.Vector>) SQLDataTypes.VectorType();
        return udt.serialize(Vectors.dense(v));
      }
      case ARRAY -> {
        float[] v = new float[elements];
        for (int i = 0; i < elements; i++) {
          v[i] = floatAt(buf, off, i);
        }
        return UnsafeArrayData.fromPrimitiveArray(v);
      }
      default -> {
        return raw(buf, off);
      }
    }
  }

  private Object raw(ByteBuffer buf, int off) {
    switch (type) {
      case UNSIGNED_BYTE, INT -> {
        int[] v = new int[elements];
        for (int i = 0; i < elements; i++) {
          v[i] = type == IdxType.INT ? buf.getInt(off + 4 * i) : buf.get(off + i) & 0xff;
        }
        return shape.length == 0 ? (Object) v[0] : UnsafeArrayData.fromPrimitiveArray(v);
      }
      case BYTE -> {
        byte[] v = new byte[elements];
        buf.get(off, v);
        return shape.length == 0 ? (Object) v[0] : UnsafeArrayData.fromPrimitiveArray(v);
      }
      case SHORT -> {
        short[] v = new short[elements];
        for (int i = 0; i < elements; i++) {
          v[i] = buf.getShort(off + 2 * i);
        }
        return shape.length == 0 ? (Object) v[0] : UnsafeArrayData.fromPrimitiveArray(v);
      }
      case FLOAT -> {
        float[] v = new float[elements];
        for (int i = 0; i < elements; i++) {
          v[i] = buf.getFloat(off + 4 * i);
        }
        return shape.length == 0 ? (Object) v[0] : UnsafeArrayData.fromPrimitiveArray(v);
      }
      default -> {
        double[] v = new double[elements];
        for (int i = 0; i < elements; i++) {
          v[i] = buf.getDouble(off + 8 * i);
        }
        return shape.length == 0 ? (Object) v[0] : UnsafeArrayData.fromPrimitiveArray(v);
      }
    }
  }

  /** One row: index, label (when there are labels), value. */
  InternalRow row(long index, int label, Object value) {
    return hasLabels ? new GenericInternalRow(new Object[] {index, label, value})
        : new GenericInternalRow(new Object[] {index, value});
  }

  /** Whether this layout can be read as Arrow columnar batches (MLlib vectors cannot). */
  boolean columnar() {
    return format != ImageFormat.VECTOR;
  }

}
