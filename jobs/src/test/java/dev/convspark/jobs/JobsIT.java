package dev.convspark.jobs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.datasets.mnist.MnistArrays;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.imageio.ImageIO;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * train, evaluate and score end to end through Spark's own {@code SparkSubmit} on
 * {@code local[2]}, on the real MNIST files: every output exists and parses, and the model is well
 * above chance.
 */
class JobsIT {

  private static final Path MNIST = MnistArrays.defaultDir().toAbsolutePath();
  private static final List<String> LOCAL = List.of("--master", "local[2]");

  @TempDir
  Path tmp;

  private static SubmitProcess.Result ok(SubmitProcess.Result r) {
    assertEquals(0, r.exitCode(), r.output());
    return r;
  }

  private static double number(String text, String regex) {
    Matcher m = Pattern.compile(regex).matcher(text);
    assertTrue(m.find(), "no match for " + regex + " in\n" + text);
    return Double.parseDouble(m.group(1));
  }

  @Test
  void trainEvaluateAndScoreThroughSparkSubmit() throws Exception {
    Path run = tmp.resolve("run");
    String train = MNIST.resolve("train-images-idx3-ubyte").toString();
    String test = MNIST.resolve("t10k-images-idx3-ubyte").toString();
    SubmitProcess.Result t = ok(SubmitProcess.run(tmp, LOCAL, "train", "--data", train, "--validation", test,
        "--model", "softmax-regression", "--optimizer", "sgd", "--learning-rate", "0.5", "--keep-prob", "1",
        "--max-iter", "300", "--num-workers", "2", "--seed", "5", "--validation-interval", "100",
        "--output", run.toString()));
    assertTrue(t.output().contains("step 300/300"), "progress lines: " + t.output());
    assertTrue(t.output().contains("validation loss"), "progress lines show the validation: " + t.output());
    String summary = Files.readString(run.resolve("summary.json"));
    double valAcc = number(summary, "\"validation_accuracy\": ([0-9.]+)");
    assertTrue(valAcc > 0.85, summary);
    assertEquals(300, (int) number(summary, "\"steps\": (\\d+)"));
    assertEquals(300, (int) number(summary, "\"weights_step\": (\\d+)"));
    assertTrue(number(summary, "\"step_seconds\": ([0-9.E-]+)") > 0, summary);
    List<String> csv = Files.readAllLines(run.resolve("summary.csv"));
    assertEquals(301, csv.size());
    assertEquals("step,loss,accuracy,validation_loss,validation_accuracy", csv.get(0));
    assertTrue(csv.get(1).endsWith(",,"), "step 1 was not evaluated: " + csv.get(1));
    assertTrue(csv.get(100).startsWith("100,") && !csv.get(100).endsWith(",,"), csv.get(100));
    assertEquals(valAcc, Double.parseDouble(csv.get(300).split(",")[4]), 1e-6, csv.get(300));
    for (String png : List.of("loss.png", "accuracy.png")) {
      BufferedImage img = ImageIO.read(run.resolve(png).toFile());
      assertEquals(800, img.getWidth(), png);
      assertEquals(500, img.getHeight(), png);
    }
    assertTrue(Files.exists(run.resolve("model/metadata")), "MLlib metadata");

    Path eval = tmp.resolve("eval");
    SubmitProcess.Result e = ok(SubmitProcess.run(tmp, LOCAL, "evaluate", "--model", run.resolve("model").toString(),
        "--data", test, "--output", eval.toString()));
    double acc = number(e.output(), "accuracy ([0-9.]+) \\(");
    assertTrue(acc > 0.85, e.output());
    assertEquals(valAcc, acc, 1e-4, "the validation while training scored the same rows with the same weights");
    String metrics = Files.readString(eval.resolve("metrics.json"));
    assertEquals(acc, number(metrics, "\"accuracy\": ([0-9.]+)"), 1e-4);
    assertTrue(metrics.contains("\"confusion_matrix\": [["), metrics);
    assertTrue(ImageIO.read(eval.resolve("confusion.png").toFile()).getWidth() > 300);
    assertTrue(ImageIO.read(eval.resolve("misclassified.png").toFile()).getHeight() > 56);

    // Score IDX files to Parquet, and a directory of PNGs (gray and color) to CSV.
    Path scores = tmp.resolve("scores.parquet");
    SubmitProcess.Result s = ok(SubmitProcess.run(tmp, LOCAL, "score", "--model", run.resolve("model").toString(),
        "--data", test, "--output", scores.toString()));
    assertTrue(s.output().contains("scored 10,000 rows"), s.output());
    Path images = tmp.resolve("images");
    MnistArrays digits = MnistArrays.load(MNIST, true);
    for (int i = 0; i < 6; i++) {
      int label = digits.labels()[i];
      BufferedImage img = new BufferedImage(28, 28, i % 2 == 0 ? BufferedImage.TYPE_BYTE_GRAY : BufferedImage.TYPE_3BYTE_BGR);
      for (int p = 0; p < 784; p++) {
        int v = Math.round(digits.images()[i * 784 + p] * 255);
        img.setRGB(p % 28, p / 28, v << 16 | v << 8 | v);
      }
      Files.createDirectories(images.resolve(Integer.toString(label)));
      ImageIO.write(img, "png", images.resolve(label + "/" + i + ".png").toFile());
    }
    Path csv2 = tmp.resolve("images.csv");
    s = ok(SubmitProcess.run(tmp, LOCAL, "score", "--model", run.resolve("model").toString(), "--data", images.toString(),
        "--output", csv2.toString(), "--output-format", "csv"));
    assertTrue(s.output().contains("scored 6 rows"), s.output());

    SparkSession spark = SparkSession.builder().master("local[1]").config("spark.ui.enabled", "false").getOrCreate();
    try {
      Dataset<Row> p = spark.read().parquet(scores.toString());
      assertEquals(List.of("index", "label", "prediction", "probability"), List.of(p.columns()));
      long right = p.filter("cast(label as double) = prediction").count();
      assertEquals(acc, right / 10_000.0, 1e-4, "score and evaluate agree");
      Dataset<Row> c = spark.read().option("header", "true").csv(csv2.toString());
      assertEquals(List.of("origin", "label", "prediction", "probability"), List.of(c.columns()));
      assertTrue(c.filter("cast(label as double) = cast(prediction as double)").count() >= 4,
          "gray and color PNGs are mostly right");
      for (Row r : c.collectAsList()) {
        assertEquals(10, r.getString(3).split(";").length);
      }
    } finally {
      spark.stop();
    }

    // An image of the wrong size is refused, naming it.
    Path big = tmp.resolve("big/3");
    Files.createDirectories(big);
    ImageIO.write(new BufferedImage(32, 30, BufferedImage.TYPE_BYTE_GRAY), "png", big.resolve("odd.png").toFile());
    SubmitProcess.Result bad = SubmitProcess.run(tmp, LOCAL, "score", "--model", run.resolve("model").toString(),
        "--data", tmp.resolve("big").toString(), "--output", tmp.resolve("bad.csv").toString());
    assertEquals(1, bad.exitCode(), bad.output());
    assertTrue(bad.output().contains("odd.png is 32x30 pixels, but the model reads 28x28"), bad.output());

    // A file that does not decode is never dropped in silence: the job fails naming it, or, with
    // --handle-invalid keep, it is a row with a null prediction and the reason, counted at the end.
    Path broken = tmp.resolve("broken/5");
    Files.createDirectories(broken);
    Path good = Files.list(images.resolve(Integer.toString(digits.labels()[0]))).findFirst().orElseThrow();
    byte[] png = Files.readAllBytes(good);
    Files.write(broken.resolve("good.png"), png);
    Files.write(broken.resolve("truncated.png"), java.util.Arrays.copyOf(png, png.length / 2));
    bad = SubmitProcess.run(tmp, LOCAL, "score", "--model", run.resolve("model").toString(),
        "--data", tmp.resolve("broken").toString(), "--output", tmp.resolve("broken-failed.csv").toString());
    assertEquals(1, bad.exitCode(), bad.output());
    assertTrue(bad.output().contains("truncated.png could not be decoded"), bad.output());
    Path kept = tmp.resolve("broken.csv");
    s = ok(SubmitProcess.run(tmp, LOCAL, "score", "--model", run.resolve("model").toString(), "--data",
        tmp.resolve("broken").toString(), "--output", kept.toString(), "--output-format", "csv", "--handle-invalid", "keep"));
    assertTrue(s.output().contains("scored 2 rows") && s.output().contains("1 could not be scored"), s.output());
    List<String> lines = new java.util.ArrayList<>();
    try (var parts = Files.list(kept)) {
      for (Path part : parts.filter(f -> f.getFileName().toString().endsWith(".csv")).toList()) {
        lines.addAll(Files.readAllLines(part));
      }
    }
    String truncated = lines.stream().filter(l -> l.contains("truncated.png")).findFirst().orElseThrow();
    String fine = lines.stream().filter(l -> l.contains("good.png")).findFirst().orElseThrow();
    assertTrue(truncated.contains("could not be decoded") && truncated.contains(",5.0,,,"), truncated);
    assertTrue(fine.matches(".*,5\\.0,\\d\\.0,[^,]+,$"), fine);
  }
}
