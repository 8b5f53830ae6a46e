package dev.convspark.tensor.backend;

import dev.convspark.tensor.layers.SoftmaxCrossEntropy;
import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.spec.ModelSpec;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;

/**
 * The GPU check, runnable with the engine's jars alone (no Maven, no Spark, no test framework):
 * CPU-versus-GPU parity on random inputs (each layer's forward and backward, 20 training steps;
 * relative error under 1e-4) and the deep-mnist training and inference rates on the GPU at batch
 * 50 and 512, printed as one table. Exit status 0 when every check passes, 1 when one fails, 3
 * when no GPU can be used (the reason is printed). {@code tensor-native/gpu-check.sh} runs it.
 */
public final class GpuCheck {

  /** Relative error allowed between the GPU and the CPU reference, in float32. */
  public static final double TOLERANCE = 1e-4;

  /** The layer stacks whose gradients, loss and logits are compared: each layer behind a convolution. */
  public static final List<String> PARITY_SPECS = List.of(
      "in12x12x3-conv3x3x8-dense10", "in12x12x3-conv5x5x8:valid-dense10", "in12x12x3-conv3x3x8:s2-dense10",
      "in12x12x3-conv3x3x8-relu-dense10", "in12x12x3-conv3x3x8-pool2-dense10", "in13x13x3-conv3x3x8-pool3-dense10",
      "in12x12x3-conv3x3x8-dropout-dense10", "in100-dense64-relu-dense10", ModelSpec.DEEP_MNIST);

  private GpuCheck() {
  }

  /** One comparison: what, the largest relative error, and whether it is within {@link #TOLERANCE}. */
  public record Check(String what, double error) {
    public boolean ok() {
      return error < TOLERANCE;
    }
  }

  /** Largest |a - b| over the largest |b|. */
  public static double relativeError(float[] a, float[] b) {
    double diff = 0;
    double scale = 0;
    for (int i = 0; i < a.length; i++) {
      diff = Math.max(diff, Math.abs(a[i] - b[i]));
      scale = Math.max(scale, Math.abs(b[i]));
    }
    return Double.isNaN(diff) ? Double.POSITIVE_INFINITY : diff / Math.max(scale, 1e-30);
  }

  static float[] random(int n, long seed) {
    Random r = new Random(seed);
    float[] x = new float[n];
    for (int i = 0; i < n; i++) {
      x[i] = (float) r.nextGaussian();
    }
    return x;
  }

  /** Loss, parameter gradients (the backward pass of every layer) and logits of one batch. */
  public static List<Check> layerParity(Backend gpu, Backend cpu, String specText) {
    ModelSpec spec = ModelSpec.parse(specText);
    int n = spec.specString().equals(ModelSpec.parse(ModelSpec.DEEP_MNIST).specString()) ? 50 : 7;
    float keep = specText.contains("dropout") ? 0.5f : 1f;
    try (ModelRunner a = gpu.open(spec); ModelRunner b = cpu.open(spec)) {
      a.initialize(7);
      b.initialize(7);
      a.setKeepProb(keep);
      b.setKeepProb(keep);
      float[] x = random(n * spec.inputShape().size(), 3);
      int[] y = new int[n];
      for (int i = 0; i < n; i++) {
        y[i] = i % spec.numClasses();
      }
      SoftmaxCrossEntropy.Result ra = a.computeGradients(x, y, n, 1f / n, 99);
      SoftmaxCrossEntropy.Result rb = b.computeGradients(x, y, n, 1f / n, 99);
      float[] ga = new float[a.paramCount()];
      float[] gb = new float[b.paramCount()];
      a.copyGradientsTo(ga);
      b.copyGradientsTo(gb);
      float[] la = new float[n * spec.numClasses()];
      float[] lb = new float[n * spec.numClasses()];
      a.predictLogits(x, n, la);
      b.predictLogits(x, n, lb);
      return List.of(
          new Check(specText + ": loss", Math.abs(ra.lossSum() - rb.lossSum()) / Math.max(1e-30, Math.abs(rb.lossSum()))),
          new Check(specText + ": gradients (backward)", relativeError(ga, gb)),
          new Check(specText + ": logits (forward)", relativeError(la, lb)));
    }
  }

  /** Weights after 20 deep-mnist steps (batch 50, dropout 0.5) with {@code optimizer}. */
  public static Check trainingParity(Backend gpu, Backend cpu, String optimizer) {
    ModelSpec spec = ModelSpec.parse(ModelSpec.DEEP_MNIST);
    try (ModelRunner a = gpu.open(spec); ModelRunner b = cpu.open(spec)) {
      a.initialize(1);
      b.initialize(1);
      a.setKeepProb(0.5f);
      b.setKeepProb(0.5f);
      float lr = optimizer.equals("adam") ? 1e-4f : 0.01f;
      Optimizer oa = Optimizer.create(optimizer, lr, a.paramCount());
      Optimizer ob = Optimizer.create(optimizer, lr, b.paramCount());
      for (int step = 0; step < 20; step++) {
        float[] x = random(50 * 784, step);
        int[] y = new int[50];
        for (int i = 0; i < 50; i++) {
          y[i] = (i * 7 + step) % 10;
        }
        a.computeGradients(x, y, 50, 1f / 50, step);
        b.computeGradients(x, y, 50, 1f / 50, step);
        a.applyGradients(oa);
        b.applyGradients(ob);
      }
      float[] pa = new float[a.paramCount()];
      float[] pb = new float[b.paramCount()];
      a.copyParametersTo(pa);
      b.copyParametersTo(pb);
      return new Check("deep-mnist, 20 training steps (" + optimizer + "): weights", relativeError(pa, pb));
    }
  }

  /** Median deep-mnist training and inference images/s on {@code backend} at batch {@code batch}. */
  public static double[] benchmark(Backend backend, int batch, int steps) {
    ModelSpec spec = ModelSpec.parse(ModelSpec.DEEP_MNIST);
    try (ModelRunner r = backend.open(spec)) {
      r.initialize(1);
      r.setKeepProb(0.5f);
      Optimizer opt = Optimizer.create("adam", 1e-4f, r.paramCount());
      float[] x = random(batch * 784, 5);
      int[] y = new int[batch];
      for (int i = 0; i < batch; i++) {
        y[i] = i % 10;
      }
      float[] grads = new float[r.paramCount()];
      double[] train = new double[3];
      for (int rep = -1; rep < 3; rep++) {
        long t0 = System.nanoTime();
        for (int s = 0; s < steps; s++) {
          r.computeGradients(x, y, batch, 1f / batch, s);
          // What a data-parallel step does: gradients out for the allreduce, the sum back in.
          r.copyGradientsTo(grads);
          r.copyGradientsFrom(grads);
          r.applyGradients(opt);
        }
        if (rep >= 0) {
          train[rep] = steps * (double) batch / ((System.nanoTime() - t0) / 1e9);
        }
      }
      float[] images = random(10_000 * 784, 6);
      float[] logits = new float[10_000 * 10];
      double[] infer = new double[3];
      for (int rep = -1; rep < 3; rep++) {
        long t0 = System.nanoTime();
        for (int s = 0; s < 10_000; s += 1000) {
          r.predictLogits(Arrays.copyOfRange(images, s * 784, (s + 1000) * 784), 1000, logits);
        }
        if (rep >= 0) {
          infer[rep] = 10_000 / ((System.nanoTime() - t0) / 1e9);
        }
      }
      Arrays.sort(train);
      Arrays.sort(infer);
      return new double[] {train[1], infer[1]};
    }
  }

  /** Runs every check and the benchmark; see the class comment for the exit status. */
  public static void main(String[] args) {
    int ordinal = 0;
    java.nio.file.Path results = null;
    for (int i = 0; i < args.length; i++) {
      if (args[i].equals("--results") && i + 1 < args.length) {
        results = java.nio.file.Path.of(args[++i]);
      } else if (args[i].matches("\\d{1,4}")) {
        ordinal = Integer.parseInt(args[i]);
      } else {
        System.out.println("usage: GpuCheck [GPU-NUMBER] [--results FILE]; '" + args[i] + "' is neither");
        System.exit(2);
        return;
      }
    }
    StringBuilder figures = new StringBuilder();
    CudaBackend gpu;
    try {
      gpu = CudaBackend.create(ordinal);
    } catch (IllegalStateException e) {
      System.out.println("no usable GPU: " + e.getMessage());
      System.exit(3);
      return;
    }
    boolean ok = true;
    try (CpuBackend cpu = CpuBackend.reference(); CpuBackend fast = CpuBackend.create()) {
      System.out.println("GPU: " + gpu.describe() + "; CPU: " + fast.describe());
      List<Check> checks = new ArrayList<>();
      for (String spec : PARITY_SPECS) {
        checks.addAll(layerParity(gpu, cpu, spec));
      }
      checks.add(trainingParity(gpu, cpu, "adam"));
      checks.add(trainingParity(gpu, cpu, "sgd"));
      System.out.println("\n| parity check (GPU against the CPU reference) | relative error | within 1e-4 |");
      System.out.println("| --- | --- | --- |");
      for (Check c : checks) {
        System.out.printf(Locale.ROOT, "| %s | %.2e | %s |%n", c.what(), c.error(), c.ok() ? "yes" : "NO");
        ok &= c.ok();
      }
      System.out.println("\n| deep-mnist | training images/s | inference images/s (batches of 1000) |");
      System.out.println("| --- | --- | --- |");
      for (int batch : new int[] {50, 512}) {
        double[] g = benchmark(gpu, batch, batch == 50 ? 200 : 40);
        System.out.printf(Locale.ROOT, "| GPU, batch %d | %.0f | %.0f |%n", batch, g[0], g[1]);
        figures.append(String.format(Locale.ROOT, "train%d %.1f%ninfer%d %.1f%n", batch, g[0], batch, g[1]));
      }
      double[] c = benchmark(fast, 50, 20);
      System.out.printf(Locale.ROOT, "| CPU (%s), batch 50 | %.0f | %.0f |%n", fast.describe(), c[0], c[1]);
      if (results != null) {
        java.nio.file.Files.writeString(results, figures.toString());
      }
    } catch (java.io.IOException e) {
      System.out.println("cannot write " + results + ": " + e.getMessage());
      ok = false;
    } finally {
      gpu.close();
    }
    System.exit(ok ? 0 : 1);
  }
}
