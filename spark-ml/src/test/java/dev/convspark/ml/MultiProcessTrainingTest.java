package dev.convspark.ml;

import dev.convspark.ml.training.BarrierTraining;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.datasets.mnist.MnistArrays;
import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.spark.ml.evaluation.MulticlassClassificationEvaluator;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;

/**
 * Barrier training across two executor JVMs of a real {@code local-cluster}: the gradient
 * exchange crosses process boundaries over TCP, and the weights equal those of {@code local[2]}.
 */
class MultiProcessTrainingTest {

  private static final Path MNIST = MnistArrays.defaultDir().toAbsolutePath();

  /** Trains softmax regression on 2 workers; the idx source gives exactly 2 partitions, no shuffle. */
  private static CnnClassificationModel train(SparkSession spark) {
    return train(spark, null);
  }

  private static CnnClassificationModel train(SparkSession spark, String checkpointDir) {
    Dataset<Row> data = spark.read().format("idx").option("imageFormat", "vector").option("recordsPerPartition", 5000)
        .load(MNIST.resolve("t10k-images-idx3-ubyte").toString());
    CnnClassifier clf = new CnnClassifier().setModel("softmax-regression").setOptimizer("sgd").setLearningRate(0.5)
        .setBatchSize(100).setMaxIter(200).setNumWorkers(2).setSeed(4);
    if (checkpointDir != null) {
      clf.setCheckpointDir(checkpointDir).setCheckpointInterval(50);
    }
    return clf.fit(data);
  }

  private static SparkSession session(String master) {
    return builder(master).getOrCreate();
  }

  /** A session on {@code master}; a {@code local-cluster}'s executors get this JVM's classpath and flags. */
  static SparkSession.Builder builder(String master) {
    SparkSession.Builder b = SparkSession.builder().master(master).appName("convspark-ml-multiprocess")
        .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1");
    if (master.startsWith("local-cluster")) {
      b = b.config("spark.executor.extraClassPath", System.getProperty("java.class.path"))
          .config("spark.executor.extraJavaOptions", String.join(" ",
              java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments().stream()
                  .filter(a -> a.startsWith("--add-") || a.startsWith("-XX:+IgnoreUnrecognized") || a.startsWith("-Dio.netty"))
                  .toList()));
    }
    return b;
  }

  @Test
  void twoExecutorProcessesTrainTheSameWeightsAsLocalMode() throws Exception {
    Files.createDirectories(Path.of(System.getenv("SPARK_HOME"), "jars"));
    SparkSession.getActiveSession().foreach(s -> {
      s.stop();
      return null;
    });
    SparkSession local = session("local[2]");
    float[] expected;
    try {
      expected = train(local).weights();
    } finally {
      local.stop();
    }
    SparkSession spark = session("local-cluster[2,1,1024]");
    try {
      CnnClassificationModel m = train(spark);
      assertEquals(2, spark.sparkContext().getExecutorIds().size(), "two executor processes");
      float[] got = m.weights();
      double maxDiff = Weights.maxDiff(got, expected);
      assertTrue(maxDiff < 1e-6, "local-cluster and local[2] weights differ by " + maxDiff);
      Dataset<Row> test = spark.read().format("idx").option("imageFormat", "vector")
          .load(MNIST.resolve("t10k-images-idx3-ubyte").toString());
      double acc = new MulticlassClassificationEvaluator().setMetricName("accuracy").evaluate(m.transform(test));
      assertTrue(acc >= 0.85, "accuracy on the data it trained on " + acc);

      // Load: one million rows (the test set 100 times) scored by executors of 1 GB each,
      // streamed through a sink that keeps nothing.
      Dataset<Row> million = spark.range(100).withColumnRenamed("id", "copy").crossJoin(test);
      org.apache.spark.util.LongAccumulator scored = spark.sparkContext().longAccumulator("scored");
      m.transform(million).select("prediction").foreachPartition(
          (org.apache.spark.api.java.function.ForeachPartitionFunction<Row>) it -> {
            long n = 0;
            while (it.hasNext()) {
              it.next();
              n++;
            }
            scored.add(n);
          });
      assertEquals(1_000_000L, scored.value(), "rows scored with 1 GB executors");

      // Kill the JVM of the executor running worker 1 at step 120 of the same training, with a
      // checkpoint every 50 steps: Spark starts a new executor, retries the barrier stage, the
      // workers resume from step 100 and end with the weights of the uninterrupted run.
      Path dir = Files.createTempDirectory("convspark-killed-executor");
      spark.sparkContext().setLocalProperty(BarrierTraining.FAIL_AT_STEP, "1:120:halt");
      CnnClassificationModel resumed;
      try {
        resumed = train(spark, dir.toString());
      } finally {
        spark.sparkContext().setLocalProperty(BarrierTraining.FAIL_AT_STEP, null);
      }
      assertEquals(100, resumed.summary().resumedFromStep(), "resumed from the last checkpoint");
      float[] w = resumed.weights();
      maxDiff = Weights.maxDiff(w, expected);
      assertTrue(maxDiff < 1e-6, "resumed and uninterrupted weights differ by " + maxDiff);
    } finally {
      spark.stop();
    }
  }

  /**
   * A small CNN with dropout on 4 workers, over the test set in 4 partitions. Its first dense
   * layer's weight gradient (784 x 64) is more floats than its factors at a global batch of 40
   * (40 x (784 + 64)), so between processes it travels as factors.
   */
  private static float[] trainFourWorkers(SparkSession spark) {
    Dataset<Row> data = spark.read().format("idx").option("imageFormat", "vector").option("recordsPerPartition", 2500)
        .load(MNIST.resolve("t10k-images-idx3-ubyte").toString());
    return new CnnClassifier().setModel("in28x28x1-conv5x5x4-relu-pool2-dense64-relu-dropout-dense10")
        .setBatchSize(40).setMaxIter(10).setLearningRate(1e-3).setNumWorkers(4).setSeed(6).fit(data).weights();
  }

  @Test
  void fourWorkersInTwoOrFourExecutorProcessesMatchLocalMode() throws Exception {
    // local[4]: one unit of four workers. local-cluster[2,2,...]: each executor's two workers are
    // trained as one and the two units sum over sockets; local-cluster[4,1,...]: four units of one
    // worker, a ring of four processes. Same samples and dropout masks wherever the four tasks
    // land, so the same weights up to the order of the additions (and, where the first dense
    // layer's gradient travels as factors, of the products' sums).
    Files.createDirectories(Path.of(System.getenv("SPARK_HOME"), "jars"));
    SparkSession.getActiveSession().foreach(s -> {
      s.stop();
      return null;
    });
    SparkSession local = session("local[4]");
    float[] expected;
    try {
      expected = trainFourWorkers(local);
    } finally {
      local.stop();
    }
    for (int executors : new int[] {2, 4}) {
      String master = "local-cluster[" + executors + "," + 4 / executors + ",1024]";
      SparkSession spark = session(master);
      try {
        // Called at once: fit waits for the executors' four slots to register.
        float[] got = trainFourWorkers(spark);
        assertEquals(executors, spark.sparkContext().getExecutorIds().size(), master + ": executor processes");
        double maxDiff = Weights.maxDiff(got, expected);
        assertTrue(maxDiff < 1e-5, master + " and local[4] weights differ by " + maxDiff);
      } finally {
        spark.stop();
      }
    }
  }
}
