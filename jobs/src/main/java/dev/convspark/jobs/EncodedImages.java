package dev.convspark.jobs;

import dev.convspark.ml.training.FeatureReader;
import java.awt.color.ColorSpace;
import java.awt.image.BufferedImage;
import java.awt.image.Raster;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import javax.imageio.ImageIO;
import org.apache.spark.ml.linalg.SQLDataTypes;
import org.apache.spark.ml.linalg.Vector;
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
 * A table's column of encoded image files (PNG, JPEG, GIF or BMP bytes, as Spark's
 * {@code binaryFile} source reads them into {@code content}) turned into the model's input, as
 * {@link JobData} turns an image directory: for a 1-channel model gray images as they are and
 * colour ones as luma (0.299 R + 0.587 G + 0.114 B), for a 3-channel one blue, green, red; values
 * in [0, 1]. An image that cannot be decoded, or of another size than the model's input, fails
 * naming the column and the row's {@code path} where the table has one; with
 * {@code --handle-invalid keep} it is a row whose {@link JobData#ERROR} says why.
 */
final class EncodedImages {

  private EncodedImages() {
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
   * {@code d} with {@code column} decoded in place into a vector of the model's input; with
   * {@code keepInvalid} a column {@link JobData#ERROR} too.
   *
   * @param pathColumn the column naming each row's file in messages, or null
   */
  static Dataset<Row> decode(Dataset<Row> d, String column, String pathColumn, ImageInput in,
                             boolean keepInvalid) {
    in.check("image tables");
    Column path = pathColumn == null ? functions.lit(null).cast(DataTypes.StringType) : functions.col(pathColumn);
    // One decode a row: the pixels and the reason together, taken apart by a second projection.
    StructType result = new StructType().add("pixels", SQLDataTypes.VectorType()).add("problem", DataTypes.StringType);
    UserDefinedFunction decoder = functions.udf((UDF2<byte[], String, Row>) (bytes, origin) -> {
      Decoded r = decode(bytes, describe(column, origin), in);
      if (r.problem() != null && !keepInvalid) {
        throw new IllegalArgumentException(r.problem());
      }
      return RowFactory.create(Vectors.dense(r.problem() == null ? r.pixels() : new double[in.size()]), r.problem());
    }, result);
    String tmp = "__decoded";
    Dataset<Row> withDecoded = d.withColumn(tmp, decoder.apply(functions.col(column), path));
    List<Column> cols = new ArrayList<>();
    for (String name : d.columns()) {
      cols.add(name.equals(column) ? functions.col(tmp + ".pixels").as(column) : functions.col(name));
    }
    if (keepInvalid) {
      cols.add(functions.col(tmp + ".problem").as(JobData.ERROR));
    }
    return withDecoded.select(cols.toArray(new Column[0]));
  }

  private static String describe(String column, String origin) {
    return origin == null ? "an image of column '" + column + "'" : "image " + origin + " (column '" + column + "')";
  }

  /** The pixels of one image, or why it cannot be the model's input. */
  record Decoded(double[] pixels, String problem) {
  }

  /**
   * Decodes {@code bytes} ({@code what}, for messages) into the model's input {@code in}, as
   * {@link JobData#pixels} turns an image struct into it.
   */
  static Decoded decode(byte[] bytes, String what, ImageInput in) {
    if (bytes == null) {
      return new Decoded(null, what + " is null");
    }
    BufferedImage img;
    try {
      img = ImageIO.read(new ByteArrayInputStream(bytes));
    } catch (IOException | RuntimeException e) {
      img = null;
    }
    if (img == null) {
      return new Decoded(null, what + " could not be decoded (" + bytes.length + " bytes, not a PNG, JPEG, GIF or BMP"
          + " file ImageIO reads, or a truncated one)");
    }
    int ih = img.getHeight();
    int iw = img.getWidth();
    String problem = in.sizeProblem(what, iw, ih);
    if (problem != null) {
      return new Decoded(null, problem);
    }
    double[] src = new double[ih * iw * in.c()];
    Raster raster = img.getRaster();
    if (img.getColorModel().getColorSpace().getType() == ColorSpace.TYPE_GRAY && raster.getNumBands() == 1) {
      // Gray samples as they are (Spark's image source does the same), more than 8 bits scaled to 8.
      int shift = Math.max(0, raster.getSampleModel().getSampleSize(0) - 8);
      for (int y = 0; y < ih; y++) {
        for (int x = 0; x < iw; x++) {
          in.putGray(src, y * iw + x, (raster.getSample(x, y, 0) >> shift) & 0xff);
        }
      }
    } else {
      for (int y = 0; y < ih; y++) {
        for (int x = 0; x < iw; x++) {
          int rgb = img.getRGB(x, y);
          in.putColour(src, y * iw + x, rgb & 0xff, (rgb >> 8) & 0xff, (rgb >> 16) & 0xff);
        }
      }
    }
    return new Decoded(in.fit(src, ih, iw), null);
  }
}
