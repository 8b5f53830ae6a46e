package dev.convspark.ml;

import dev.convspark.ml.training.BarrierTraining;
import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.lit;
import static org.apache.spark.sql.functions.not;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.datasets.mnist.MnistArrays;
import java.nio.file.Files;
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
 * Validation while training ({@code validationIndicatorCol}) on a real local SparkSession with
 * real MNIST rows: 1,500 training images and 500 validation images in one DataFrame, two
 * partitions, both sync modes; early stopping, and its state across checkpoints.
 */
class ValidationTest {

  private static final String SPEC = "in28x28x1-conv5x5x4-relu-pool2-dense10";
  private static SparkSession spark;
  /** Training rows (isVal false) and validation rows (isVal true), two partitions. */
  private static Dataset<Row> data;
  /** Only the training rows of {@link #data}, partition by partition: what a fit must train on. */
  private static Dataset<Row> trainOnly;
  private static Dataset<Row> validationOnly;

  @TempDir
  Path tmp;

  @BeforeAll
  static void start() {
    spark = SparkSession.builder().master("local[2,4]").appName("convspark-validation")
        .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1").getOrCreate();
    Path mnist = MnistArrays.defaultDir().toAbsolutePath();
    Dataset<Row> train = spark.read().format("idx").option("imageFormat", "vector")
        .load(mnist.resolve("t10k-images-idx3-ubyte").toString()).limit(1500).withColumn("isVal", lit(false));
    Dataset<Row> val = spark.read().format("idx").option("imageFormat", "vector")
        .load(mnist.resolve("train-images-idx3-ubyte").toString()).limit(500).withColumn("isVal", lit(true));
    data = train.union(val).repartition(2).cache();
    data.count();
    // A filter keeps the partitions and the order within them.
    trainOnly = data.filter(not(col("isVal"))).drop("isVal");
    validationOnly = data.filter(col("isVal"));
  }

  @AfterAll
  static void stop() {
    spark.stop();
  }

  private static CnnClassifier classifier(int steps) {
    return new CnnClassifier().setModel(SPEC).setLearningRate(1e-3).setBatchSize(20).setMaxIter(steps)
        .setNumWorkers(2).setSeed(5);
  }

  private static CnnClassifier validating(int steps) {
    return classifier(steps).setValidationIndicatorCol("isVal");
  }

  /** Mean cross-entropy and accuracy of {@code m} on the validation rows, from its output columns. */
  private static double[] scored(CnnClassificationModel m) {
    List<Row> rows = m.transform(validationOnly).select("probability", "label").collectAsList();
    double loss = 0;
    int right = 0;
    for (Row r : rows) {
      Vector p = r.getAs(0);
      int y = ((Number) r.get(1)).intValue();
      loss -= Math.log(p.apply(y));
      right += p.argmax() == y ? 1 : 0;
    }
    return new double[] {loss / rows.size(), (double) right / rows.size()};
  }

  /**
   * Both sync modes, and barrier workers exchanging over sockets as executors in separate JVMs do
   * ({@code ring}: the ring allreduce, sharded updates, evaluations summed over it).
   */
  @Test
  void validationRowsAreHeldOutAndEvaluatedEveryIntervalInBothSyncModes() {
    float[] trainedOnTrainingRows = classifier(12).fit(trainOnly).weights();
    double[] barrierLoss = null;
    for (String mode : List.of("barrier", "driver", "ring")) {
      CnnClassificationModel m;
      spark.sparkContext().setLocalProperty(BarrierTraining.EXCHANGE, mode.equals("ring") ? "socket" : null);
      try {
        m = validating(12).setValidationInterval(5).setSyncMode(mode.equals("driver") ? "driver" : "barrier").fit(data);
      } finally {
        spark.sparkContext().setLocalProperty(BarrierTraining.EXCHANGE, null);
      }
      CnnTrainingSummary s = m.summary();
      assertEquals(0.0, Weights.maxDiff(trainedOnTrainingRows, m.weights()), 1e-6,
          mode + ": the validation rows were not trained on");
      assertArrayEquals(new int[] {5, 10, 12}, s.validationIterations(), mode + ": every 5 steps and the last");
      assertEquals(12, s.totalIterations());
      assertEquals(12, s.weightsIteration(), "without early stopping the model keeps the last step's weights");
      assertFalse(s.stoppedEarly());
      double[] expected = scored(m);
      double[] loss = s.validationLossHistory();
      double[] acc = s.validationAccuracyHistory();
      assertEquals(expected[0], loss[2], 1e-5, mode + ": the last evaluation is the model's loss on the validation rows");
      assertEquals(expected[1], acc[2], 1e-12, mode + ": and its accuracy");
      assertTrue(loss[0] > loss[2], mode + ": the validation loss fell while training, " + java.util.Arrays.toString(loss));
      int lowest = loss[0] <= loss[1] && loss[0] <= loss[2] ? 5 : loss[1] <= loss[2] ? 10 : 12;
      assertEquals(lowest, s.bestIteration());
      if (barrierLoss == null) {
        barrierLoss = loss;
      } else {
        assertArrayEquals(barrierLoss, loss, 1e-5, "both sync modes evaluate the same weights on the same rows");
      }
    }
  }

  @Test
  void earlyStoppingEndsTheFitAndKeepsTheBestWeightsInBothSyncModes() {
    // Nothing improves by more than 1e9: the first evaluation (step 3) stays the best, and two
    // evaluations later (steps 6 and 9) the fit stops with step 3's weights.
    float[] atStep3 = classifier(3).fit(trainOnly).weights();
    for (String mode : List.of("barrier", "driver")) {
      CnnClassificationModel m = validating(30).setValidationInterval(3).setEarlyStoppingPatience(2)
          .setValidationTol(1e9).setSyncMode(mode).fit(data);
      CnnTrainingSummary s = m.summary();
      assertTrue(s.stoppedEarly(), mode);
      assertEquals(9, s.totalIterations(), mode + ": stopped after the evaluation at step 9");
      assertArrayEquals(new int[] {3, 6, 9}, s.validationIterations());
      assertEquals(3, s.bestIteration());
      assertEquals(3, s.weightsIteration());
      assertEquals(0.0, Weights.maxDiff(atStep3, m.weights()), 1e-6, mode + ": the model holds step 3's weights");
    }
    // With a tolerance of 0 the loss still falls every few steps here: no early stop in 12 steps.
    CnnTrainingSummary s = validating(12).setValidationInterval(3).setEarlyStoppingPatience(3).fit(data).summary();
    assertFalse(s.stoppedEarly());
    assertEquals(12, s.totalIterations());
    assertEquals(s.bestIteration(), s.weightsIteration());
  }

  @Test
  void aRunWithEarlyStoppingInterruptedAndResumedStopsAtTheSameStepWithTheSameWeights() throws Exception {
    java.util.function.Supplier<CnnClassifier> stopping = () -> validating(30).setValidationInterval(3)
        .setEarlyStoppingPatience(2).setValidationTol(1e9);
    CnnClassificationModel uninterrupted = stopping.get().fit(data);
    Path dir = tmp.resolve("ckpt");
    spark.sparkContext().setLocalProperty(BarrierTraining.FAIL_AT_STEP, "1:8");
    CnnClassificationModel m;
    try {
      m = stopping.get().setCheckpointDir(dir.toString()).setCheckpointInterval(5).fit(data);
    } finally {
      spark.sparkContext().setLocalProperty(BarrierTraining.FAIL_AT_STEP, null);
    }
    assertEquals(5, m.summary().resumedFromStep(), "the retried stage resumed from the step-5 checkpoint");
    assertEquals(9, m.summary().totalIterations());
    assertArrayEquals(uninterrupted.summary().validationLossHistory(), m.summary().validationLossHistory(), 0.0,
        "the evaluation before the checkpoint came from it, the others were made again the same");
    assertEquals(0.0, Weights.maxDiff(uninterrupted.weights(), m.weights()), "the best weights came from the checkpoint");
    assertTrue(Files.exists(dir.resolve("step-9.best.cspk")), "the stop was checkpointed with the best weights");
    // A second fit finds the run stopped: it trains no step and returns the same model.
    CnnClassificationModel again = stopping.get().setCheckpointDir(dir.toString()).setSyncMode("driver").fit(data);
    assertEquals(9, again.summary().resumedFromStep());
    assertTrue(again.summary().stoppedEarly());
    assertEquals(0.0, Weights.maxDiff(uninterrupted.weights(), again.weights()));
  }

  @Test
  void badValidationSettingsAreRefusedNamingTheParamOrColumn() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> validating(3).setValidationIndicatorCol("nope").fit(data));
    assertTrue(e.getMessage().contains("validationIndicatorCol 'nope' does not exist"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class,
        () -> validating(3).setValidationIndicatorCol("label").fit(data));
    assertTrue(e.getMessage().contains("validationIndicatorCol 'label' has type") && e.getMessage().contains("boolean"),
        e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> classifier(3).setEarlyStoppingPatience(2).fit(data));
    assertTrue(e.getMessage().contains("earlyStoppingPatience=2") && e.getMessage().contains("validationIndicatorCol"),
        e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> classifier(3).setValidationInterval(0));
    assertTrue(e.getMessage().contains("validationInterval"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> classifier(3).setValidationTol(-1));
    assertTrue(e.getMessage().contains("validationTol"), e.getMessage());
    for (String mode : List.of("barrier", "driver")) {
      String none = Failures.messages(assertThrows(Exception.class,
          () -> validating(3).setSyncMode(mode).fit(data.withColumn("isVal", lit(false)))));
      assertTrue(none.contains("validationIndicatorCol 'isVal' marks no row true"), mode + ": " + none);
      String nulls = Failures.messages(assertThrows(Exception.class,
          () -> validating(3).setSyncMode(mode).fit(data.withColumn("isVal", lit(null).cast("boolean")))));
      assertTrue(nulls.contains("validationIndicatorCol 'isVal' holds a null"), mode + ": " + nulls);
    }
  }
}
