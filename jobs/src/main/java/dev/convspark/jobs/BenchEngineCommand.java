package dev.convspark.jobs;

import dev.convspark.datasets.mnist.MnistArrays;
import dev.convspark.tensor.backend.CpuBackend;
import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.kernels.FastKernels;
import dev.convspark.tensor.kernels.Kernels;
import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.spec.ModelSpec;
import dev.convspark.tensor.train.BatchSampler;
import dev.convspark.tensor.train.Trainer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code convspark bench engine}: the deep-mnist CNN's training and inference throughput on this
 * CPU, and the engine's matrix-multiply rate for reference. Medians of repeats after a warm-up.
 */
final class BenchEngineCommand {

  /** Multiply-adds count two: forward 27.8 M, forward and backward 82.0 M per image. */
  static final double TRAIN_FLOPS = 82_049_024;
  static final double INFER_FLOPS = 27_767_808;

  private BenchEngineCommand() {
  }

  static int run(String[] args) throws IOException {
    int threads = 2;
    // As many steps per repeat as the PyTorch reference times (300). The warm-up is longer than
    // its 20 steps because the JIT is still compiling the kernels then: a first repeat of 100
    // steps after 20 was 10% slower than the next ones.
    int steps = 300;
    int repeats = 3;
    int warmup = 50;
    Path data = MnistArrays.defaultDir();
    Path json = null;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--threads" -> threads = Args.intValue(args, ++i, "--threads", 1, 1024);
        case "--steps" -> steps = Args.intValue(args, ++i, "--steps", 1, 1_000_000);
        case "--repeats" -> repeats = Args.intValue(args, ++i, "--repeats", 1, 100);
        case "--warmup" -> warmup = Args.intValue(args, ++i, "--warmup", 0, 100_000);
        case "--data" -> data = Path.of(Args.value(args, ++i, "--data"));
        case "--json" -> json = Path.of(Args.value(args, ++i, "--json"));
        case "-h", "--help" -> {
          System.out.println("usage: convspark bench engine [--threads 2] [--steps 300] [--repeats 3] [--warmup 50]"
              + " [--data data/mnist] [--json FILE]\n"
              + "  Times the deep-mnist CNN (Adam 1e-4, batch 50, keep 0.5) on the CPU: training images/s,\n"
              + "  inference images/s (the 10,000 test images in batches of 1000), effective GFLOP/s, and\n"
              + "  the engine's own float32 2048^3 matrix-multiply rate. Medians over the repeats.");
          return 0;
        }
        default -> throw new UsageException("bench engine: unknown argument '" + args[i] + "'");
      }
    }
    MnistArrays train = MnistArrays.load(data, true);
    MnistArrays test = MnistArrays.load(data, false);
    Map<String, Object> out = new LinkedHashMap<>();
    try (CpuBackend backend = CpuBackend.create(threads)) {
      System.out.println("engine: " + backend.describe() + ", java " + System.getProperty("java.version"));
      System.out.println("isa: " + FastKernels.isa() + " (" + FastKernels.blocking() + ")");
      double gemm = gemmRate(backend.kernels(), 2048, repeats);
      System.out.printf(Locale.ROOT, "matmul 2048^3 fp32: %.1f GFLOP/s (median of %d)%n", gemm, repeats);

      List<Double> trainRates = new ArrayList<>();
      List<Double> inferRates = new ArrayList<>();
      try (ModelRunner runner = backend.open(ModelSpec.parse(ModelSpec.DEEP_MNIST))) {
        runner.initialize(1);
        Trainer trainer = new Trainer(runner, Optimizer.create("adam", 1e-4f, runner.paramCount()), 0.5f, 1);
        int batch = 50;
        int size = 28 * 28;
        BatchSampler sampler = new BatchSampler(train.count(), 1);
        Runnable step = () -> trainer.step(sampler, train.images(), train.labels(), batch, 1f / batch);
        for (int s = 0; s < warmup; s++) {
          step.run();
        }
        for (int r = 0; r < repeats; r++) {
          long t0 = System.nanoTime();
          for (int s = 0; s < steps; s++) {
            step.run();
          }
          double sec = (System.nanoTime() - t0) / 1e9;
          double ips = steps * batch / sec;
          trainRates.add(ips);
          System.out.printf(Locale.ROOT, "train repeat %d: %d steps in %.3f s, %.2f ms/step, %.1f images/s%n",
              r, steps, sec, sec * 1000 / steps, ips);
        }
        float[] logits = new float[1000 * 10];
        float[] chunk = new float[1000 * size];
        for (int r = -1; r < repeats; r++) {
          long t0 = System.nanoTime();
          for (int b = 0; b < test.count(); b += 1000) {
            System.arraycopy(test.images(), b * size, chunk, 0, 1000 * size);
            runner.predictLogits(chunk, 1000, logits);
          }
          double sec = (System.nanoTime() - t0) / 1e9;
          if (r >= 0) {
            inferRates.add(test.count() / sec);
            System.out.printf(Locale.ROOT, "infer repeat %d: %d images in %.3f s, %.1f images/s%n", r, test.count(), sec,
                test.count() / sec);
          }
        }
        double acc = Trainer.accuracy(runner, test.images(), test.labels(), test.count(), 1000);
        out.put("test_accuracy_after_bench_training", acc);
      }
      double[] softmax = softmaxRegression(backend, train, test, repeats);
      out.put("softmax_ms", softmax[0]);
      out.put("softmax_accuracy", softmax[1]);
      double trainIps = median(trainRates);
      double inferIps = median(inferRates);
      out.put("engine", backend.describe());
      out.put("isa", FastKernels.isa());
      out.put("threads", threads);
      out.put("train_images_per_s", trainIps);
      out.put("infer_images_per_s", inferIps);
      out.put("train_effective_gflops", trainIps * TRAIN_FLOPS / 1e9);
      out.put("infer_effective_gflops", inferIps * INFER_FLOPS / 1e9);
      out.put("matmul_2048_gflops", gemm);
      out.put("train_images_per_s_all", trainRates);
      out.put("infer_images_per_s_all", inferRates);
      System.out.println();
      System.out.println("| figure (deep-mnist, " + threads + " threads) | median | effective GFLOP/s | share of matmul rate |");
      System.out.println("| --- | --- | --- | --- |");
      System.out.printf(Locale.ROOT, "| training, batch 50 | %.0f images/s | %.1f | %.0f%% |%n", trainIps,
          trainIps * TRAIN_FLOPS / 1e9, 100 * trainIps * TRAIN_FLOPS / 1e9 / gemm);
      System.out.printf(Locale.ROOT, "| inference, batches of 1000 | %.0f images/s | %.1f | %.0f%% |%n", inferIps,
          inferIps * INFER_FLOPS / 1e9, 100 * inferIps * INFER_FLOPS / 1e9 / gemm);
      System.out.printf(Locale.ROOT, "| matmul 2048^3 (engine) | %.1f GFLOP/s | | |%n", gemm);
      System.out.printf(Locale.ROOT, "| softmax regression, 1000 SGD steps of 50 | %.1f ms, test accuracy %.4f | | |%n",
          softmax[0], softmax[1]);
    }
    if (json != null) {
      Files.writeString(json, Json.write(out));
      System.out.println("wrote " + json);
    }
    return 0;
  }

  /**
   * The tutorial's softmax regression as the PyTorch reference runs it: zero init, SGD 0.01 on the
   * summed loss, 1000 steps of 50, one seed per repeat. Returns {median milliseconds, median test
   * accuracy}.
   */
  static double[] softmaxRegression(CpuBackend backend, MnistArrays train, MnistArrays test, int repeats) {
    List<Double> ms = new ArrayList<>();
    List<Double> accs = new ArrayList<>();
    for (int r = -1; r < repeats; r++) {
      try (ModelRunner runner = backend.open(ModelSpec.parse(ModelSpec.SOFTMAX_REGRESSION))) {
        runner.initialize(r + 1);
        Trainer trainer = new Trainer(runner, Optimizer.create("sgd", 0.01f, runner.paramCount()), 1f, r + 1);
        BatchSampler sampler = new BatchSampler(train.count(), r + 1);
        long t0 = System.nanoTime();
        for (int s = 0; s < 1000; s++) {
          trainer.step(sampler, train.images(), train.labels(), 50, 1f);
        }
        double elapsed = (System.nanoTime() - t0) / 1e6;
        double acc = Trainer.accuracy(runner, test.images(), test.labels(), test.count(), 1000);
        if (r >= 0) {
          ms.add(elapsed);
          accs.add(acc);
          System.out.printf(Locale.ROOT, "softmax regression repeat %d: 1000 steps in %.1f ms, test accuracy %.4f%n",
              r, elapsed, acc);
        }
      }
    }
    return new double[] {median(ms), median(accs)};
  }

  static double gemmRate(Kernels k, int n, int repeats) {
    float[] a = new float[n * n];
    float[] b = new float[n * n];
    float[] c = new float[n * n];
    for (int i = 0; i < a.length; i++) {
      a[i] = (i % 7) * 0.1f;
      b[i] = (i % 5) * 0.1f;
    }
    // As the reference times torch.mm: a warm-up, then repeats of back-to-back calls lasting
    // about 2 s each (the first calls run before the JIT has compiled the micro-kernel).
    long w0 = System.nanoTime();
    int calls = 0;
    while (calls < 5 || System.nanoTime() - w0 < 1_000_000_000L) {
      k.gemm(false, false, n, n, n, a, 0, n, b, 0, n, 0f, c, 0, n);
      calls++;
    }
    int iters = Math.max(3, (int) (2e9 * calls / (System.nanoTime() - w0)));
    double[] rates = new double[repeats];
    for (int r = 0; r < repeats; r++) {
      long t0 = System.nanoTime();
      for (int i = 0; i < iters; i++) {
        k.gemm(false, false, n, n, n, a, 0, n, b, 0, n, 0f, c, 0, n);
      }
      rates[r] = 2.0 * n * n * n * iters / ((System.nanoTime() - t0) / 1e9) / 1e9;
    }
    Arrays.sort(rates);
    return rates[repeats / 2];
  }

  static double median(List<Double> xs) {
    List<Double> s = new ArrayList<>(xs);
    s.sort(null);
    int n = s.size();
    return n % 2 == 1 ? s.get(n / 2) : (s.get(n / 2 - 1) + s.get(n / 2)) / 2;
  }

}
