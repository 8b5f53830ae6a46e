package dev.convspark.ml;

import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.lit;
import static org.apache.spark.sql.functions.pmod;
import static org.apache.spark.sql.functions.when;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.datasets.mnist.MnistArrays;
import dev.convspark.ml.training.BarrierTraining;
import java.nio.file.Path;
import java.util.List;
import org.apache.spark.ml.linalg.Vector;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Instance weights ({@code weightCol}) on a real local SparkSession with real MNIST rows, both
 * sync modes: equal weights train as none, rows of weight 0 teach nothing, validation is weighted,
 * and bad weights fail naming the column.
 */
class WeightedTrainingTest {

  private static final String SPEC = "in28x28x1-conv5x5x4-relu-pool2-dense10";
  private static SparkSession spark;
  /** 1,500 training rows, two partitions. */
  private static Dataset<Row> train;
  /** 500 other rows, for scoring. */
  private static Dataset<Row> test;

  @TempDir
  Path tmp;

  @BeforeAll
  static void start() {
    spark = SparkSession.builder().master("local[2,4]").appName("convspark-weights")
        .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1").getOrCreate();
    Path mnist = MnistArrays.defaultDir().toAbsolutePath();
    train = spark.read().format("idx").option("imageFormat", "vector")
        .load(mnist.resolve("t10k-images-idx3-ubyte").toString()).limit(1500).repartition(2).cache();
    test = spark.read().format("idx").option("imageFormat", "vector")
        .load(mnist.resolve("train-images-idx3-ubyte").toString()).limit(500).cache();
    train.count();
    test.count();
  }

  @AfterAll
  static void stop() {
    spark.stop();
  }

  private static CnnClassifier classifier(int steps, String mode) {
    return new CnnClassifier().setModel(SPEC).setLearningRate(1e-3).setBatchSize(20).setMaxIter(steps)
        .setNumWorkers(2).setSeed(5).setSyncMode(mode);
  }

  /** The accuracy of {@code m} on {@code rows}, every row weighing 1. */
  private static double accuracy(CnnClassificationModel m, Dataset<Row> rows) {
    return m.setWeightCol("").evaluate(rows).accuracy();
  }

  @Test
  void equalWeightsTrainAsNoWeightsInBothSyncModes() throws Exception {
    for (String mode : List.of("barrier", "driver")) {
      float[] plain = classifier(8, mode).fit(train).weights();
      for (double w : new double[] {1, 2.5}) {
        CnnClassificationModel m = classifier(8, mode).setWeightCol("w").fit(train.withColumn("w", lit(w)));
        assertEquals(0.0, Weights.maxDiff(plain, m.weights()), 1e-6, mode + ": every weight " + w);
        assertEquals("w", m.parent().getOrDefault(((CnnClassifier) m.parent()).weightCol()));
      }
      // An empty weightCol is no weightCol, as in MLlib.
      assertArrayEquals(plain, classifier(8, mode).setWeightCol("").fit(train).weights(), mode);
    }
    CnnClassifier c = classifier(8, "barrier").setWeightCol("w");
    c.write().overwrite().save(tmp.resolve("classifier").toString());
    assertEquals("w", CnnClassifier.load(tmp.resolve("classifier").toString()).getOrDefault(c.weightCol()));
  }

  /**
   * Uneven weights (1 to 3 by label, so the two partitions' sums differ) train the same model in
   * every mode: the barrier workers as one unit, each worker alone summing over sockets (the ring,
   * as executors in separate JVMs do), and the driver's steps. Each scales the weights by the same
   * mean over all the training rows.
   */
  @Test
  void unevenWeightsTrainTheSameModelInEveryMode() {
    Dataset<Row> weighted = train.withColumn("w", pmod(col("label"), lit(3)).plus(1));
    float[] unit = classifier(8, "barrier").setWeightCol("w").fit(weighted).weights();
    float[] driver = classifier(8, "driver").setWeightCol("w").fit(weighted).weights();
    float[] ring;
    spark.sparkContext().setLocalProperty(BarrierTraining.EXCHANGE, "socket");
    try {
      ring = classifier(8, "barrier").setWeightCol("w").fit(weighted).weights();
    } finally {
      spark.sparkContext().setLocalProperty(BarrierTraining.EXCHANGE, null);
    }
    assertEquals(0.0, Weights.maxDiff(unit, driver), 1e-6, "driver against one unit");
    assertEquals(0.0, Weights.maxDiff(unit, ring), 1e-6, "ring against one unit");
    float[] plain = classifier(8, "barrier").fit(train).weights();
    assertTrue(Weights.maxDiff(unit, plain) > 1e-4, "the weights changed the training");
  }

  /**
   * Every training row twice: once as it is, once with a wrong label (the next class). With the
   * wrong copies weighing 0 the model learns the right labels, as from the clean rows alone;
   * without weights it learns from both and scores far worse.
   */
  @Test
  void rowsOfWeightZeroTeachNothing() {
    java.util.function.Function<String, CnnClassifier> learning = mode -> classifier(100, mode).setLearningRate(3e-3)
        .setBatchSize(50);
    Dataset<Row> clean = train.withColumn("w", lit(1.0));
    Dataset<Row> wrong = train.withColumn("label", pmod(col("label").plus(1), lit(10))).withColumn("w", lit(0.0));
    Dataset<Row> both = clean.unionByName(wrong).repartition(2).cache();
    both.count();
    for (String mode : List.of("barrier", "driver")) {
      double cleanAccuracy = accuracy(learning.apply(mode).fit(train), test);
      double weighted = accuracy(learning.apply(mode).setWeightCol("w").fit(both), test);
      double unweighted = accuracy(learning.apply(mode).fit(both), test);
      System.out.printf("%s: test accuracy, clean rows %.3f; with wrong copies, weight 0 %.3f, unweighted %.3f%n", mode,
          cleanAccuracy, weighted, unweighted);
      assertTrue(cleanAccuracy > 0.6, mode + ": the clean rows train the model, " + cleanAccuracy);
      assertTrue(weighted > cleanAccuracy - 0.08, mode + ": weighted " + weighted + ", clean " + cleanAccuracy);
      assertTrue(weighted > unweighted + 0.15, mode + ": weighted " + weighted + ", unweighted " + unweighted);
    }
    both.unpersist();
  }

  /** The validation loss and accuracy are the weighted means over the validation rows, in both sync modes. */
  @Test
  void validationIsWeighted() {
    Dataset<Row> data = train.withColumn("isVal", lit(false))
        .unionByName(test.withColumn("isVal", lit(true)))
        .withColumn("w", when(col("isVal"), pmod(col("label"), lit(3))).otherwise(lit(1.0)))
        .repartition(2).cache();
    List<Row> scoredRows = null;
    for (String mode : List.of("barrier", "driver")) {
      CnnClassificationModel m = classifier(10, mode).setWeightCol("w").setValidationIndicatorCol("isVal").fit(data);
      List<Row> rows = m.transform(test.withColumn("w", pmod(col("label"), lit(3)))).select("probability", "label", "w")
          .collectAsList();
      double loss = 0;
      double right = 0;
      double total = 0;
      for (Row r : rows) {
        Vector p = r.getAs(0);
        int y = ((Number) r.get(1)).intValue();
        double w = ((Number) r.get(2)).doubleValue();
        loss -= w * Math.log(p.apply(y));
        right += p.argmax() == y ? w : 0;
        total += w;
      }
      double[] history = m.summary().validationLossHistory();
      assertEquals(loss / total, history[history.length - 1], 1e-5, mode + ": the weighted mean loss");
      double[] acc = m.summary().validationAccuracyHistory();
      assertEquals(right / total, acc[acc.length - 1], 1e-9, mode + ": the weighted accuracy");
      // The model's evaluate weighs by the same column (the estimator's weightCol), as MLlib's do.
      CnnClassificationSummary weighted = m.evaluate(test.withColumn("w", pmod(col("label"), lit(3))));
      assertEquals("w", weighted.weightCol());
      assertEquals(right / total, weighted.accuracy(), 1e-12, mode + ": evaluate's weighted accuracy");
      assertEquals(500, weighted.count());
      // As MLlib's evaluator weighs the same rows.
      for (String metric : List.of("accuracy", "weightedFMeasure", "weightedPrecision")) {
        double mllib = new org.apache.spark.ml.evaluation.MulticlassClassificationEvaluator().setWeightCol("w")
            .setMetricName(metric).evaluate(weighted.predictions());
        double ours = metric.equals("accuracy") ? weighted.accuracy()
            : metric.equals("weightedFMeasure") ? weighted.weightedFMeasure() : weighted.weightedPrecision();
        assertEquals(mllib, ours, 1e-12, mode + ": " + metric);
      }
      String missing = assertThrows(IllegalArgumentException.class, () -> m.evaluate(test)).getMessage();
      assertTrue(missing.startsWith("weightCol 'w' does not exist; columns are index, label, features.")
          && missing.endsWith("setWeightCol(\"\") weighs every row 1"), missing);
      String negative = assertThrows(IllegalArgumentException.class,
          () -> m.evaluate(test.withColumn("w", lit(-2)))).getMessage();
      assertEquals("weightCol 'w' holds -2.0; weights must be finite numbers, 0 or more", negative);
      scoredRows = rows;
    }
    assertTrue(scoredRows.stream().anyMatch(r -> ((Number) r.get(2)).doubleValue() == 0), "some rows weigh 0");
    data.unpersist();
  }

  @Test
  void badWeightsFailNamingTheColumn() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> classifier(3, "barrier").setWeightCol("nope").fit(train));
    assertTrue(e.getMessage().startsWith("weightCol 'nope' does not exist; columns are "), e.getMessage());
    e = assertThrows(IllegalArgumentException.class,
        () -> classifier(3, "barrier").setWeightCol("w").fit(train.withColumn("w", lit("heavy"))));
    assertTrue(e.getMessage().startsWith("weightCol 'w' has type string; expected a numeric type"), e.getMessage());
    for (String mode : List.of("barrier", "driver")) {
      for (Object[] bad : new Object[][] {
          {lit(-1.0), "weightCol 'w' holds -1.0; weights must be finite numbers, 0 or more"},
          {lit(Double.NaN), "weightCol 'w' holds NaN; weights must be finite numbers, 0 or more"},
          {lit(1e300), "weightCol 'w' holds 1.0E300; weights must be finite numbers, 0 or more"},
          {lit(null).cast("double"), "weightCol 'w' holds a null; every row needs a weight"},
          {lit(0), "weightCol 'w' gives every training row a weight of 0; at least one must weigh more than 0"}}) {
        String m = Failures.messages(assertThrows(Exception.class,
            () -> classifier(3, mode).setWeightCol("w").fit(train.withColumn("w", (org.apache.spark.sql.Column) bad[0]))));
        assertTrue(m.contains((String) bad[1]), mode + ": " + m);
      }
      Dataset<Row> noValidationWeight = train.withColumn("isVal", col("label").equalTo(3))
          .withColumn("w", when(col("isVal"), lit(0)).otherwise(lit(1)));
      String m = Failures.messages(assertThrows(Exception.class, () -> classifier(3, mode).setWeightCol("w")
          .setValidationIndicatorCol("isVal").fit(noValidationWeight)));
      assertTrue(m.contains("weightCol gives every validation row (validationIndicatorCol 'isVal' true) a weight of 0"),
          mode + ": " + m);
    }
  }
}
