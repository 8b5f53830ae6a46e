package dev.convspark.ml;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.datasets.mnist.MnistArrays;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.spark.ml.linalg.Vector;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@code device=gpu} through Spark on executors whose {@code libcuda.so.1} is the emulated CUDA
 * driver ({@code tensor-native/cuda-emu.sh}: convspark's kernels run on the CPU): Spark assigns
 * each task a GPU ({@code spark.task.resource.gpu.amount}), the workers train on the GPU backend
 * and sum over sockets (one GPU per executor) or through memory (two GPUs in one executor), and
 * the weights and the scores match {@code device=cpu}. It checks the GPU path's Spark side and
 * host code, not a GPU. Skipped, saying so, without g++ or off x86-64 Linux.
 */
class EmulatedGpuTrainingTest {

  private static final Path MNIST = MnistArrays.defaultDir().toAbsolutePath();
  /** A small convolutional network: the emulated driver runs about 1 GFLOP/s. */
  private static final String SPEC = "in28x28x1-conv5x5x8-relu-pool2-dense32-relu-dropout-dense10";

  private static Path driver;

  @BeforeAll
  static void buildTheDriver() throws IOException, InterruptedException {
    Path script = Path.of("..", "tensor-native", "cuda-emu.sh").toAbsolutePath().normalize();
    driver = Path.of("target", "cuda-emu").toAbsolutePath();
    Process p = new ProcessBuilder("bash", script.toString(), driver.toString()).redirectErrorStream(true).start();
    String log = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(p.waitFor(5, TimeUnit.MINUTES), "cuda-emu.sh ran over 5 minutes");
    Assumptions.assumeTrue(p.exitValue() != 3, log.strip() + ": device=gpu through Spark is not run here");
    assertEquals(0, p.exitValue(), "cuda-emu.sh failed:\n" + log);
    Files.createDirectories(Path.of(System.getenv("SPARK_HOME"), "jars"));
  }

  /** A local cluster of {@code executors} executor JVMs with {@code gpus} emulated GPUs each. */
  private static SparkSession cluster(int executors, int gpus) throws IOException {
    return cluster(executors, gpus, java.util.Map.of());
  }

  /** As above, with {@code conf} set too. */
  private static SparkSession cluster(int executors, int gpus, java.util.Map<String, String> conf)
      throws IOException {
    SparkSession.getActiveSession().foreach(s -> {
      s.stop();
      return null;
    });
    StringBuilder addresses = new StringBuilder();
    for (int i = 0; i < gpus; i++) {
      addresses.append(i == 0 ? "" : ",").append('"').append(i).append('"');
    }
    Path discovery = driver.resolve("gpus-" + gpus + ".sh");
    Files.writeString(discovery, "#!/bin/sh\necho '{\"name\": \"gpu\", \"addresses\": [" + addresses + "]}'\n");
    discovery.toFile().setExecutable(true);
    SparkSession.Builder b = MultiProcessTrainingTest.builder("local-cluster[" + executors + "," + gpus + ",1024]");
    conf.forEach(b::config);
    return b.config("spark.executorEnv.LD_LIBRARY_PATH", driver.toString())
        .config("spark.executorEnv.CONVSPARK_CUDA_EMU_DEVICES", String.valueOf(gpus))
        .config("spark.worker.resource.gpu.amount", String.valueOf(gpus))
        .config("spark.worker.resource.gpu.discoveryScript", discovery.toString())
        .config("spark.executor.resource.gpu.amount", String.valueOf(gpus))
        .config("spark.task.resource.gpu.amount", "1")
        .getOrCreate();
  }

  private static Dataset<Row> images(SparkSession spark) {
    return spark.read().format("idx").option("imageFormat", "vector").option("recordsPerPartition", 5000)
        .load(MNIST.resolve("t10k-images-idx3-ubyte").toString());
  }

  private static CnnClassificationModel fit(Dataset<Row> data, String device, int batch) {
    return fit(data, device, "fp32", batch);
  }

  private static CnnClassificationModel fit(Dataset<Row> data, String device, String precision, int batch) {
    return new CnnClassifier().setModel(SPEC).setDevice(device).setPrecision(precision).setBatchSize(batch)
        .setMaxIter(40).setKeepProb(0.5).setLearningRate(1e-3).setNumWorkers(2).setSeed(11).fit(data);
  }

  /** The largest difference of {@code a} and {@code b} over the largest of {@code b}. */
  private static double relative(float[] a, float[] b) {
    double diff = 0;
    double scale = 0;
    for (int i = 0; i < b.length; i++) {
      diff = Math.max(diff, Math.abs(a[i] - b[i]));
      scale = Math.max(scale, Math.abs(b[i]));
    }
    return diff / scale;
  }

  /** The largest difference of two scorings' probabilities, and how many predictions differ. */
  private static double[] compare(List<Row> a, List<Row> b) {
    assertEquals(a.size(), b.size());
    double probDiff = 0;
    int disagree = 0;
    for (int i = 0; i < a.size(); i++) {
      disagree += a.get(i).getDouble(0) == b.get(i).getDouble(0) ? 0 : 1;
      Vector x = a.get(i).getAs(1);
      Vector y = b.get(i).getAs(1);
      for (int k = 0; k < x.size(); k++) {
        probDiff = Math.max(probDiff, Math.abs(x.apply(k) - y.apply(k)));
      }
    }
    return new double[] {probDiff, disagree};
  }

  /**
   * Trains and scores on the GPUs and on the CPUs of one cluster, and compares; with
   * {@code tf32}, trains and scores in TF32 on the GPUs too, which the emulated driver computes
   * with TF32's rounded inputs: close to the CPU's, within TF32's looser bounds, and not equal.
   * Global batches of {@code batch}: at 20, the GPUs sum the dense layer of 1,568 x 32 weights in
   * factored form (20 samples' rows of 1,600 floats, 32,000 against its 50,176 weights), at 50
   * whole.
   */
  private static void gpuMatchesCpu(SparkSession spark, boolean tf32, int batch) {
    Dataset<Row> data = images(spark);
    CnnClassificationModel gpu = fit(data, "gpu", batch);
    String way = batch == 20 ? "leaves the devices in factored form: the dense layer of 1568 x 32 weights as 20"
        + " samples' rows, 32570 floats where the gradient has 50746" : "leaves the devices whole: 50746 floats";
    String logs = executorLogs(spark);
    assertTrue(logs.contains("each step's gradient " + way), "the executors' log says how the GPUs summed:\n" + logs);
    CnnClassificationModel cpu = fit(data, "cpu", batch);
    // 40 steps run apart: a near-tie taken the other way or a zero-but-for-rounding gradient moves
    // a weight by up to a step (GpuCheck's Javadoc); the parity checks hold each step to 1e-4.
    double weights = relative(gpu.weights(), cpu.weights());
    assertTrue(weights < 1e-3, "GPU and CPU weights differ by " + weights + " of the largest");
    List<Row> onCpu = cpu.setDevice("cpu").transform(data).select("prediction", "probability").collectAsList();
    double[] d = compare(onCpu, cpu.setDevice("gpu").transform(data).select("prediction", "probability").collectAsList());
    assertTrue(d[0] < 1e-4, "GPU and CPU probabilities differ by " + d[0]);
    assertTrue(d[1] <= 2, d[1] + " of " + onCpu.size() + " predictions differ between GPU and CPU");
    // The featurizer's truncated network (ending in a ReLU) on the GPUs gives the CPU's features.
    List<Row> featuresCpu = cpu.featurizer().setDevice("cpu").transform(data).select("cnnFeatures").collectAsList();
    List<Row> featuresGpu = cpu.featurizer().setDevice("gpu").transform(data).select("cnnFeatures").collectAsList();
    double largest = 0;
    double featureDiff = 0;
    for (int i = 0; i < featuresCpu.size(); i++) {
      Vector x = featuresCpu.get(i).getAs(0);
      Vector y = featuresGpu.get(i).getAs(0);
      for (int k = 0; k < x.size(); k++) {
        largest = Math.max(largest, Math.abs(x.apply(k)));
        featureDiff = Math.max(featureDiff, Math.abs(x.apply(k) - y.apply(k)));
      }
    }
    assertTrue(largest > 0 && featureDiff < 1e-4 * largest, "GPU and CPU features differ by " + featureDiff + " of "
        + largest);
    if (tf32) {
      CnnClassificationModel t = fit(data, "gpu", "tf32", batch);
      double w = relative(t.weights(), cpu.weights());
      System.out.println("TF32 on the emulated GPUs: weights after 40 steps off the CPU's by " + w + " of the largest");
      assertTrue(w > 0 && w < 5e-2, "GPU in TF32 and CPU weights differ by " + w + " of the largest");
      double[] s = compare(onCpu, cpu.setDevice("gpu").setPrecision("tf32").transform(data)
          .select("prediction", "probability").collectAsList());
      System.out.println("TF32 scoring: probabilities off the CPU's by up to " + s[0] + ", " + s[1] + " predictions");
      assertTrue(s[0] > 0 && s[0] < 5e-2, "GPU in TF32 and CPU probabilities differ by " + s[0]);
      assertTrue(s[1] <= 50, s[1] + " of " + onCpu.size() + " predictions differ between GPU in TF32 and CPU");
    }
  }

  /** What the executors of {@code spark}'s application have logged: their stderr, under {@code SPARK_HOME/work}. */
  private static String executorLogs(SparkSession spark) {
    Path app = Path.of(System.getenv("SPARK_HOME"), "work", spark.sparkContext().applicationId());
    StringBuilder all = new StringBuilder();
    try (var files = Files.walk(app)) {
      for (Path f : files.filter(f -> f.getFileName().toString().equals("stderr")).sorted().toList()) {
        all.append(Files.readString(f));
      }
    } catch (IOException e) {
      throw new java.io.UncheckedIOException("cannot read the executors' logs under " + app, e);
    }
    return all.toString();
  }

  /** {@link #gpuMatchesCpu} on a cluster of {@code executors} with {@code gpus} GPUs each. */
  private static void gpuMatchesCpuOn(int executors, int gpus, boolean tf32, int batch) throws IOException {
    SparkSession spark = cluster(executors, gpus);
    try {
      gpuMatchesCpu(spark, tf32, batch);
    } finally {
      spark.stop();
    }
  }

  @Test
  void twoExecutorsWithAGpuEachTrainAndScoreAsTheCpuDoesAndInTf32Too() throws IOException {
    gpuMatchesCpuOn(2, 1, true, 50);
  }

  /** At a batch of 20: the dense layer's weight gradient summed from the samples' rows. */
  @Test
  void twoGpusOfOneExecutorTrainAndScoreAsTheCpuDoesSummingInFactoredForm() throws IOException {
    gpuMatchesCpuOn(1, 2, false, 20);
  }

  /**
   * A batch too large for the executor's GPU (the emulated driver's, 16 MiB here): the fit fails,
   * and what the user reads names the GPU, the batch and its memory.
   */
  @Test
  void aBatchTooLargeForTheGpuFailsTheFitSayingSo() throws IOException {
    SparkSession spark = cluster(1, 1, java.util.Map.of("spark.executorEnv.CONVSPARK_CUDA_EMU_MEMORY", "16"));
    try {
      Dataset<Row> data = images(spark);
      CnnClassifier big = new CnnClassifier().setModel(SPEC).setDevice("gpu").setBatchSize(2000).setMaxIter(2)
          .setNumWorkers(1).setSeed(11);
      Exception e = org.junit.jupiter.api.Assertions.assertThrows(Exception.class, () -> big.fit(data));
      StringBuilder all = new StringBuilder();
      for (Throwable t = e; t != null; t = t.getCause()) {
        all.append(t).append('\n');
      }
      assertTrue(all.toString().contains("is out of memory for a training step on a batch of 2000 images: "), all.toString());
      assertTrue(all.toString().contains(" MiB of its 16.0 MiB free; smaller batches need less"), all.toString());
    } finally {
      spark.stop();
    }
  }
}
