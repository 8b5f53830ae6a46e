package dev.convspark.jobs;

import dev.convspark.ml.feature.ImagePixels;
import dev.convspark.ml.training.FeatureReader;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.List;
import org.apache.spark.ml.linalg.SQLDataTypes;
import org.apache.spark.ml.linalg.Vectors;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF2;
import org.apache.spark.sql.expressions.UserDefinedFunction;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

/**
 * Images in a column turned into the model's input as {@link ImagePixels} says, for the jobs: a
 * table's column of encoded image files (PNG, JPEG, GIF or BMP bytes, as Spark's {@code binaryFile}
 * source reads them into {@code content}), or an image directory's structs ({@link JobData}). An
 * image that cannot be read fails naming it (a file by the row's {@code path} where the table has
 * one); with {@code --handle-invalid keep} it is a row whose {@link JobData#ERROR} says why.
 */
final class EncodedImages {

  private EncodedImages() {
  }

  /** One value of the input column (and the row's path, or null) to the model's input or why not. */
  interface Decoder extends Serializable {
    ImagePixels.Decoded apply(Object value, String where);
  }

  /**
   * Whether {@code column} (binary) holds encoded images rather than the model's own binary input
   * ({@code size} unsigned bytes or {@code 4 * size} bytes of float32, in its declared shape): its
   * first value that is not null starts as a PNG, JPEG, GIF or BMP file does, or has neither of those
   * two lengths (then it is taken as an image, and one that does not decode fails naming its row).
   */
  static boolean holdsThem(Dataset<Row> d, String column, int size) {
    List<Row> first = d.select(column).where(functions.col(column).isNotNull()).limit(1).collectAsList();
    if (first.isEmpty()) {
      return false;
    }
    byte[] b = (byte[]) first.get(0).get(0);
    return FeatureReader.encodedImageFormat(b) != null || (b.length != size && b.length != 4L * size);
  }

  /**
   * {@code d} with {@code column}'s encoded files decoded in place into the model's input.
   *
   * @param pathColumn the column naming each row's file in messages, or null
   */
  static Dataset<Row> decode(Dataset<Row> d, String column, String pathColumn, ImagePixels px,
                             boolean keepInvalid) {
    return decoded(d, column, column, pathColumn, px, keepInvalid, (value, where) -> px.fromFile((byte[]) value,
        where == null ? "an image of column '" + column + "'" : "image " + where + " (column '" + column + "')"));
  }

  /**
   * {@code d} with {@code input} replaced by {@code output}, the model's input that {@code decoder}
   * makes of each value and of the row's {@code pathColumn} (null: none), zeros where it cannot,
   * with the reason in {@link JobData#ERROR} when {@code keepInvalid}, else a failure saying it.
   */
  static Dataset<Row> decoded(Dataset<Row> d, String input, String output, String pathColumn, ImagePixels px,
                              boolean keepInvalid, Decoder decoder) {
    Column path = pathColumn == null ? functions.lit(null).cast(DataTypes.StringType) : functions.col(pathColumn);
    // One decode a row: the values and the reason together, taken apart by a second projection.
    StructType result = new StructType().add("values", SQLDataTypes.VectorType()).add("problem", DataTypes.StringType);
    int size = px.size();
    UserDefinedFunction udf = functions.udf((UDF2<Object, String, Row>) (value, where) -> {
      ImagePixels.Decoded r = decoder.apply(value, where);
      if (r.problem() != null && !keepInvalid) {
        throw new IllegalArgumentException(r.problem());
      }
      return RowFactory.create(Vectors.dense(r.problem() == null ? r.pixels() : new double[size]), r.problem());
    }, result);
    String tmp = "__decoded";
    Dataset<Row> withDecoded = d.withColumn(tmp, udf.apply(functions.col(input), path));
    List<Column> cols = new ArrayList<>();
    for (String name : d.columns()) {
      if (name.equals(input)) {
        cols.add(functions.col(tmp + ".values").as(output));
      } else {
        cols.add(functions.col(name));
      }
    }
    if (keepInvalid) {
      cols.add(functions.col(tmp + ".problem").as(JobData.ERROR));
    }
    return withDecoded.select(cols.toArray(new Column[0]));
  }
}
