package dev.convspark.jobs;

import dev.convspark.datasets.mnist.MnistArrays;
import dev.convspark.ml.CnnClassificationModel;
import dev.convspark.ml.CnnClassifier;
import dev.convspark.tensor.backend.CpuBackend;
import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.spec.ModelSpec;
import dev.convspark.tensor.train.BatchSampler;
import dev.convspark.tensor.train.Trainer;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Locale;
import org.apache.spark.ml.evaluation.MulticlassClassificationEvaluator;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

/**
 * {@code convspark quickstart}: trains a tutorial model on MNIST through Spark on this machine
 * (an embedded {@code local[*]} session: the {@code idx} source, {@link CnnClassifier} with one
 * worker on every core, MLlib's evaluator) and reports the test accuracy it measured.
 */
final class QuickstartCommand {

  private QuickstartCommand() {
  }

  static int run(String[] args) throws IOException {
    Path data = MnistArrays.defaultDir();
    String model = ModelSpec.DEEP_MNIST;
    int steps = 20_000;
    int batch = 50;
    int threads = Runtime.getRuntime().availableProcessors();
    long seed = 1;
    Path out = Path.of("data/models");
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--data" -> data = Path.of(Args.value(args, ++i, "--data"));
        case "--model" -> model = Args.value(args, ++i, "--model");
        case "--steps" -> steps = Args.intValue(args, ++i, "--steps", 1, 100_000_000);
        case "--batch-size" -> batch = Args.intValue(args, ++i, "--batch-size", 1, 1_000_000);
        case "--threads" -> threads = Args.intValue(args, ++i, "--threads", 1, 1024);
        case "--seed" -> seed = Args.intValue(args, ++i, "--seed", 0, Integer.MAX_VALUE);
        case "--output" -> out = Path.of(Args.value(args, ++i, "--output"));
        case "-h", "--help" -> {
          System.out.println("usage: convspark quickstart [--steps 20000] [--model deep-mnist] [--batch-size 50]"
              + " [--threads N] [--seed 1] [--data data/mnist] [--output data/models]\n"
              + "  Trains the model on the 60,000 MNIST training images through an embedded local Spark\n"
              + "  (Adam 1e-4 and dropout keep 0.5 for deep-mnist, SGD 0.5 for softmax-regression: the\n"
              + "  tutorial's recipes), logs progress, measures accuracy on the 10,000 test images and\n"
              + "  saves the model with MLlib's save under --output.");
          return 0;
        }
        default -> throw new UsageException("quickstart: unknown argument '" + args[i] + "'");
      }
    }
    ModelSpec spec = ModelSpec.parse(model);
    boolean cnn = !spec.name().equals(ModelSpec.SOFTMAX_REGRESSION);
    double ips = estimateImagesPerSecond(data, spec, cnn, threads, batch);
    System.out.printf(Locale.ROOT, "training %s on 60,000 MNIST images: %,d steps of %d on %d threads;"
        + " about %s at %.0f images/s (measured just now)%n", spec.name(), steps, batch, threads,
        duration(steps * (double) batch / ips), ips);
    SparkSession spark = SparkSession.builder().master("local[" + threads + "]").appName("convspark quickstart")
        .config("spark.ui.enabled", "false").getOrCreate();
    try {
      Dataset<Row> train = spark.read().format("idx").option("imageFormat", "vector")
          .load(data.resolve("train-images-idx3-ubyte").toAbsolutePath().toString());
      Dataset<Row> test = spark.read().format("idx").option("imageFormat", "vector")
          .load(data.resolve("t10k-images-idx3-ubyte").toAbsolutePath().toString());
      // One worker on every core: on a single machine that is the fastest layout (no exchange).
      CnnClassifier clf = new CnnClassifier().setModel(spec.specString()).setMaxIter(steps).setBatchSize(batch)
          .setSeed(seed).setNumWorkers(1).setThreadsPerWorker(threads);
      if (!cnn) {
        clf.setOptimizer("sgd").setLearningRate(0.5).setKeepProb(1.0);
      }
      CnnClassificationModel fitted = clf.fit(train);
      double acc = new MulticlassClassificationEvaluator().setMetricName("accuracy")
          .evaluate(fitted.setThreadsPerWorker(threads).transform(test));
      String path = out.resolve(spec.name()).toAbsolutePath().toString();
      fitted.write().overwrite().save(path);
      System.out.printf(Locale.ROOT, "test accuracy %.4f on 10,000 test images after %,d steps (%s of training,"
          + " %.0f images/s)%n", acc, steps, duration(fitted.summary().wallSeconds()), fitted.summary().imagesPerSecond());
      System.out.println("model saved to " + path + " (load it with CnnClassificationModel.load)");
    } finally {
      spark.stop();
    }
    return 0;
  }

  /** A few engine steps on this machine, to say up front how long the run will take. */
  private static double estimateImagesPerSecond(Path data, ModelSpec spec, boolean cnn, int threads, int batch)
      throws IOException {
    MnistArrays train = MnistArrays.load(data, false);
    try (CpuBackend backend = CpuBackend.create(threads); ModelRunner runner = backend.open(spec)) {
      runner.initialize(1);
      Trainer trainer = new Trainer(runner, Optimizer.create(cnn ? "adam" : "sgd", 1e-4f, runner.paramCount()), 0.5f, 1);
      BatchSampler sampler = new BatchSampler(train.count(), 1);
      int warm = cnn ? 10 : 200;
      for (int s = 0; s < warm; s++) {
        trainer.step(sampler, train.images(), train.labels(), batch, 1f / batch);
      }
      long t0 = System.nanoTime();
      for (int s = 0; s < warm; s++) {
        trainer.step(sampler, train.images(), train.labels(), batch, 1f / batch);
      }
      return warm * (double) batch / ((System.nanoTime() - t0) / 1e9);
    }
  }

  static String duration(double seconds) {
    long s = Math.round(seconds);
    return s >= 3600 ? String.format("%dh%02dm", s / 3600, s % 3600 / 60)
        : s >= 60 ? String.format("%dm%02ds", s / 60, s % 60) : s + "s";
  }
}
