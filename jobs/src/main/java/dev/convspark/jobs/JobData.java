package dev.convspark.jobs;

import dev.convspark.tensor.Shape;
import java.io.IOException;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.ml.linalg.SQLDataTypes;
import org.apache.spark.ml.linalg.Vectors;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.api.java.UDF1;
import org.apache.spark.sql.expressions.UserDefinedFunction;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataTypes;

/**
 * Reads the jobs' inputs: IDX files (the {@code idx} source, features as a vector), a Parquet
 * table (its features column as it is, or, where it holds encoded image files, decoded by
 * {@link EncodedImages}), or a directory of PNG/JPEG images (Spark's {@code image} source). Images are turned
 * into the model's input ({@link #pixels}): for one channel, 1-channel images as they are and 3-
 * and 4-channel (BGR, BGRA) ones as luma (0.299 R + 0.587 G + 0.114 B); for three, blue, green,
 * red; an image of another size
 * than the model's input is refused, naming the file, and so is a file that Spark's image source
 * cannot decode (never dropped in silence). Scoring can keep such files instead, as rows whose
 * {@link #ERROR} column says why ({@code score --handle-invalid keep}). Labels of an image
 * directory come from the name of each image's parent directory ({@code DIR/7/any.png} has label 7)
 * when it is a number.
 */
final class JobData {

  /** The column holding the model's input after {@link #load}. */
  static final String FEATURES = "features";

  /**
   * With invalid inputs kept: why a row's input cannot be scored (its features are then zeros, to be
   * ignored), or null.
   */
  static final String ERROR = "error";

  private JobData() {
  }

  /** The format of {@code path}: {@code idx}, {@code parquet} or {@code image}, or a usage error. */
  static String detect(SparkSession spark, String path) throws IOException {
    Path p = new Path(path);
    FileSystem fs = p.getFileSystem(spark.sparkContext().hadoopConfiguration());
    if (!fs.exists(p)) {
      throw new UsageException("input " + path + " does not exist");
    }
    List<String> names = fs.getFileStatus(p).isDirectory()
        ? Arrays.stream(fs.listStatus(p)).map(FileStatus::getPath).map(Path::getName).toList() : List.of(p.getName());
    if (names.stream().anyMatch(n -> n.endsWith(".parquet"))) {
      return "parquet";
    }
    if (names.stream().anyMatch(n -> n.matches(".*-idx\\d-ubyte(\\.gz)?"))) {
      return "idx";
    }
    if (fs.getFileStatus(p).isDirectory()) {
      return "image";
    }
    throw new UsageException("cannot tell the format of " + path + " (not a Parquet table, an IDX file or a directory"
        + " of images): give --format idx, parquet or image");
  }

  /**
   * What the jobs read: the rows, and the column of them that holds the model's input
   * ({@link #FEATURES}, or a Parquet table's own features column, so that errors name it).
   */
  record Input(Dataset<Row> rows, String features) {
  }

  /**
   * Loads {@code path} with its features (a vector, an image struct, or a Parquet table's features
   * column as it is, its encoded images decoded) and, where the data has them, labels in
   * {@code label}.
   *
   * @param featuresCol the features column of a Parquet table
   * @param input       the model's input shape (images must match it; a flat input of a square
   *                    size, such as softmax regression's 784, reads square images)
   */
  static Input load(SparkSession spark, String path, String format, String featuresCol, Shape input)
      throws IOException {
    return load(spark, path, format, featuresCol, input, false);
  }

  /**
   * As above; with {@code keepInvalid}, an image that cannot be read as the model's input (not
   * decodable, another size, another number of channels) is a row with the reason in
   * {@link #ERROR} instead of a failure, and every format gets that column.
   */
  static Input load(SparkSession spark, String path, String format, String featuresCol, Shape input,
                    boolean keepInvalid) throws IOException {
    int side = (int) Math.round(Math.sqrt(input.size()));
    int h = input.isImage() ? input.height() : side;
    int w = input.isImage() ? input.width() : side;
    int c = input.isImage() ? input.channels() : side * side == input.size() ? 1 : 0;
    String f = format.equals("auto") ? detect(spark, path) : format;
    return switch (f) {
      case "idx" -> new Input(spark.read().format("idx").option("imageFormat", "vector").load(path), FEATURES);
      case "parquet" -> {
        Dataset<Row> d = spark.read().parquet(path);
        List<String> cols = Arrays.asList(d.columns());
        if (!cols.contains(featuresCol)) {
          throw new UsageException("Parquet table " + path + " has no column '" + featuresCol + "' (columns: "
              + String.join(", ", cols) + "); name the features column with --features-col");
        }
        if (d.schema().apply(featuresCol).dataType().equals(DataTypes.BinaryType)
            && EncodedImages.holdsThem(d, featuresCol, input.size())) {
          d = EncodedImages.decode(d, featuresCol, cols.contains("path") ? "path" : null, h, w, c, keepInvalid);
        }
        yield new Input(d, featuresCol);
      }
      case "image" -> new Input(images(spark, path, h, w, c, keepInvalid), FEATURES);
      default -> throw new UsageException("--format must be auto, idx, parquet or image but was '" + format + "'");
    };
  }

  private static Dataset<Row> images(SparkSession spark, String path, int h, int w, int c, boolean keepInvalid) {
    checkImageInput("image directories", c);
    // Spark's image source keeps a file it cannot decode as a row of height -1 (dropInvalid false).
    Dataset<Row> d = spark.read().format("image").option("dropInvalid", false).option("recursiveFileLookup", true)
        .load(path);
    UserDefinedFunction toInput = functions.udf((UDF1<Row, org.apache.spark.ml.linalg.Vector>) img ->
        keepInvalid && problem(img, h, w) != null ? Vectors.zeros(h * w * c) : Vectors.dense(pixels(img, h, w, c)),
        SQLDataTypes.VectorType());
    Column origin = functions.col("image.origin");
    Column digits = functions.regexp_extract(origin, "/(\\d+)/[^/]+$", 1);
    List<Column> cols = new java.util.ArrayList<>(List.of(origin.as("origin"),
        functions.when(digits.notEqual(""), digits.cast("double")).as("label"),
        toInput.apply(functions.col("image")).as(FEATURES)));
    if (keepInvalid) {
      UserDefinedFunction why = functions.udf((UDF1<Row, String>) img -> problem(img, h, w),
          org.apache.spark.sql.types.DataTypes.StringType);
      cols.add(why.apply(functions.col("image")).as(ERROR));
    }
    return d.select(cols.toArray(new Column[0]));
  }

  /** Why {@code img} cannot be the model's {@code h x w} input, or null when it can. */
  static String problem(Row img, int h, int w) {
    String origin = img.getAs("origin");
    int ih = img.<Integer>getAs("height");
    int iw = img.<Integer>getAs("width");
    int ch = img.<Integer>getAs("nChannels");
    if (ih < 0 || iw < 0 || ch < 0) {
      return "image " + origin + " could not be decoded (not an image Spark's image source reads: PNG, JPEG, BMP or"
          + " GIF, or a truncated one)";
    }
    if (ih != h || iw != w) {
      return "image " + origin + " is " + iw + "x" + ih + " pixels, but the model reads " + w + "x" + h
          + "; resize the images first";
    }
    if (ch != 1 && ch != 3 && ch != 4) {
      return "image " + origin + " has " + ch + " channels; expected 1 (gray), 3 or 4 (color)";
    }
    return null;
  }

  /**
   * One image struct as the model's {@code h x w x c} input, values in [0, 1]: with one channel
   * gray (colour images as luma), with three blue, green, red (the order of Spark's image struct,
   * so that a model trained on Spark's {@code image} rows reads the same images alike; gray images
   * in all three).
   */
  static double[] pixels(Row img, int h, int w, int c) {
    String problem = problem(img, h, w);
    if (problem != null) {
      throw new IllegalArgumentException(problem);
    }
    int ch = img.<Integer>getAs("nChannels");
    byte[] data = img.getAs("data");
    double[] out = new double[h * w * c];
    for (int i = 0; i < h * w; i++) {
      if (ch == 1) {
        putGray(out, i, c, data[i] & 0xff);
      } else {
        // Spark's image source stores BGR(A).
        putColour(out, i, c, data[i * ch] & 0xff, data[i * ch + 1] & 0xff, data[i * ch + 2] & 0xff);
      }
    }
    return out;
  }

  /** Pixel {@code i} of a gray image, value {@code v} (0 to 255), into {@code out} of {@code c} channels. */
  static void putGray(double[] out, int i, int c, int v) {
    for (int k = 0; k < c; k++) {
      out[i * c + k] = v / 255.0;
    }
  }

  /** Pixel {@code i} of a colour image into {@code out}: its luma with one channel, else blue, green, red. */
  static void putColour(double[] out, int i, int c, int b, int g, int r) {
    if (c == 1) {
      out[i] = (0.299 * r + 0.587 * g + 0.114 * b) / 255.0;
    } else {
      out[i * 3] = b / 255.0;
      out[i * 3 + 1] = g / 255.0;
      out[i * 3 + 2] = r / 255.0;
    }
  }

  /** The model's input channels as images give them (1 or 3), or a usage error for another input. */
  static void checkImageInput(String what, int c) {
    if (c != 1 && c != 3) {
      throw new UsageException(what + " are read as h x w images of 1 channel (gray) or 3 (blue, green, red), but the"
          + " model's input is " + (c == 0 ? "not an image" : c + " channels"));
    }
  }

  /** The format name as given, checked. */
  static String format(String s) {
    String f = s.toLowerCase(Locale.ROOT);
    if (!List.of("auto", "idx", "parquet", "image").contains(f)) {
      throw new UsageException("--format must be auto, idx, parquet or image but was '" + s + "'");
    }
    return f;
  }
}
