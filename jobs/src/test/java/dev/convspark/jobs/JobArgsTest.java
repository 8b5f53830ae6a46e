package dev.convspark.jobs;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.ml.CnnClassifier;
import java.awt.image.BufferedImage;
import java.nio.file.Path;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The jobs' argument handling, their metrics and their pictures (no Spark session needed). */
class JobArgsTest {

  @TempDir
  Path tmp;

  private static void assertUsageError(String expected, String... args) {
    InProcessJobs.assertUsageError(expected, args);
  }

  @Test
  void everyJobHasHelpAndUsageErrorsNameTheFlag() {
    for (String job : new String[] {"train", "evaluate", "score"}) {
      assertEquals(0, Jobs.run(new String[] {job, "--help"}));
    }
    assertUsageError("unknown job 'fit'", "fit");
    assertUsageError("--data is required", "train");
    assertUsageError("unknown argument '--no-such-flag'", "train", "--data", "x", "--no-such-flag", "1");
    assertUsageError("--learning-rate: ", "train", "--data", "x", "--learning-rate", "-1");
    assertUsageError("--max-iter (param maxIter) must be a number but was 'many'", "train", "--data", "x", "--max-iter", "many");
    assertUsageError("--sync-mode: ", "train", "--data", "x", "--sync-mode", "ring");
    assertUsageError("--format must be auto, idx, parquet or image but was 'csv'", "train", "--data", "x", "--format", "csv");
    assertUsageError("--model and --data are required", "evaluate", "--data", "x");
    assertUsageError("--max-images must be in [0, 10000] but was -1", "evaluate", "--max-images", "-1");
    assertUsageError("--handle-invalid must be error or keep but was 'skip'", "score", "--handle-invalid", "skip");
    assertUsageError("--model, --data and --output are required", "score", "--model", "m");
    assertUsageError("--output-format must be parquet or csv but was 'json'", "score", "--output-format", "json");
    assertUsageError("--output needs a value", "score", "--output");
  }

  @Test
  void everyClassifierParamIsAFlag() {
    CnnClassifier c = new CnnClassifier();
    ParamArgs.set(c, "--learning-rate", "0.003");
    ParamArgs.set(c, "--max-iter", "77");
    ParamArgs.set(c, "--seed", "9");
    ParamArgs.set(c, "--model", "softmax-regression");
    ParamArgs.set(c, "--checkpoint-dir", "/tmp/x");
    assertEquals(0.003, (Double) c.getOrDefault(c.learningRate()));
    assertEquals(77, (Integer) c.getOrDefault(c.maxIter()));
    assertEquals(9L, (Long) c.getOrDefault(c.seed()));
    assertEquals("softmax-regression", c.getOrDefault(c.model()));
    assertEquals("/tmp/x", c.getOrDefault(c.checkpointDir()));
    ParamArgs.set(c, "--learning-rate-schedule", "piecewise");
    ParamArgs.set(c, "--learning-rate-boundaries", "4000, 5200");
    ParamArgs.set(c, "--learning-rate-factors", "1,0.1,0.01");
    assertArrayEquals(new int[] {4000, 5200}, (int[]) c.getOrDefault(c.learningRateBoundaries()));
    assertArrayEquals(new double[] {1, 0.1, 0.01}, (double[]) c.getOrDefault(c.learningRateFactors()));
    UsageException u = assertThrows(UsageException.class, () -> ParamArgs.set(c, "--learning-rate-factors", "1,x"));
    assertTrue(u.getMessage().contains("a comma-separated list of numbers"), u.getMessage());
    for (var p : c.params()) {
      assertTrue(ParamArgs.isParam(c, ParamArgs.flag(p.name())), p.name());
      assertEquals(p.name(), ParamArgs.paramName(ParamArgs.flag(p.name())));
    }
    assertTrue(TrainJob.usage().contains("--threads-per-worker"), TrainJob.usage());
    // The quick start's fast recipe: a warm-up over 2/15 of the steps, as flags the train job takes.
    assertEquals(java.util.List.of("--weight-init", "he", "--shift-range", "2", "--learning-rate", "3e-3",
        "--learning-rate-schedule", "cosine", "--warmup-steps", "60"), QuickstartCommand.fastRecipe(450, true));
    assertEquals("1", QuickstartCommand.fastRecipe(3, true).get(9));
    CnnClassifier q = new CnnClassifier();
    java.util.List<String> flags = QuickstartCommand.fastRecipe(450, true);
    for (int i = 0; i < flags.size(); i += 2) {
      ParamArgs.set(q, flags.get(i), flags.get(i + 1));
    }
    assertEquals(60, q.getOrDefault(q.warmupSteps()));
    assertEquals(2, q.getOrDefault(q.shiftRange()));
    assertEquals("he", q.getOrDefault(q.weightInit()));
    assertEquals(3e-3, (Double) q.getOrDefault(q.learningRate()));
  }

  @Test
  void metricsComePerClassFromTheConfusionMatrix() {
    long[][] cm = {{8, 2}, {1, 9}};
    EvaluateJob.Metrics m = EvaluateJob.Metrics.of(cm);
    assertEquals(0.85, m.accuracy(), 1e-12);
    assertArrayEquals(new double[] {8.0 / 9, 9.0 / 11}, m.precision(), 1e-12);
    assertArrayEquals(new double[] {0.8, 0.9}, m.recall(), 1e-12);
    assertTrue(m.text().contains("accuracy 0.8500 (17 of 20)"), m.text());
    String json = Json.write(m.json("d", "m"));
    assertTrue(json.contains("\"confusion_matrix\": [[8, 2], [1, 9]]"), json);
  }

  @Test
  void picturesAreValidPngsOfTheExpectedSize() throws Exception {
    double[] y = new double[500];
    for (int i = 0; i < y.length; i++) {
      y[i] = 2.3 * Math.exp(-i / 80.0) + 0.05 * Math.sin(i);
    }
    Path chart = tmp.resolve("loss.png");
    Pictures.lineChart(chart, "training loss", "loss", y, 10, 800, 500);
    BufferedImage img = ImageIO.read(chart.toFile());
    assertEquals(800, img.getWidth());
    assertEquals(500, img.getHeight());
    Path heat = tmp.resolve("confusion.png");
    Pictures.confusionMatrix(heat, new long[][] {{5, 1, 0}, {0, 7, 2}, {1, 0, 9}});
    img = ImageIO.read(heat.toFile());
    assertTrue(img.getWidth() > 100 && img.getHeight() > 100);
    // The diagonal is drawn darker blue than an empty cell.
    Path grid = tmp.resolve("grid.png");
    float[][] px = new float[3][28 * 28];
    px[1][14 * 28 + 14] = 1f;
    Pictures.imageGrid(grid, "three", px, new String[] {"true 1 pred 2", "true 3 pred 4", "a"}, 28, 28, 2);
    img = ImageIO.read(grid.toFile());
    assertEquals(2, (img.getWidth() - 10) / (Pictures.textWidth("true 1 pred 2", 1) + 10), "two columns");
  }
}
