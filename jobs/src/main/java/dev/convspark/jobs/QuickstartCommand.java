package dev.convspark.jobs;

import dev.convspark.datasets.mnist.MnistArrays;
import dev.convspark.tensor.backend.CpuBackend;
import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.io.ModelFile;
import dev.convspark.tensor.io.ModelState;
import dev.convspark.tensor.layers.SoftmaxCrossEntropy;
import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.spec.ModelSpec;
import dev.convspark.tensor.train.BatchSampler;
import dev.convspark.tensor.train.Trainer;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Locale;

/**
 * {@code convspark quickstart}: trains a tutorial model on MNIST with the engine on this machine's
 * cores and reports the test accuracy it measured. (Training through Spark comes with the
 * spark-ml module; until then this runs the engine directly.)
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
              + "  Trains the model on the 60,000 MNIST training images (Adam 1e-4 and dropout keep 0.5 for\n"
              + "  deep-mnist, SGD 0.5 for softmax-regression, the tutorial's recipes), prints progress,\n"
              + "  measures accuracy on the 10,000 test images and saves the model under --output.");
          return 0;
        }
        default -> throw new UsageException("quickstart: unknown argument '" + args[i] + "'");
      }
    }
    ModelSpec spec = ModelSpec.parse(model);
    boolean cnn = !spec.name().equals(ModelSpec.SOFTMAX_REGRESSION);
    MnistArrays train = MnistArrays.load(data, true);
    MnistArrays test = MnistArrays.load(data, false);
    try (CpuBackend backend = CpuBackend.create(threads); ModelRunner runner = backend.open(spec)) {
      runner.initialize(seed);
      Optimizer opt = cnn ? Optimizer.create("adam", 1e-4f, runner.paramCount())
          : Optimizer.create("sgd", 0.5f, runner.paramCount());
      Trainer trainer = new Trainer(runner, opt, cnn ? 0.5f : 1f, seed);
      System.out.printf(Locale.ROOT, "training %s (%,d parameters) on %,d MNIST images: %,d steps of %d, %s %s, on %s%n",
          spec.name(), runner.paramCount(), train.count(), steps, batch, opt.name(), opt.learningRate(), backend.describe());
      BatchSampler sampler = new BatchSampler(train.count(), seed);
      long t0 = System.nanoTime();
      int every = Math.max(1, Math.min(500, steps / 20));
      double lossSum = 0;
      long correct = 0;
      long seen = 0;
      for (int s = 1; s <= steps; s++) {
        SoftmaxCrossEntropy.Result r = trainer.step(sampler, train.images(), train.labels(), batch, 1f / batch);
        lossSum += r.lossSum();
        correct += r.correct();
        seen += batch;
        double sec = (System.nanoTime() - t0) / 1e9;
        if (s == 100 && steps > 1000) {
          System.out.printf(Locale.ROOT, "about %s for all %,d steps at %.0f images/s%n",
              duration(sec / s * steps), steps, s * batch / sec);
        }
        if (s % every == 0 || s == steps) {
          double ips = (double) s * batch / sec;
          System.out.printf(Locale.ROOT, "step %6d/%d  loss %.4f  train accuracy %.4f  %.0f images/s  ETA %s%n",
              s, steps, lossSum / seen, (double) correct / seen, ips, duration((steps - s) * batch / ips));
          lossSum = 0;
          correct = 0;
          seen = 0;
        }
      }
      double trainSec = (System.nanoTime() - t0) / 1e9;
      double acc = Trainer.accuracy(runner, test.images(), test.labels(), test.count(), 1000);
      float[] params = new float[runner.paramCount()];
      runner.copyParametersTo(params);
      Path file = out.resolve(spec.name() + ".cspk");
      ModelFile.write(new ModelState(spec, params, opt.state()), file);
      System.out.printf(Locale.ROOT, "test accuracy %.4f on %,d test images after %,d steps (%s of training)%n",
          acc, test.count(), steps, duration(trainSec));
      System.out.println("model saved to " + file.toAbsolutePath());
    }
    return 0;
  }

  static String duration(double seconds) {
    long s = Math.round(seconds);
    return s >= 3600 ? String.format("%dh%02dm", s / 3600, s % 3600 / 60)
        : s >= 60 ? String.format("%dm%02ds", s / 60, s % 60) : s + "s";
  }
}
