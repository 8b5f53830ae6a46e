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
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code convspark bench engine}: the deep-mnist CNN's training and inference throughput on this
 * CPU for one or more thread counts, and the engine's matrix-multiply rate for reference. Medians
 * of repeats after a warm-up, each repeat kept only when no other process disturbed it
 * ({@link CpuMeter}).
 */
final class BenchEngineCommand {

  /** Multiply-adds count two: forward 27.8 M, forward and backward 82.0 M per image. */
  static final double TRAIN_FLOPS = 82_049_024;
  static final double INFER_FLOPS = 27_767_808;

  private BenchEngineCommand() {
  }

  static int run(String[] args) throws IOException {
    List<Integer> threadCounts = List.of(2);
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
        case "--threads" -> threadCounts = Args.intList(args, ++i, "--threads", 1, 1024);
        case "--steps" -> steps = Args.intValue(args, ++i, "--steps", 1, 1_000_000);
        case "--repeats" -> repeats = Args.intValue(args, ++i, "--repeats", 1, 100);
        case "--warmup" -> warmup = Args.intValue(args, ++i, "--warmup", 0, 100_000);
        case "--data" -> data = Path.of(Args.value(args, ++i, "--data"));
        case "--json" -> json = Path.of(Args.value(args, ++i, "--json"));
        case "-h", "--help" -> {
          System.out.println("usage: convspark bench engine [--threads 2 | --threads 1,2,4,8,16] [--steps 300] [--repeats 3]"
              + " [--warmup 50] [--data data/mnist] [--json FILE]\n"
              + "  Times the deep-mnist CNN (Adam 1e-4, keep 0.5) on the CPU for each thread count: training\n"
              + "  images/s at batch 50 (--steps per repeat) and at batch 512 (as many images), inference\n"
              + "  images/s (the 10,000 test images in batches of 1000), effective GFLOP/s, and the engine's\n"
              + "  own float32 2048^3 matrix-multiply rate; then softmax regression on the first count.\n"
              + "  Medians over the repeats. Each repeat waits for an idle machine, and one during which other\n"
              + "  processes took 3% of the CPU or more is made again (at most 4 tries a repeat), as the PyTorch\n"
              + "  reference in ../shared/bench does. The JSON's top-level figures are the first count's; with several\n"
              + "  counts, \"by_threads\" lists each one's.");
          return 0;
        }
        default -> throw new UsageException("bench engine: unknown argument '" + args[i] + "'");
      }
    }
    MnistArrays train = MnistArrays.load(data, true);
    MnistArrays test = MnistArrays.load(data, false);
    System.out.println("isa: " + FastKernels.describe() + ", java "
        + System.getProperty("java.version") + ", " + Runtime.getRuntime().availableProcessors() + " cores");
    List<Map<String, Object>> rows = new ArrayList<>();
    for (int threads : threadCounts) {
      rows.add(measure(threads, steps, repeats, warmup, train, test, rows.isEmpty()));
    }
    Map<String, Object> out = new LinkedHashMap<>(rows.get(0));
    out.put("isa", FastKernels.isa());
    if (rows.size() > 1) {
      out.put("by_threads", rows);
    }
    System.out.println();
    System.out.println("| threads | training, batch 50 (images/s) | training, batch 512 | inference, batches of 1000"
        + " | effective GFLOP/s (training, batch 50) | matmul 2048^3 (GFLOP/s) |");
    System.out.println("| --- | --- | --- | --- | --- | --- |");
    for (Map<String, Object> r : rows) {
      double t50 = (Double) r.get("train_images_per_s");
      System.out.printf(Locale.ROOT, "| %d | %.0f | %.0f | %.0f | %.1f | %.1f |%n", (Integer) r.get("threads"), t50,
          (Double) r.get("train512_images_per_s"), (Double) r.get("infer_images_per_s"), t50 * TRAIN_FLOPS / 1e9,
          (Double) r.get("matmul_2048_gflops"));
    }
    System.out.printf(Locale.ROOT, "softmax regression, 1000 SGD steps of 50 (%d threads): %.1f ms, test accuracy %.4f%n",
        threadCounts.get(0), (Double) out.get("softmax_ms"), (Double) out.get("softmax_accuracy"));
    if (json != null) {
      Files.writeString(json, Json.write(out));
      System.out.println("wrote " + json);
    }
    return 0;
  }

  /** Every figure for one thread count; softmax regression too when {@code withSoftmax}. */
  private static Map<String, Object> measure(int threads, int steps, int repeats, int warmup, MnistArrays train,
                                             MnistArrays test, boolean withSoftmax) {
    Map<String, Object> out = new LinkedHashMap<>();
    try (CpuBackend backend = CpuBackend.create(threads)) {
      System.out.println("== engine: " + backend.describe());
      List<Double> trainRates;
      List<Double> train512Rates;
      List<Double> inferRates;
      try (ModelRunner runner = backend.open(ModelSpec.parse(ModelSpec.DEEP_MNIST))) {
        runner.initialize(1);
        Optimizer adam = Optimizer.create("adam", 1e-4f, runner.paramCount());
        trainRates = trainRates(runner, adam, train, 50, steps, warmup, repeats);
        // Batch 512: as many images per repeat and in the warm-up as at batch 50.
        train512Rates = trainRates(runner, adam, train, 512, Math.max(1, steps * 50 / 512),
            Math.max(2, warmup * 50 / 512), repeats);
        float[] logits = new float[1000 * 10];
        Runnable pass = () -> {
          for (int b = 0; b < test.count(); b += 1000) {
            runner.predictLogits(test.images(), b, 1000, logits);
          }
        };
        pass.run();
        inferRates = CpuMeter.cleanRepeats(repeats, "infer (images/s)", () -> {
          long t0 = System.nanoTime();
          pass.run();
          return test.count() / ((System.nanoTime() - t0) / 1e9);
        });
        out.put("test_accuracy_after_bench_training", Trainer.accuracy(runner, test.images(), test.labels(), test.count(), 1000));
      }
      double trainIps = median(trainRates);
      double inferIps = median(inferRates);
      out.put("engine", backend.describe());
      out.put("threads", threads);
      out.put("train_images_per_s", trainIps);
      out.put("train512_images_per_s", median(train512Rates));
      out.put("infer_images_per_s", inferIps);
      out.put("train_effective_gflops", trainIps * TRAIN_FLOPS / 1e9);
      out.put("infer_effective_gflops", inferIps * INFER_FLOPS / 1e9);
      out.put("train_images_per_s_all", trainRates);
      out.put("train512_images_per_s_all", train512Rates);
      out.put("infer_images_per_s_all", inferRates);
      if (withSoftmax) {
        double[] softmax = softmaxRegression(backend, train, test, repeats);
        out.put("softmax_ms", softmax[0]);
        out.put("softmax_accuracy", softmax[1]);
      }
      // Last, so that in `bench compare` it runs just before the reference's own multiply (the
      // first thing ../shared/bench/run.sh times): the two figures of the ratio seconds apart, not
      // minutes, on a machine whose neighbours come and go.
      double gemm = gemmRate(backend.kernels(), 2048, repeats);
      System.out.printf(Locale.ROOT, "matmul 2048^3 fp32: %.1f GFLOP/s (median of %d)%n", gemm, repeats);
      out.put("matmul_2048_gflops", gemm);
    }
    return out;
  }

  /** Training images/s at {@code batch}, one figure per repeat of {@code steps} steps after {@code warmup}. */
  private static List<Double> trainRates(ModelRunner runner, Optimizer adam, MnistArrays train, int batch, int steps,
                                         int warmup, int repeats) {
    Trainer trainer = new Trainer(runner, adam, 0.5f, 1);
    BatchSampler sampler = new BatchSampler(train.count(), 1);
    Runnable step = () -> trainer.step(sampler, train.images(), train.labels(), batch, 1f / batch);
    for (int s = 0; s < warmup; s++) {
      step.run();
    }
    return CpuMeter.cleanRepeats(repeats, "train, batch " + batch + ", " + steps + " steps (images/s)", () -> {
      long t0 = System.nanoTime();
      for (int s = 0; s < steps; s++) {
        step.run();
      }
      return steps * batch / ((System.nanoTime() - t0) / 1e9);
    });
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
    return median(CpuMeter.cleanRepeats(repeats, "matmul " + n + "^3, " + iters + " calls (GFLOP/s)", () -> {
      long t0 = System.nanoTime();
      for (int i = 0; i < iters; i++) {
        k.gemm(false, false, n, n, n, a, 0, n, b, 0, n, 0f, c, 0, n);
      }
      return 2.0 * n * n * n * iters / ((System.nanoTime() - t0) / 1e9) / 1e9;
    }));
  }

  static double median(List<Double> xs) {
    List<Double> s = new ArrayList<>(xs);
    s.sort(null);
    int n = s.size();
    return n % 2 == 1 ? s.get(n / 2) : (s.get(n / 2 - 1) + s.get(n / 2)) / 2;
  }

}
