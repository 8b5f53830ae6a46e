package dev.convspark.ml;

import dev.convspark.ml.training.BarrierTraining;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.datasets.mnist.MnistArrays;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Checkpoints and recovery on a real local SparkSession that retries failed tasks
 * ({@code local[2,4]}): a worker that fails mid-run, a second fit after a crash, a checkpoint of
 * another model, a corrupt checkpoint file.
 */
class CheckpointTest {

  private static final String SPEC = "in28x28x1-conv5x5x4-relu-pool2-dense10";
  private static SparkSession spark;
  private static Dataset<Row> data;

  @TempDir
  Path tmp;

  @BeforeAll
  static void start() {
    spark = SparkSession.builder().master("local[2,4]").appName("convspark-checkpoints")
        .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1").getOrCreate();
    Path mnist = MnistArrays.defaultDir().toAbsolutePath();
    data = spark.read().format("idx").option("imageFormat", "vector").option("recordsPerPartition", 1000)
        .load(mnist.resolve("t10k-images-idx3-ubyte").toString()).limit(2000).repartition(2).cache();
    data.count();
  }

  @AfterAll
  static void stop() {
    spark.stop();
  }

  private static CnnClassifier classifier(int steps) {
    return new CnnClassifier().setModel(SPEC).setLearningRate(1e-3).setBatchSize(20).setMaxIter(steps)
        .setNumWorkers(2).setSeed(11);
  }

  private static void assertSameWeights(float[] expected, float[] got) {
    assertEquals(expected.length, got.length);
    double maxDiff = Weights.maxDiff(got, expected);
    assertEquals(0.0, maxDiff, "largest weight difference from the uninterrupted run");
  }

  private static List<String> files(Path dir) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      return s.map(p -> p.getFileName().toString()).filter(n -> !n.startsWith(".")).sorted().toList();
    }
  }

  @Test
  void aWorkerThatFailsMidRunIsRetriedFromTheLastCheckpointAndEndsWithTheSameWeights() throws IOException {
    float[] uninterrupted = classifier(12).fit(data).weights();
    Path dir = tmp.resolve("ckpt");
    spark.sparkContext().setLocalProperty(BarrierTraining.FAIL_AT_STEP, "1:8");
    CnnClassificationModel m;
    try {
      m = classifier(12).setCheckpointDir(dir.toString()).setCheckpointInterval(5).fit(data);
    } finally {
      spark.sparkContext().setLocalProperty(BarrierTraining.FAIL_AT_STEP, null);
    }
    assertEquals(5, m.summary().resumedFromStep(), "the retried stage resumed from the step-5 checkpoint");
    assertEquals(12, m.summary().totalIterations());
    assertSameWeights(uninterrupted, m.weights());
    // The two newest checkpoints are kept: step 10 and the final step 12.
    assertEquals(List.of("step-10.cspk", "step-10.history", "step-12.cspk", "step-12.history"), files(dir));
  }

  /**
   * A schedule (warm-up, then piecewise) follows the optimizer's step count, which checkpoints keep:
   * a run interrupted at step 8 and resumed from step 5 ends with the uninterrupted run's weights,
   * in both sync modes; and the schedule is used (the weights differ from a constant rate's).
   */
  @Test
  void aScheduledRunInterruptedAndResumedEndsWithTheUninterruptedWeights() throws IOException {
    for (String mode : List.of("barrier", "driver")) {
      java.util.function.Supplier<CnnClassifier> scheduled = () -> classifier(12).setSyncMode(mode)
          .setLearningRateSchedule("piecewise").setLearningRateBoundaries(new int[] {6})
          .setLearningRateFactors(new double[] {1, 0.1}).setWarmupSteps(3);
      float[] uninterrupted = scheduled.get().fit(data).weights();
      float[] constant = classifier(12).setSyncMode(mode).fit(data).weights();
      assertTrue(!java.util.Arrays.equals(uninterrupted, constant), mode + ": the schedule changed the weights");
      Path dir = tmp.resolve("scheduled-" + mode);
      CnnClassificationModel m;
      if (mode.equals("barrier")) {
        spark.sparkContext().setLocalProperty(BarrierTraining.FAIL_AT_STEP, "1:8");
        try {
          m = scheduled.get().setCheckpointDir(dir.toString()).setCheckpointInterval(5).fit(data);
        } finally {
          spark.sparkContext().setLocalProperty(BarrierTraining.FAIL_AT_STEP, null);
        }
        assertEquals(5, m.summary().resumedFromStep(), "the retried stage resumed from the step-5 checkpoint");
      } else {
        scheduled.get().setMaxIter(5).setCheckpointDir(dir.toString()).fit(data);
        m = scheduled.get().setCheckpointDir(dir.toString()).fit(data);
        assertEquals(5, m.summary().resumedFromStep(), "the second fit resumed from the first's step 5");
      }
      assertSameWeights(uninterrupted, m.weights());
    }
  }

  @Test
  void scheduleParamsAreValidatedNamingThem() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> classifier(4).setLearningRateSchedule("linear"));
    assertTrue(e.getMessage().contains("learningRateSchedule"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> classifier(4).setLearningRateBoundaries(new int[] {5, 3}));
    assertTrue(e.getMessage().contains("learningRateBoundaries"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> classifier(4).setLearningRateFactors(new double[] {1, -1}));
    assertTrue(e.getMessage().contains("learningRateFactors"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> classifier(4).setDecayRate(0));
    assertTrue(e.getMessage().contains("decayRate"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> classifier(4).setLearningRateSchedule("piecewise")
        .setLearningRateBoundaries(new int[] {2}).fit(data));
    assertTrue(e.getMessage().contains("one learningRateFactors entry more than learningRateBoundaries"), e.getMessage());
  }

  @Test
  void aSecondFitResumesFromTheCheckpointOfTheFirstInBothSyncModes() {
    for (String mode : List.of("barrier", "driver")) {
      float[] uninterrupted = classifier(9).setSyncMode(mode).fit(data).weights();
      String dir = tmp.resolve("resume-" + mode).toString();
      CnnClassificationModel first = classifier(4).setSyncMode(mode).setCheckpointDir(dir).fit(data);
      assertEquals(0, first.summary().resumedFromStep());
      CnnClassificationModel second = classifier(9).setSyncMode(mode).setCheckpointDir(dir).fit(data);
      assertEquals(4, second.summary().resumedFromStep(), mode + ": the step count shows the resume");
      assertEquals(first.summary().objectiveHistory()[3], second.summary().objectiveHistory()[3],
          "the history before the resume comes from the checkpoint");
      assertSameWeights(uninterrupted, second.weights());
    }
  }

  @Test
  void aCheckpointOfAnotherModelOrBeyondMaxIterIsRefused() {
    String dir = tmp.resolve("other").toString();
    classifier(3).setCheckpointDir(dir).fit(data);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> classifier(6).setModel("softmax-regression").setCheckpointDir(dir).fit(data));
    assertTrue(e.getMessage().contains("checkpointDir " + dir) && e.getMessage().contains("softmax-regression")
        && e.getMessage().contains("conv5x5x4"), e.getMessage());
    IllegalArgumentException sgd = assertThrows(IllegalArgumentException.class,
        () -> classifier(6).setOptimizer("sgd").setCheckpointDir(dir).fit(data));
    assertTrue(sgd.getMessage().contains("'adam'") && sgd.getMessage().contains("'sgd'"), sgd.getMessage());
    IllegalArgumentException beyond = assertThrows(IllegalArgumentException.class,
        () -> classifier(2).setCheckpointDir(dir).fit(data));
    assertTrue(beyond.getMessage().contains("step 3, beyond maxIter=2"), beyond.getMessage());
  }

  @Test
  void aCorruptCheckpointFileIsNamedAndNotUsed() throws IOException {
    Path dir = tmp.resolve("corrupt");
    classifier(2).setCheckpointDir(dir.toString()).fit(data);
    Path model = dir.resolve("step-2.cspk");
    byte[] b = Files.readAllBytes(model);
    b[b.length / 2] ^= 0x40;
    Files.write(model, b);
    Files.deleteIfExists(dir.resolve(".step-2.cspk.crc"));
    RuntimeException e = assertThrows(RuntimeException.class, () -> classifier(4).setCheckpointDir(dir.toString()).fit(data));
    assertTrue(e.getMessage().contains("step-2.cspk") && e.getMessage().contains("checksum"), e.getMessage());
  }

  @Test
  void aStrangerConnectingToTheGradientPortIsRefusedAndTrainingIsUnaffected() throws Exception {
    // Both workers run in this JVM, so they are trained as one unless told to use sockets: both
    // runs use sockets, and the one with the stranger must end with exactly the other's weights.
    java.util.function.Supplier<float[]> overSockets = () -> {
      spark.sparkContext().setLocalProperty(BarrierTraining.EXCHANGE, "socket");
      try {
        return classifier(40).fit(data).weights();
      } finally {
        spark.sparkContext().setLocalProperty(BarrierTraining.EXCHANGE, null);
      }
    };
    float[] alone = overSockets.get();
    BarrierTraining.lastHubPort = 0;
    java.util.concurrent.CompletableFuture<float[]> fit = java.util.concurrent.CompletableFuture.supplyAsync(overSockets);
    long deadline = System.nanoTime() + 60_000_000_000L;
    while (BarrierTraining.lastHubPort == 0 && System.nanoTime() < deadline) {
      Thread.sleep(5);
    }
    int port = BarrierTraining.lastHubPort;
    assertTrue(port > 0, "the hub listened");
    boolean refused;
    try (java.net.Socket s = new java.net.Socket()) {
      s.connect(new java.net.InetSocketAddress("127.0.0.1", port), 2000);
      s.setSoTimeout(30_000);
      // A handshake of the wrong run: the hub must close the connection without answering.
      s.getOutputStream().write(new byte[64]);
      s.getOutputStream().flush();
      refused = s.getInputStream().read() == -1;
    } catch (java.net.SocketException e) {
      refused = true; // the hub had its workers and closed the port already
    }
    assertTrue(refused, "the stranger got no answer but a closed connection");
    assertSameWeights(alone, fit.get(5, java.util.concurrent.TimeUnit.MINUTES));
  }

  @Test
  void checkpointParamsAreValidatedWhenSet() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> new CnnClassifier().setCheckpointInterval(0));
    assertTrue(e.getMessage().contains("checkpointInterval"), e.getMessage());
    CnnClassifier c = new CnnClassifier().setCheckpointInterval(-1);
    assertEquals(-1, (Integer) c.getOrDefault(c.checkpointInterval()), "-1 disables checkpoints, as in MLlib");
  }
}
