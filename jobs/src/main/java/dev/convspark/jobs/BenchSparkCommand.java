package dev.convspark.jobs;

import dev.convspark.datasets.mnist.MnistArrays;
import dev.convspark.ml.CnnClassificationModel;
import dev.convspark.ml.CnnClassifier;
import dev.convspark.ml.exchange.RingAllreduce;
import dev.convspark.ml.exchange.Wire;
import dev.convspark.tensor.backend.CpuBackend;
import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.spec.ModelSpec;
import dev.convspark.tensor.train.BatchSampler;
import dev.convspark.tensor.train.Trainer;
import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;

/**
 * {@code convspark bench spark}: what Spark costs on top of the engine. The deep-mnist CNN's
 * {@code fit} on {@code local[2]} with 2 barrier workers of 1 thread each, against the engine alone
 * with 2 threads on the same data; and {@code transform} against the engine's own inference.
 */
final class BenchSparkCommand {

  private BenchSparkCommand() {
  }

  static int run(String[] args) throws IOException {
    int steps = 200;
    int repeats = 3;
    Path data = MnistArrays.defaultDir();
    Path json = null;
    String master = "local[2]";
    int workers = 2;
    String exchange = "ring";
    boolean encrypt = false;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--master" -> master = Args.value(args, ++i, "--master");
        case "--workers" -> workers = Args.intValue(args, ++i, "--workers", 1, 1024);
        case "--steps" -> steps = Args.intValue(args, ++i, "--steps", 1, 1_000_000);
        case "--repeats" -> repeats = Args.intValue(args, ++i, "--repeats", 1, 100);
        case "--data" -> data = Path.of(Args.value(args, ++i, "--data"));
        case "--json" -> json = Path.of(Args.value(args, ++i, "--json"));
        case "--exchange" -> {
          exchange = Args.value(args, ++i, "--exchange");
          if (!exchange.equals("ring") && !exchange.equals("stream") && !exchange.equals("star")) {
            throw new UsageException("--exchange must be ring, stream or star, not '" + exchange + "'");
          }
        }
        case "--encrypt" -> encrypt = true;
        case "-h", "--help" -> {
          System.out.println("usage: convspark bench spark [--steps 200] [--repeats 3] [--master local[2]] [--workers 2]\n"
              + "                           [--exchange ring|stream|star] [--encrypt] [--data data/mnist] [--json FILE]\n"
              + "  deep-mnist fit on local[2] (2 barrier workers x 1 thread) against the engine alone on 2\n"
              + "  threads, and transform of the 10,000 test images and of the 60,000 training images against\n"
              + "  the engine's inference on the same images. --master local-cluster[2,1,2048] runs the\n"
              + "  workers in two executor JVMs (started from the Maven jars), which sum in a ring: its floats\n"
              + "  through shared memory between executors of one host, with --exchange stream through the\n"
              + "  sockets all the same; --exchange star the star of before (workers of one JVM then sum over\n"
              + "  sockets too).\n"
              + "  --encrypt sets spark.authenticate and spark.network.crypto.enabled: Spark's traffic and the\n"
              + "  gradient exchange's are encrypted. CONVSPARK_JAVA_OPTS=-XX:UseAVX=2 reaches the executors too.");
          return 0;
        }
        default -> throw new UsageException("bench spark: unknown argument '" + args[i] + "'");
      }
    }
    MnistArrays trainArrays = MnistArrays.load(data, true);
    MnistArrays testArrays = MnistArrays.load(data, false);
    SparkSession.Builder builder = SparkSession.builder().master(master).appName("convspark bench spark")
        .config("spark.ui.enabled", "false");
    if (master.startsWith("local-cluster")) {
      // Executor JVMs of this JVM's classpath, module flags and instruction set (CONVSPARK_JAVA_OPTS'
      // -XX:UseAVX, so that both sides of the comparison run the same kernels; SPARK_HOME: see
      // bin/convspark).
      builder = builder.config("spark.executor.extraClassPath", System.getProperty("java.class.path"))
          .config("spark.executor.extraJavaOptions", String.join(" ",
              java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments().stream()
                  .filter(a -> a.startsWith("--add-") || a.startsWith("-XX:+IgnoreUnrecognized") || a.startsWith("-Dio.netty")
                      || a.startsWith("-XX:UseAVX="))
                  .toList()));
    }
    if (encrypt) {
      byte[] secret = new byte[24];
      new java.security.SecureRandom().nextBytes(secret);
      builder = builder.config("spark.authenticate", "true")
          .config("spark.authenticate.secret", java.util.HexFormat.of().formatHex(secret))
          .config("spark.network.crypto.enabled", "true");
    }
    SparkSession spark = builder.getOrCreate();
    if (!exchange.equals("ring")) {
      spark.sparkContext().setLocalProperty("convspark.exchange", exchange);
    }
    // Barrier training needs every worker's slot: wait for the executors to register.
    long deadline = System.nanoTime() + 120_000_000_000L;
    while (spark.sparkContext().defaultParallelism() < workers && System.nanoTime() < deadline) {
      try {
        Thread.sleep(100);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        break;
      }
    }
    Map<String, Object> out = new LinkedHashMap<>();
    try {
      Dataset<Row> train = spark.read().format("idx").option("imageFormat", "vector")
          .load(data.resolve("train-images-idx3-ubyte").toAbsolutePath().toString()).repartition(workers).cache();
      Dataset<Row> test = spark.read().format("idx").option("imageFormat", "vector")
          .load(data.resolve("t10k-images-idx3-ubyte").toAbsolutePath().toString()).cache();
      train.count();
      test.count();
      List<Double> fit = new ArrayList<>();
      List<Double> fitSteps = new ArrayList<>();
      List<Double> exchangeMs = new ArrayList<>();
      List<Double> engineTrain = new ArrayList<>();
      List<Double> transform = new ArrayList<>();
      List<Double> engineInfer = new ArrayList<>();
      List<Double> transformAll = new ArrayList<>();
      List<Double> engineInferAll = new ArrayList<>();
      CnnClassificationModel model = null;
      for (int r = -1; r < repeats; r++) {
        int n = r < 0 ? 20 : steps;
        long t0 = System.nanoTime();
        model = new CnnClassifier().setMaxIter(n).setNumWorkers(workers).setSeed(1).fit(train);
        double fitIps = n * 50 / ((System.nanoTime() - t0) / 1e9);
        double stepIps = model.summary().stepImagesPerSecond();
        double exMs = model.summary().exchangeSeconds() * 1000 / n;
        double engIps = engineTraining(trainArrays, n);
        t0 = System.nanoTime();
        model.transform(test).agg(functions.sum("prediction")).first();
        double tIps = testArrays.count() / ((System.nanoTime() - t0) / 1e9);
        double eIps = engineInference(model, testArrays);
        // A larger table, where the fixed cost of a Spark job (about 0.1 s) weighs less.
        t0 = System.nanoTime();
        model.transform(train).agg(functions.sum("prediction")).first();
        double tAllIps = trainArrays.count() / ((System.nanoTime() - t0) / 1e9);
        double eAllIps = engineInference(model, trainArrays);
        if (r >= 0) {
          transformAll.add(tAllIps);
          engineInferAll.add(eAllIps);
          fit.add(fitIps);
          fitSteps.add(stepIps);
          exchangeMs.add(exMs);
          engineTrain.add(engIps);
          transform.add(tIps);
          engineInfer.add(eIps);
          System.out.printf(Locale.ROOT, "repeat %d: fit %.0f (its steps %.0f; after each gradient, %.2f ms to the update),"
              + " engine train %.0f, transform %.0f, engine infer %.0f, transform 60,000 %.0f, engine infer 60,000 %.0f"
              + " images/s%n", r, fitIps, stepIps, exMs, engIps, tIps, eIps, tAllIps, eAllIps);
        }
      }
      double f = BenchEngineCommand.median(fit);
      double fs = BenchEngineCommand.median(fitSteps);
      double ex = BenchEngineCommand.median(exchangeMs);
      double e = BenchEngineCommand.median(engineTrain);
      double t = BenchEngineCommand.median(transform);
      double i = BenchEngineCommand.median(engineInfer);
      double ta = BenchEngineCommand.median(transformAll);
      double ia = BenchEngineCommand.median(engineInferAll);
      System.out.println();
      System.out.printf(Locale.ROOT, "| deep-mnist, %d cores | Spark (%s, %d workers x 1 thread) | engine alone (2 threads) | Spark / engine |%n",
          Runtime.getRuntime().availableProcessors(), master, workers);
      System.out.println("| --- | --- | --- | --- |");
      System.out.printf(Locale.ROOT, "| training (%d steps of 50, the whole fit), images/s | %.0f | %.0f | %.2f |%n", steps, f, e,
          f / e);
      System.out.printf(Locale.ROOT, "| training, the steps alone (fit without packing, start-up and result), images/s | %.0f"
          + " | %.0f | %.2f |%n", fs, e, fs / e);
      System.out.printf(Locale.ROOT, "| training: from each step's gradient to its update (the exchange the backward pass did"
          + " not hide, and the update), ms a step | %.2f | | |%n", ex);
      System.out.printf(Locale.ROOT, "| scoring 10,000 test images, images/s | %.0f | %.0f | %.2f |%n", t, i, t / i);
      System.out.printf(Locale.ROOT, "| scoring 60,000 training images, images/s | %.0f | %.0f | %.2f |%n", ta, ia, ta / ia);
      // What the exchange costs with nothing else running: its share of a step's CPU on a host
      // whose cores the executors' computations already fill.
      int params = model.weights().length;
      double shared = exchangeAlone(params, Wire.NONE);
      double sockets = exchangeAlone(params, Wire.STREAM);
      System.out.printf(Locale.ROOT, "%nthe exchange alone (2 ring workers in this JVM, no computation): the mean of the %.1f MB"
          + " gradient in %.2f ms through shared memory, %.2f ms through loopback sockets (medians of 3 x 30)%n",
          params * 4 / 1e6, shared, sockets);
      out.put("exchange_alone_shared_memory_ms", shared);
      out.put("exchange_alone_sockets_ms", sockets);
      out.put("master", master);
      out.put("exchange", exchange);
      out.put("encrypted", encrypt);
      out.put("fit_images_per_s", f);
      out.put("fit_step_images_per_s", fs);
      out.put("fit_exchange_ms_per_step", ex);
      out.put("engine_train_images_per_s", e);
      out.put("transform_images_per_s", t);
      out.put("engine_infer_images_per_s", i);
      out.put("transform_60000_images_per_s", ta);
      out.put("engine_infer_60000_images_per_s", ia);
    } finally {
      spark.stop();
    }
    if (json != null) {
      Files.writeString(json, Json.write(out));
      System.out.println("wrote " + json);
    }
    return 0;
  }

  /**
   * Milliseconds for two ring workers of this JVM, over loopback through {@code link}, to average
   * an array of {@code n} floats (the median of 3 rounds of 30, after 10).
   */
  private static double exchangeAlone(int n, Wire.Shaper link) throws IOException {
    ServerSocket[] servers = {Wire.listen("127.0.0.1"), Wire.listen("127.0.0.1")};
    ExecutorService pool = Executors.newFixedThreadPool(2);
    try {
      List<Future<List<Double>>> workers = new ArrayList<>();
      for (int r = 0; r < 2; r++) {
        int rank = r;
        workers.add(pool.submit(() -> {
          try (var ring = RingAllreduce.join(rank, 2, servers[rank], "127.0.0.1",
              servers[1 - rank].getLocalPort(), "bench", 20_000, 20_000, () -> false, link)) {
            float[] data = new float[n];
            List<Double> ms = new ArrayList<>();
            for (int round = -1; round < 3; round++) {
              int times = round < 0 ? 10 : 30;
              long t0 = System.nanoTime();
              for (int i = 0; i < times; i++) {
                ring.mean(data, new double[] {25});
              }
              if (round >= 0) {
                ms.add((System.nanoTime() - t0) / 1e6 / times);
              }
            }
            return ms;
          }
        }));
      }
      List<Double> ms = workers.get(0).get();
      workers.get(1).get();
      return BenchEngineCommand.median(ms);
    } catch (InterruptedException | ExecutionException e) {
      throw new IOException("bench spark: the exchange alone failed: " + e, e);
    } finally {
      pool.shutdownNow();
      for (ServerSocket s : servers) {
        s.close();
      }
    }
  }

  private static double engineTraining(MnistArrays train, int steps) {
    try (CpuBackend backend = CpuBackend.create(2); ModelRunner runner = backend.open(ModelSpec.parse(ModelSpec.DEEP_MNIST))) {
      runner.initialize(1);
      Trainer trainer = new Trainer(runner, Optimizer.create("adam", 1e-4f, runner.paramCount()), 0.5f, 1);
      BatchSampler sampler = new BatchSampler(train.count(), 1);
      long t0 = System.nanoTime();
      for (int s = 0; s < steps; s++) {
        trainer.step(sampler, train.images(), train.labels(), 50, 1f / 50);
      }
      return steps * 50 / ((System.nanoTime() - t0) / 1e9);
    }
  }

  private static double engineInference(CnnClassificationModel model, MnistArrays test) {
    try (CpuBackend backend = CpuBackend.create(2); ModelRunner runner = backend.open(ModelSpec.parse(ModelSpec.DEEP_MNIST))) {
      runner.copyParametersFrom(model.weights());
      float[] logits = new float[test.count() * 10];
      long t0 = System.nanoTime();
      runner.predictLogits(test.images(), test.count(), logits);
      return test.count() / ((System.nanoTime() - t0) / 1e9);
    }
  }
}
