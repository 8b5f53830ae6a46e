package dev.convspark.jobs;

import dev.convspark.datasets.mnist.MnistArrays;
import dev.convspark.tensor.backend.CpuBackend;
import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.spec.ModelSpec;
import dev.convspark.tensor.train.BatchSampler;
import dev.convspark.tensor.train.Trainer;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.apache.spark.sql.SparkSession;

/**
 * {@code convspark quickstart}: the train, evaluate and score jobs one after another on an
 * embedded {@code local[N]} Spark (N = the threads): trains a tutorial model on the MNIST training
 * images with one worker on every core, reports test accuracy with per-class figures and pictures,
 * batch-scores the test images, and says where everything went.
 */
final class QuickstartCommand {

  private QuickstartCommand() {
  }

  static int run(String[] args) throws IOException {
    Path data = MnistArrays.defaultDir();
    String model = ModelSpec.DEEP_MNIST;
    String recipe = "fast";
    Integer steps = null;
    Integer batch = null;
    int threads = Runtime.getRuntime().availableProcessors();
    long seed = 1;
    Path out = Path.of("data/models");
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--data" -> data = Path.of(Args.value(args, ++i, "--data"));
        case "--model" -> model = Args.value(args, ++i, "--model");
        case "--steps" -> steps = Args.intValue(args, ++i, "--steps", 1, 100_000_000);
        case "--recipe" -> {
          recipe = Args.value(args, ++i, "--recipe").toLowerCase(Locale.ROOT);
          if (!recipe.equals("fast") && !recipe.equals("tutorial")) {
            throw new UsageException("--recipe must be fast or tutorial but was '" + args[i] + "'");
          }
        }
        case "--batch-size" -> batch = Args.intValue(args, ++i, "--batch-size", 1, 1_000_000);
        case "--threads" -> threads = Args.intValue(args, ++i, "--threads", 1, 1024);
        case "--seed" -> seed = Args.intValue(args, ++i, "--seed", 0, Integer.MAX_VALUE);
        case "--output" -> out = Path.of(Args.value(args, ++i, "--output"));
        case "-h", "--help" -> {
          System.out.println("usage: convspark quickstart [--recipe fast|tutorial] [--steps N] [--model deep-mnist]"
              + " [--batch-size N]\n"
              + "                           [--threads N] [--seed 1] [--data data/mnist] [--output data/models]\n"
              + "  Trains the model on the 60,000 MNIST training images through an embedded local Spark, shows\n"
              + "  progress, evaluates on the 10,000 test images, scores them, and writes the model, summary,\n"
              + "  pictures and predictions under --output/MODEL (replacing an earlier run's). deep-mnist with dropout keep 0.5 and Adam:\n"
              + "  --recipe fast (the default) 450 steps of 400 (three epochs) from He et al.'s initial weights,\n"
              + "  the images shifted by up to 2 pixels, 3e-3 after a linear warm-up over 2/15 of the steps, then\n"
              + "  cosine decay to 0; --recipe tutorial the tutorial's 20,000 steps of 50 at 1e-4 from its\n"
              + "  initial weights. softmax-regression: SGD 0.5 (the tutorial's) either way, 20,000 steps of 50.\n"
              + "  --steps changes the number of steps (a fast recipe's warm-up keeps its fraction), --batch-size\n"
              + "  the batch.");
          return 0;
        }
        default -> throw new UsageException("quickstart: unknown argument '" + args[i] + "'");
      }
    }
    ModelSpec spec = ModelSpec.parse(model);
    boolean cnn = !spec.name().equals(ModelSpec.SOFTMAX_REGRESSION);
    boolean fast = cnn && recipe.equals("fast");
    if (steps == null) {
      steps = fast ? 450 : 20_000;
    }
    if (batch == null) {
      // Large batches train faster a picture on the CPU (about 2,600 images/s at 400 against 2,000 at
      // 50 on 2 cores); from He et al.'s initial weights, with shifted images, they reach 99.2% in three
      // epochs (see docs/training.md, Initial weights and large batches).
      batch = fast ? 400 : 50;
    }
    double ips = estimateImagesPerSecond(data, spec, cnn, threads, batch);
    System.out.printf(Locale.ROOT, "training %s on 60,000 MNIST images (%s recipe): %,d steps of %d on %d threads;"
        + " about %s at %.0f images/s (measured just now)%n", spec.name(), cnn ? recipe : "the tutorial's", steps, batch,
        threads, duration(steps * (double) batch / ips), ips);
    Path run = out.resolve(spec.name()).toAbsolutePath();
    String trainFile = data.resolve("train-images-idx3-ubyte").toAbsolutePath().toString();
    String testFile = data.resolve("t10k-images-idx3-ubyte").toAbsolutePath().toString();
    // One worker on every core: on a single machine that is the fastest layout (no exchange).
    List<String> train = new ArrayList<>(List.of("train", "--data", trainFile, "--model", spec.specString(),
        "--max-iter", Integer.toString(steps), "--batch-size", Integer.toString(batch), "--seed", Long.toString(seed),
        "--num-workers", "1", "--threads-per-worker", Integer.toString(threads), "--output", run.toString(),
        "--overwrite"));
    if (!cnn) {
      train.addAll(List.of("--optimizer", "sgd", "--learning-rate", "0.5", "--keep-prob", "1"));
    } else if (fast) {
      train.addAll(fastRecipe(steps, spec.inputShape().isImage()));
    }
    System.setProperty("spark.master", "local[" + threads + "]");
    System.setProperty("spark.ui.enabled", "false");
    try {
      int rc = Jobs.run(train.toArray(new String[0]));
      if (rc == 0) {
        System.out.println("\nevaluating on the 10,000 test images");
        rc = Jobs.run(new String[] {"evaluate", "--model", run.resolve("model").toString(), "--data", testFile,
            "--output", run.resolve("evaluation").toString()});
      }
      if (rc == 0) {
        System.out.println("\nbatch-scoring the test images");
        rc = Jobs.run(new String[] {"score", "--model", run.resolve("model").toString(), "--data", testFile,
            "--output", run.resolve("predictions.parquet").toString(), "--overwrite"});
      }
      if (rc != 0) {
        return rc;
      }
    } finally {
      SparkSession.getActiveSession().foreach(sp -> {
        sp.stop();
        return null;
      });
    }
    System.out.println("\neverything is under " + run + ": model/ (CnnClassificationModel.load), summary.json,"
        + " summary.csv, loss.png, accuracy.png, evaluation/ (metrics.json, confusion.png, misclassified.png),"
        + " predictions.parquet");
    return 0;
  }

  /**
   * The fast recipe's flags for {@code steps} steps: He et al.'s initial weights, the training images
   * shifted by up to 2 pixels, Adam 3e-3 reached by a linear warm-up over 2/15 of the steps, then
   * cosine decay to 0 at the last step (60 of 450). A model of vector inputs ({@code images} false)
   * has no pixels to shift.
   */
  static List<String> fastRecipe(int steps, boolean images) {
    int warmup = Math.max(1, (int) Math.round(steps * 2.0 / 15));
    List<String> flags = new ArrayList<>(List.of("--weight-init", "he"));
    if (images) {
      flags.addAll(List.of("--shift-range", "2"));
    }
    flags.addAll(List.of("--learning-rate", "3e-3", "--learning-rate-schedule", "cosine", "--warmup-steps",
        Integer.toString(warmup)));
    return flags;
  }

  /** A few engine steps on this machine, to say up front how long the run will take. */
  private static double estimateImagesPerSecond(Path data, ModelSpec spec, boolean cnn, int threads, int batch)
      throws IOException {
    MnistArrays train = MnistArrays.load(data, false);
    try (CpuBackend backend = CpuBackend.create(threads); ModelRunner runner = backend.open(spec)) {
      runner.initialize(1);
      Trainer trainer = new Trainer(runner, Optimizer.create(cnn ? "adam" : "sgd", 1e-4f, runner.paramCount()), 0.5f, 1);
      BatchSampler sampler = new BatchSampler(train.count(), 1);
      // Enough steps for the JIT to settle: fewer made the estimate 50% too long.
      int warm = cnn ? 40 : 200;
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
