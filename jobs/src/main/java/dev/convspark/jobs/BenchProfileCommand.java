package dev.convspark.jobs;

import dev.convspark.datasets.mnist.MnistArrays;
import dev.convspark.tensor.backend.CpuBackend;
import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.kernels.FastKernels;
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
 * {@code convspark bench profile}: where a deep-mnist training step's time goes on this CPU, layer
 * by layer (forward and backward), the loss and the optimizer's update, per batch size; each
 * part's mean over the timed steps, beside the step's own mean time (the difference: sampling
 * the batch and the clock reads).
 */
final class BenchProfileCommand {

  private BenchProfileCommand() {
  }

  static int run(String[] args) throws IOException {
    int threads = 2;
    List<Integer> batches = List.of(50, 100);
    int steps = 200;
    int warmup = 50;
    String model = ModelSpec.DEEP_MNIST;
    Path data = MnistArrays.defaultDir();
    Path json = null;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--threads" -> threads = Args.intValue(args, ++i, "--threads", 1, 1024);
        case "--batch" -> batches = Args.intList(args, ++i, "--batch", 1, 100_000);
        case "--steps" -> steps = Args.intValue(args, ++i, "--steps", 1, 1_000_000);
        case "--warmup" -> warmup = Args.intValue(args, ++i, "--warmup", 0, 100_000);
        case "--model" -> model = Args.value(args, ++i, "--model");
        case "--data" -> data = Path.of(Args.value(args, ++i, "--data"));
        case "--json" -> json = Path.of(Args.value(args, ++i, "--json"));
        case "-h", "--help" -> {
          System.out.println("usage: convspark bench profile [--threads 2] [--batch 50,100] [--steps 200] [--warmup 50]"
              + " [--model deep-mnist] [--data data/mnist] [--json FILE]\n"
              + "  Where a training step's time goes on this CPU (Adam, keep 0.5): each layer's forward and\n"
              + "  backward pass, the loss and the optimizer's update, in ms per step (means over --steps\n"
              + "  after --warmup), per batch size, beside the whole step. Run it with CONVSPARK_JAVA_OPTS=\n"
              + "  -XX:UseAVX=2 for the AVX2 kernels on an AVX-512 machine; the first line says which ran.");
          return 0;
        }
        default -> throw new UsageException("bench profile: unknown argument '" + args[i] + "'");
      }
    }
    ModelSpec spec = ModelSpec.parse(model);
    MnistArrays train = MnistArrays.load(data, true);
    System.out.println("isa: " + FastKernels.describe() + ", java "
        + System.getProperty("java.version") + ", " + Runtime.getRuntime().availableProcessors() + " cores, "
        + threads + " threads, " + spec.name());
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("isa", FastKernels.isa());
    out.put("threads", threads);
    List<Map<String, Object>> rows = new ArrayList<>();
    try (CpuBackend backend = CpuBackend.create(threads); ModelRunner runner = backend.open(spec)) {
      runner.initialize(1);
      List<String> names = runner.layerNames();
      int layers = names.size();
      for (int batch : batches) {
        Optimizer adam = Optimizer.create("adam", 1e-4f, runner.paramCount());
        Trainer trainer = new Trainer(runner, adam, 0.5f, 1);
        BatchSampler sampler = new BatchSampler(train.count(), 1);
        int b = batch;
        Runnable step = () -> trainer.step(sampler, train.images(), train.labels(), b, 1f / b);
        for (int s = 0; s < warmup; s++) {
          step.run();
        }
        long[] clock = new long[2 * layers + 2];
        runner.setClock(clock);
        long t0 = System.nanoTime();
        for (int s = 0; s < steps; s++) {
          step.run();
        }
        double stepMs = (System.nanoTime() - t0) / 1e6 / steps;
        runner.setClock(null);
        System.out.printf(Locale.ROOT, "%n== batch %d: %.2f ms a step, %.0f images/s%n", batch, stepMs, batch * 1000 / stepMs);
        System.out.println("| part | forward (ms) | backward (ms) | share of the step |");
        System.out.println("| --- | --- | --- | --- |");
        double parts = 0;
        List<Map<String, Object>> layerRows = new ArrayList<>();
        for (int i = 0; i < layers; i++) {
          double f = clock[i] / 1e6 / steps;
          double bw = clock[layers + i] / 1e6 / steps;
          parts += f + bw;
          System.out.printf(Locale.ROOT, "| %s | %.3f | %.3f | %.1f%% |%n", names.get(i), f, bw, 100 * (f + bw) / stepMs);
          Map<String, Object> l = new LinkedHashMap<>();
          l.put("layer", names.get(i));
          l.put("forward_ms", f);
          l.put("backward_ms", bw);
          layerRows.add(l);
        }
        double loss = clock[2 * layers] / 1e6 / steps;
        double update = clock[2 * layers + 1] / 1e6 / steps;
        parts += loss + update;
        System.out.printf(Locale.ROOT, "| loss (softmax cross-entropy) | %.3f | | %.1f%% |%n", loss, 100 * loss / stepMs);
        System.out.printf(Locale.ROOT, "| optimizer update (Adam) | | %.3f | %.1f%% |%n", update, 100 * update / stepMs);
        System.out.printf(Locale.ROOT, "| the parts together | | %.3f | %.1f%% |%n", parts, 100 * parts / stepMs);
        Map<String, Object> row = new LinkedHashMap<>();
        row.put("batch", batch);
        row.put("step_ms", stepMs);
        row.put("images_per_s", batch * 1000 / stepMs);
        row.put("layers", layerRows);
        row.put("loss_ms", loss);
        row.put("update_ms", update);
        rows.add(row);
      }
    }
    out.put("by_batch", rows);
    if (json != null) {
      Files.writeString(json, Json.write(out));
      System.out.println("wrote " + json);
    }
    return 0;
  }
}
