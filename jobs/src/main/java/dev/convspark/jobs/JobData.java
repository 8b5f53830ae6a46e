package dev.convspark.jobs;

import dev.convspark.ml.feature.ImagePixels;
import dev.convspark.tensor.Shape;
import java.io.IOException;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataTypes;

/**
 * Reads the jobs' inputs: IDX files (the {@code idx} source, features as a vector), a Parquet
 * table (its features column as it is, or, where it holds encoded image files, decoded by
 * {@link EncodedImages}), or a directory of PNG/JPEG images (Spark's {@code image} source). Images are turned
 * into the model's input as {@link ImagePixels} says (gray or blue, green, red; with
 * {@code --resize} scaled to its size); an image of another size
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
    return load(spark, path, format, featuresCol, input, false, false);
  }

  /**
   * As above; with {@code keepInvalid}, an image that cannot be read as the model's input (not
   * decodable, another size, another number of channels) is a row with the reason in
   * {@link #ERROR} instead of a failure, and every format gets that column; with {@code resize},
   * images of another size are scaled to the model's ({@link ImagePixels}).
   */
  static Input load(SparkSession spark, String path, String format, String featuresCol, Shape input,
                    boolean keepInvalid, boolean resize) throws IOException {
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
          d = EncodedImages.decode(d, featuresCol, cols.contains("path") ? "path" : null,
              pixels("image tables", h, w, c, resize), keepInvalid);
        }
        yield new Input(d, featuresCol);
      }
      case "image" -> new Input(images(spark, path, pixels("image directories", h, w, c, resize), keepInvalid),
          FEATURES);
      default -> throw new UsageException("--format must be auto, idx, parquet or image but was '" + format + "'");
    };
  }

  /** How images become the model's input of {@code h x w x c}; a usage error where they cannot ({@code what}). */
  static ImagePixels pixels(String what, int h, int w, int c, boolean resize) {
    if (c != 1 && c != 3) {
      throw new UsageException(what + " are read as h x w images of 1 channel (gray) or 3 (blue, green, red), but the"
          + " model's input is " + (c == 0 ? "not an image" : c + " channels"));
    }
    return new ImagePixels(h, w, c, resize, "give --resize");
  }

  private static Dataset<Row> images(SparkSession spark, String path, ImagePixels px, boolean keepInvalid) {
    // Spark's image source keeps a file it cannot decode as a row of height -1 (dropInvalid false).
    Dataset<Row> d = spark.read().format("image").option("dropInvalid", false).option("recursiveFileLookup", true)
        .load(path);
    Column origin = functions.col("image.origin");
    Column digits = functions.regexp_extract(origin, "/(\\d+)/[^/]+$", 1);
    Dataset<Row> rows = d.select(origin.as("origin"),
        functions.when(digits.notEqual(""), digits.cast("double")).as("label"), functions.col("image"));
    return EncodedImages.decoded(rows, "image", FEATURES, null, px, keepInvalid,
        (value, where) -> px.fromStruct((Row) value));
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
