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
 * into the model's input as {@link ImageInput} says (gray or blue, green, red; with
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
   * images of another size are scaled to the model's ({@link ImageInput}).
   */
  static Input load(SparkSession spark, String path, String format, String featuresCol, Shape input,
                    boolean keepInvalid, boolean resize) throws IOException {
    ImageInput in = ImageInput.of(input, resize);
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
          d = EncodedImages.decode(d, featuresCol, cols.contains("path") ? "path" : null, in, keepInvalid);
        }
        yield new Input(d, featuresCol);
      }
      case "image" -> new Input(images(spark, path, in, keepInvalid), FEATURES);
      default -> throw new UsageException("--format must be auto, idx, parquet or image but was '" + format + "'");
    };
  }

  private static Dataset<Row> images(SparkSession spark, String path, ImageInput in, boolean keepInvalid) {
    in.check("image directories");
    // Spark's image source keeps a file it cannot decode as a row of height -1 (dropInvalid false).
    Dataset<Row> d = spark.read().format("image").option("dropInvalid", false).option("recursiveFileLookup", true)
        .load(path);
    UserDefinedFunction toInput = functions.udf((UDF1<Row, org.apache.spark.ml.linalg.Vector>) img ->
        keepInvalid && problem(img, in) != null ? Vectors.zeros(in.size()) : Vectors.dense(pixels(img, in)),
        SQLDataTypes.VectorType());
    Column origin = functions.col("image.origin");
    Column digits = functions.regexp_extract(origin, "/(\\d+)/[^/]+$", 1);
    List<Column> cols = new java.util.ArrayList<>(List.of(origin.as("origin"),
        functions.when(digits.notEqual(""), digits.cast("double")).as("label"),
        toInput.apply(functions.col("image")).as(FEATURES)));
    if (keepInvalid) {
      UserDefinedFunction why = functions.udf((UDF1<Row, String>) img -> problem(img, in),
          org.apache.spark.sql.types.DataTypes.StringType);
      cols.add(why.apply(functions.col("image")).as(ERROR));
    }
    return d.select(cols.toArray(new Column[0]));
  }

  /** Why {@code img} cannot be the model's input {@code in}, or null when it can. */
  static String problem(Row img, ImageInput in) {
    String origin = img.getAs("origin");
    int ih = img.<Integer>getAs("height");
    int iw = img.<Integer>getAs("width");
    int ch = img.<Integer>getAs("nChannels");
    if (ih < 0 || iw < 0 || ch < 0) {
      return "image " + origin + " could not be decoded (not an image Spark's image source reads: PNG, JPEG, BMP or"
          + " GIF, or a truncated one)";
    }
    if (ch != 1 && ch != 3 && ch != 4) {
      return "image " + origin + " has " + ch + " channels; expected 1 (gray), 3 or 4 (color)";
    }
    return in.sizeProblem("image " + origin, iw, ih);
  }

  /** One image struct (gray, BGR or BGRA bytes) as the model's input {@code in}. */
  static double[] pixels(Row img, ImageInput in) {
    String problem = problem(img, in);
    if (problem != null) {
      throw new IllegalArgumentException(problem);
    }
    int ih = img.<Integer>getAs("height");
    int iw = img.<Integer>getAs("width");
    int ch = img.<Integer>getAs("nChannels");
    byte[] data = img.getAs("data");
    double[] src = new double[ih * iw * in.c()];
    for (int i = 0; i < ih * iw; i++) {
      if (ch == 1) {
        in.putGray(src, i, data[i] & 0xff);
      } else {
        in.putColour(src, i, data[i * ch] & 0xff, data[i * ch + 1] & 0xff, data[i * ch + 2] & 0xff);
      }
    }
    return in.fit(src, ih, iw);
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
