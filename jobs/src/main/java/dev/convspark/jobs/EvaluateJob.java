package dev.convspark.jobs;

import dev.convspark.ml.CnnClassificationModel;
import dev.convspark.ml.training.FeatureReader;
import dev.convspark.ml.CnnClassificationSummary;
import dev.convspark.tensor.Shape;
import dev.convspark.tensor.spec.ModelSpec;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;

/**
 * {@code evaluate}: scores labelled data with a saved model and reports accuracy, per-class
 * precision and recall and the confusion matrix, as text, as {@code metrics.json}, as a heat map
 * ({@code confusion.png}) and as a grid of misclassified images ({@code misclassified.png}).
 */
final class EvaluateJob {

  private EvaluateJob() {
  }

  static String usage() {
    return "usage: evaluate --model DIR --data PATH [--format auto|idx|parquet|image] [--label-col label]\n"
        + "                [--features-col features] [--output DIR] [--max-images 48] [--resize]\n"
        + "  Scores the labelled data with the model saved by train (CnnClassificationModel.save, or a\n"
        + "  PipelineModel's save where its one stage is that model) and\n"
        + "  prints accuracy, per-class precision and recall and the confusion matrix (rows: true class,\n"
        + "  columns: predicted); writes metrics.json, confusion.png and misclassified.png (up to\n"
        + "  --max-images misclassified images, each captioned with its true and predicted class) under\n"
        + "  --output (default data/evaluation). --resize scales images of another size than the model's\n"
        + "  input to it (without it they are refused).\n";
  }

  static int run(String[] args) throws IOException {
    String modelPath = null;
    String data = null;
    String format = "auto";
    boolean resize = false;
    String labelCol = "label";
    String featuresCol = "features";
    Path out = Path.of("data/evaluation");
    int maxImages = 48;
    for (int i = 0; i < args.length; i++) {
      String a = args[i];
      switch (a) {
        case "--model" -> modelPath = Args.value(args, ++i, a);
        case "--data" -> data = Args.value(args, ++i, a);
        case "--format" -> format = JobData.format(Args.value(args, ++i, a));
        case "--resize" -> resize = true;
        case "--label-col" -> labelCol = Args.value(args, ++i, a);
        case "--features-col" -> featuresCol = Args.value(args, ++i, a);
        case "--output" -> out = Path.of(Args.value(args, ++i, a));
        case "--max-images" -> maxImages = Args.intValue(args, ++i, a, 0, 10_000);
        case "-h", "--help" -> {
          System.out.print(usage());
          return 0;
        }
        default -> throw new UsageException("unknown argument '" + a + "' (try --help)");
      }
    }
    if (modelPath == null || data == null) {
      throw new UsageException("--model and --data are required (try --help)");
    }
    SparkSession spark = Jobs.session("convspark evaluate");
    CnnClassificationModel model = JobModel.load(spark, "--model", modelPath);
    Shape in = ModelSpec.parse(model.getOrDefault(model.model())).inputShape();
    JobData.Input input = JobData.load(spark, data, format, featuresCol, in, false, resize);
    Dataset<Row> d = input.rows();
    if (!List.of(d.columns()).contains(labelCol)) {
      throw new UsageException("the data has no label column '" + labelCol + "' (columns: " + String.join(", ", d.columns())
          + "); name it with --label-col");
    }
    // The model's evaluate scores the rows, counts (label, prediction) pairs and checks the labels.
    // The job's figures are counts of rows: a model fitted with weightCol scores a table without
    // that column too.
    CnnClassificationSummary summary = model.setFeaturesCol(input.features()).setLabelCol(labelCol).setWeightCol("")
        .evaluate(d);
    long[][] cm = summary.counts();
    Dataset<Row> scored = summary.predictions().withColumn("_label", functions.col(labelCol).cast("double"));
    Metrics m = Metrics.of(cm);
    System.out.print(m.text());
    Files.createDirectories(out);
    Files.writeString(out.resolve("metrics.json"), Json.write(m.json(data, modelPath)));
    Pictures.confusionMatrix(out.resolve("confusion.png"), cm);
    List<Row> wrong = scored.filter(functions.col("_label").notEqual(functions.col("prediction")))
        .select(input.features(), "_label", "prediction").limit(maxImages).collectAsList();
    int side = (int) Math.round(Math.sqrt(in.size()));
    int ph = in.isImage() ? in.height() : side;
    int pw = in.isImage() ? in.width() : side;
    int ch = in.isImage() ? in.channels() : 1;
    float[][] pixels = new float[wrong.size()][];
    String[] captions = new String[wrong.size()];
    // Whatever the features' type (a vector, an array, an image struct, bytes), read as the model reads it.
    FeatureReader reader = FeatureReader.of(scored.select(input.features()).schema(), input.features(), in.size());
    for (int i = 0; i < wrong.size(); i++) {
      float[] v = new float[in.size()];
      reader.read(wrong.get(i), 0, v, 0);
      pixels[i] = new float[ph * pw];
      for (int p = 0; p < pixels[i].length && p * ch < v.length; p++) {
        // The first channel of each pixel (NHWC), as the picture is gray.
        pixels[i][p] = v[p * ch];
      }
      captions[i] = String.format(Locale.ROOT, "true %d pred %d", (int) wrong.get(i).getDouble(1),
          (int) wrong.get(i).getDouble(2));
    }
    Pictures.imageGrid(out.resolve("misclassified.png"), "misclassified: " + (m.total - m.correct) + " of " + m.total,
        pixels, captions, ph, pw, 8);
    System.out.println("metrics:  " + out.resolve("metrics.json"));
    System.out.println("pictures: " + out.resolve("confusion.png") + ", " + out.resolve("misclassified.png"));
    return 0;
  }

  /** Accuracy, per-class precision and recall of a confusion matrix. */
  record Metrics(long[][] cm, long total, long correct, double[] precision, double[] recall) {

    static Metrics of(long[][] cm) {
      int k = cm.length;
      long total = 0;
      long correct = 0;
      double[] precision = new double[k];
      double[] recall = new double[k];
      for (int c = 0; c < k; c++) {
        long row = 0;
        long col = 0;
        for (int j = 0; j < k; j++) {
          row += cm[c][j];
          col += cm[j][c];
          total += cm[c][j];
        }
        correct += cm[c][c];
        precision[c] = col == 0 ? Double.NaN : (double) cm[c][c] / col;
        recall[c] = row == 0 ? Double.NaN : (double) cm[c][c] / row;
      }
      return new Metrics(cm, total, correct, precision, recall);
    }

    double accuracy() {
      return total == 0 ? Double.NaN : (double) correct / total;
    }

    String text() {
      StringBuilder b = new StringBuilder();
      b.append(String.format(Locale.ROOT, "accuracy %.4f (%d of %d)%n%nclass  precision  recall%n", accuracy(), correct, total));
      for (int c = 0; c < cm.length; c++) {
        b.append(String.format(Locale.ROOT, "%5d  %9.4f  %6.4f%n", c, precision[c], recall[c]));
      }
      b.append("\nconfusion matrix (rows: true class, columns: predicted)\n      ");
      for (int j = 0; j < cm.length; j++) {
        b.append(String.format("%6d", j));
      }
      b.append('\n');
      for (int i = 0; i < cm.length; i++) {
        b.append(String.format("%6d", i));
        for (int j = 0; j < cm.length; j++) {
          b.append(String.format("%6d", cm[i][j]));
        }
        b.append('\n');
      }
      return b.toString();
    }

    Map<String, Object> json(String data, String model) {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("data", data);
      m.put("model", model);
      m.put("accuracy", accuracy());
      m.put("count", total);
      List<Object> p = new ArrayList<>();
      List<Object> r = new ArrayList<>();
      for (int c = 0; c < cm.length; c++) {
        p.add(precision[c]);
        r.add(recall[c]);
      }
      m.put("precision", p);
      m.put("recall", r);
      List<Object> rows = new ArrayList<>();
      for (long[] row : cm) {
        List<Object> l = new ArrayList<>();
        for (long v : row) {
          l.add(v);
        }
        rows.add(l);
      }
      m.put("confusion_matrix", rows);
      return m;
    }
  }
}
