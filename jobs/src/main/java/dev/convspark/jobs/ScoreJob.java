package dev.convspark.jobs;

import dev.convspark.ml.CnnClassificationModel;
import dev.convspark.ml.CnnFeaturizer;
import dev.convspark.tensor.Shape;
import dev.convspark.tensor.spec.ModelSpec;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;

/**
 * {@code score}: batch-scores an image table with a saved model and writes Parquet or CSV with
 * the input's own columns (ids, origins, labels; not the features) plus {@code prediction} and
 * {@code probability}. Spark streams it partition by partition, scoring in batches, so memory
 * does not grow with the table.
 */
final class ScoreJob {

  private ScoreJob() {
  }

  static String usage() {
    return "usage: score --model DIR --data PATH --output PATH [--format auto|idx|parquet|image]\n"
        + "             [--output-format parquet|csv] [--features-col features] [--handle-invalid error|keep]\n"
        + "             [--overwrite] [--resize] [--layer NAME|auto]\n"
        + "  --model: the model saved by train (CnnClassificationModel.save, or a PipelineModel's save\n"
        + "  where its one stage is that model).\n"
        + "  Writes the input's columns (without the features) plus prediction (the 0-based class, a\n"
        + "  double) and probability (a vector in Parquet; in CSV the probabilities joined by ';').\n"
        + "  Image directories: for a 1-channel model gray images are used as they are, colour ones\n"
        + "  converted to grayscale; a 3-channel model reads blue, green, red; --resize scales images of\n"
        + "  another size to the model's input (each axis on its own). A Parquet table's binary\n"
        + "  --features-col of encoded image files (binaryFile's content) is decoded as a directory's\n"
        + "  images are, each named by its path column. An image that cannot be scored (not decodable,\n"
        + "  another size than the model's input without --resize, another number of channels) fails the\n"
        + "  job naming the file (--handle-invalid error, the default), or with --handle-invalid keep is a\n"
        + "  row whose prediction and probability are null and whose error column says why; the last line\n"
        + "  counts those rows. IDX and Parquet inputs fail naming the file or the column.\n"
        + "  --layer NAME writes the output of the network's layer NAME (conv1, pool1, dense1, ...; auto: the\n"
        + "  layer before the last dense layer) as column cnnFeatures instead of prediction and probability:\n"
        + "  features for another model (CnnClassificationModel.featurizer).\n";
  }

  static int run(String[] args) throws IOException {
    String modelPath = null;
    String data = null;
    String output = null;
    String format = "auto";
    boolean resize = false;
    String outFormat = "parquet";
    String featuresCol = "features";
    boolean overwrite = false;
    boolean keepInvalid = false;
    String layer = null;
    for (int i = 0; i < args.length; i++) {
      String a = args[i];
      switch (a) {
        case "--model" -> modelPath = Args.value(args, ++i, a);
        case "--data" -> data = Args.value(args, ++i, a);
        case "--output" -> output = Args.value(args, ++i, a);
        case "--format" -> format = JobData.format(Args.value(args, ++i, a));
        case "--resize" -> resize = true;
        case "--output-format" -> {
          outFormat = Args.value(args, ++i, a).toLowerCase(Locale.ROOT);
          if (!outFormat.equals("parquet") && !outFormat.equals("csv")) {
            throw new UsageException("--output-format must be parquet or csv but was '" + args[i] + "'");
          }
        }
        case "--features-col" -> featuresCol = Args.value(args, ++i, a);
        case "--overwrite" -> overwrite = true;
        case "--layer" -> layer = Args.value(args, ++i, a);
        case "--handle-invalid" -> {
          String h = Args.value(args, ++i, a).toLowerCase(Locale.ROOT);
          if (!h.equals("error") && !h.equals("keep")) {
            throw new UsageException("--handle-invalid must be error or keep but was '" + args[i] + "'");
          }
          keepInvalid = h.equals("keep");
        }
        case "-h", "--help" -> {
          System.out.print(usage());
          return 0;
        }
        default -> throw new UsageException("unknown argument '" + a + "' (try --help)");
      }
    }
    if (modelPath == null || data == null || output == null) {
      throw new UsageException("--model, --data and --output are required (try --help)");
    }
    SparkSession spark = Jobs.session("convspark score");
    org.apache.hadoop.fs.Path target = new org.apache.hadoop.fs.Path(output);
    if (!overwrite && target.getFileSystem(spark.sparkContext().hadoopConfiguration()).exists(target)) {
      throw new UsageException("--output " + output + " exists already: give --overwrite to replace it, or another"
          + " --output");
    }
    CnnClassificationModel model = JobModel.load(spark, "--model", modelPath);
    Shape in = ModelSpec.parse(model.getOrDefault(model.model())).inputShape();
    JobData.Input input = JobData.load(spark, data, format, featuresCol, in, keepInvalid, resize);
    Dataset<Row> d = input.rows();
    boolean errors = List.of(d.columns()).contains(JobData.ERROR);
    Dataset<Row> scored;
    String what = "scored";
    if (layer == null) {
      scored = model.setFeaturesCol(input.features()).transform(d);
    } else {
      try {
        CnnFeaturizer f = layer.equals("auto") ? model.featurizer() : model.featurizer(layer);
        scored = f.setInputCol(input.features()).transform(d);
        what = String.format(Locale.ROOT, "wrote layer %s's output (cnnFeatures, %,d values) for", f.getOrDefault(f.layer()),
            f.numFeatures());
      } catch (IllegalArgumentException e) {
        throw new UsageException("--layer " + layer + ": " + e.getMessage());
      }
    }
    List<Column> keep = new ArrayList<>();
    for (String c : d.columns()) {
      if (!c.equals(input.features()) && !c.equals(JobData.ERROR)) {
        keep.add(functions.col(c));
      }
    }
    // A kept invalid row was scored on zeros: its prediction and probability are nulled.
    Column valid = errors ? functions.col(JobData.ERROR).isNull() : functions.lit(true);
    if (layer == null) {
      keep.add(functions.when(valid, functions.col("prediction")).as("prediction"));
    }
    String vectors = layer == null ? "probability" : "cnnFeatures";
    Column vector = functions.col(vectors);
    if (outFormat.equals("csv")) {
      vector = functions.concat_ws(";", org.apache.spark.ml.functions.vector_to_array(vector, "float64")
          .cast("array<string>"));
    }
    keep.add(functions.when(valid, vector).as(vectors));
    if (errors) {
      keep.add(functions.col(JobData.ERROR));
    }
    scored.select(keep.toArray(new Column[0])).write().mode(overwrite ? "overwrite" : "errorifexists")
        .option("header", "true").format(outFormat).save(output);
    Dataset<Row> written = spark.read().format(outFormat).option("header", "true").load(output);
    long rows = written.count();
    if (errors) {
      long invalid = written.filter(functions.col(JobData.ERROR).isNotNull()).count();
      System.out.printf(Locale.ROOT, "%s %,d rows into %s (%s); %,d could not be scored (%s null, the"
          + " error column says why)%n", what, rows, output, outFormat, invalid, layer == null ? "prediction" : "cnnFeatures");
    } else {
      System.out.printf(Locale.ROOT, "%s %,d rows into %s (%s)%n", what, rows, output, outFormat);
    }
    return 0;
  }
}
