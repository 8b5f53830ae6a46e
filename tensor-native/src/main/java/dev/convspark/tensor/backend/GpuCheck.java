package dev.convspark.tensor.backend;

import dev.convspark.tensor.layers.SoftmaxCrossEntropy;
import dev.convspark.tensor.optim.Adam;
import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.spec.ModelSpec;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.function.Consumer;

/**
 * The GPU check, runnable with the engine's jars alone (no Maven, no Spark, no test framework):
 * CPU-versus-GPU parity on random inputs (each layer's forward and backward, 20 training steps;
 * relative error under 1e-4) and the deep-mnist training and inference rates on the GPU at batch
 * 50 and 512, on the default route of kernels and then on the classic one
 * ({@link CudaBackend#KERNELS_PROPERTY}), then where a training step's GPU time goes at batch 50
 * and 512 ({@link #profile}) and an inference batch's at 1000 ({@link #inferenceProfile}), printed
 * as tables. Exit status 0 when every check passes, 1 when one fails, 3 when no GPU can be used
 * (the reason is printed). {@code tensor-native/gpu-check.sh} runs it, each {@link Part} in a JVM of
 * its own. {@code --part rows,tf32,...} runs those parts alone, in this order whatever the list's:
 * the benchmark's rows ({@code rows}, {@code eager}, {@code direct}, {@code classic}, {@code tf32}, {@code cpu}),
 * {@code profile}, then the checks ({@code parity}, {@code tf32-parity}). {@code --parity-only} runs the checks
 * alone, {@code --benchmark-only} the benchmark (on the emulated driver with its kernels off,
 * {@code bin/convspark bench gpu-host}, that times the host's side). The classic route's rows
 * and the TF32 ones are not run on the classic route, nor the rows without CUDA graphs with graphs
 * off, nor those without Winograd with it off or on the classic route ({@link CudaBackend#KERNELS_PROPERTY},
 * {@link CudaBackend#GRAPHS_PROPERTY}, {@link CudaBackend#WINOGRAD_PROPERTY}). TF32 is checked
 * within {@link Precision#TF32_TOLERANCE}, where the GPU has TF32 tensor cores. A part that fails
 * is printed as failed and the next one run. {@code --results FILE}: each figure is appended to
 * FILE as {@code key value} as it is measured (for {@code gpu-torch.py}'s ratios), and a part reads
 * what earlier processes appended there (the profile sets its kernels beside the rows' rates).
 */
public final class GpuCheck {

  /** Relative error allowed between the GPU and the CPU reference, in float32. */
  public static final double TOLERANCE = 1e-4;

  private GpuCheck() {
  }

  /** One comparison: what, the largest relative error, and whether it is within {@link #TOLERANCE}. */
  public record Check(String what, double error, double tolerance) {
    /** A check within {@link #TOLERANCE}. */
    public Check(String what, double error) {
      this(what, error, TOLERANCE);
    }

    public boolean ok() {
      return error < tolerance;
    }

    /** This check, allowed {@code t} instead (a GPU in TF32: {@link Precision#TF32_TOLERANCE}). */
    public Check within(double t) {
      return new Check(what, error, t);
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

  /**
   * A stack of layers and the batch it is checked at: every kind of layer behind a convolution at
   * a small size, then each layer of deep-mnist at its own size and batch 50 (each stack has one
   * layer with weights before the closing dense10, so a decision a ReLU or a max-pool takes on
   * values computed in a different order cannot move its gradients: see {@link #layerParity}).
   */
  public record Parity(String spec, int batch) {
  }

  /** The stacks whose loss, gradients and logits are compared. */
  public static final List<Parity> PARITY = List.of(
      new Parity("in12x12x3-conv3x3x8-dense10", 7), new Parity("in12x12x3-conv5x5x8:valid-dense10", 7),
      new Parity("in12x12x3-conv3x3x8:s2-dense10", 7), new Parity("in12x12x3-conv3x3x8-relu-dense10", 7),
      new Parity("in12x12x3-conv3x3x8-pool2-dense10", 7), new Parity("in13x13x3-conv3x3x8-pool3-dense10", 7),
      new Parity("in12x12x3-conv3x3x8-dropout-dense10", 7), new Parity("in100-dense64-relu-dense10", 7),
      new Parity("in12x12x3-conv3x3x8-relu-pool2-dense10", 7),
      new Parity("in13x13x3-conv3x3x8-relu-pool3:s2-dense10", 7),
      new Parity("in28x28x1-conv5x5x32-dense10", 50), new Parity("in28x28x32-relu-pool2-dense10", 50),
      new Parity("in14x14x32-conv5x5x64-dense10", 50), new Parity("in14x14x64-relu-pool2-dense10", 50),
      new Parity("in3136-dense1024-relu-dropout-dense10", 50),
      // Two convolutions, so that the first one's weight gradient checks the second one's input
      // gradient: at stride 1 without col2im, in 128 x 32 tiles (8 channels; 6, with no 16-byte
      // loads) and 128 x 64 ones (40 channels), SAME and VALID; at stride 2 through col2im.
      new Parity("in12x12x3-conv3x3x8-conv3x3x8-dense10", 7), new Parity("in10x10x3-conv3x3x6-conv3x3x6-dense10", 7),
      new Parity("in8x8x3-conv3x3x40-conv3x3x12-dense10", 7),
      new Parity("in12x12x3-conv3x3x8-conv5x5x8:valid-dense10", 7),
      new Parity("in12x12x3-conv3x3x8-conv3x3x8:s2-dense10", 7),
      // By Winograd's F(2 x 2, 5 x 5) forward and back (as the 5 x 5 ones of 8 channels or more
      // above, and deep-mnist's conv2): 9 x 9 pixels, so the last tile of each row and column is
      // half outside, and 10 channels, so that the transformed input is read without 16-byte loads.
      new Parity("in9x9x3-conv3x3x10-conv5x5x12-dense10", 7));

  /**
   * Loss, parameter gradients (the backward pass of every layer) and logits of one batch of
   * {@code p}. The whole deep-mnist network is checked by {@link #networkParity} instead: over
   * its 50 x 39,200 ReLUs and max-pool windows, a few take the other side of a near-tie when
   * their inputs are summed in another order, which moves the convolutions' gradients by up to
   * 1e-3 of their largest (the CPU's own fast kernels differ from the reference that much at
   * batch 50, and by 1e-6 at batch 20 where no decision moved).
   */
  public static List<Check> layerParity(Backend gpu, Backend cpu, Parity p) {
    ModelSpec spec = ModelSpec.parse(p.spec());
    int n = p.batch();
    float keep = p.spec().contains("dropout") ? 0.5f : 1f;
    try (ModelRunner a = gpu.open(spec); ModelRunner b = cpu.open(spec)) {
      a.initialize(7);
      b.initialize(7);
      a.setKeepProb(keep);
      b.setKeepProb(keep);
      float[] x = random(n * spec.inputShape().size(), 3);
      int[] y = labels(n, spec.numClasses(), 0);
      SoftmaxCrossEntropy.Result ra = a.computeGradients(x, y, n, 1f / n, 99);
      SoftmaxCrossEntropy.Result rb = b.computeGradients(x, y, n, 1f / n, 99);
      float[] ga = new float[a.paramCount()];
      float[] gb = new float[b.paramCount()];
      a.copyGradientsTo(ga);
      b.copyGradientsTo(gb);
      String what = p.spec() + " (batch " + n + ")";
      List<Check> checks = new java.util.ArrayList<>(List.of(
          new Check(what + ": loss", relativeError(ra.lossSum(), rb.lossSum())),
          new Check(what + ": gradients (backward)", relativeError(ga, gb)),
          new Check(what + ": logits (forward)", relativeError(logits(a, x, n), logits(b, x, n)))));
      if (p.spec().contains("dropout")) {
        // Per-sample weights (0, 0.5, 1, 1.5, ...: a weight of 0 among them) scale each sample's
        // loss and its gradient on the device.
        float[] w = new float[n];
        for (int i = 0; i < n; i++) {
          w[i] = (i % 4) * 0.5f;
        }
        ra = a.computeGradients(x, y, w, n, 1f / n, 99, new long[] {0}, null);
        rb = b.computeGradients(x, y, w, n, 1f / n, 99, new long[] {0}, null);
        a.copyGradientsTo(ga);
        b.copyGradientsTo(gb);
        checks.add(new Check(what + ": weighted loss", relativeError(ra.lossSum(), rb.lossSum())));
        checks.add(new Check(what + ": weighted gradients", relativeError(ga, gb)));
      }
      return checks;
    }
  }

  /** The stack whose logits {@link #inferenceParity} compares, and the numbers of images it takes. */
  static final String INFERENCE_SPEC = "in12x12x3-conv3x3x8-relu-pool2-dense10";
  static final int[] INFERENCE_IMAGES = {1000, 2500};

  /**
   * The logits of {@link #INFERENCE_SPEC}'s stack for 1,000 and 2,500 images, each read from inside a
   * larger array: on a GPU, inference sends a batch in parts ({@link CudaBackend#INFERENCE_PART_PROPERTY}),
   * the host staging one part while the GPU runs the one before: by default 1,000 images in two
   * parts, 2,500 in chunks of 1,024 (two parts each) and a last one of 452 sent whole; a part staged
   * over one the GPU has not read yet, or logits read before they are back, show here.
   */
  public static List<Check> inferenceParity(Backend gpu, Backend cpu) {
    ModelSpec spec = ModelSpec.parse(INFERENCE_SPEC);
    List<Check> checks = new ArrayList<>();
    try (ModelRunner a = gpu.open(spec); ModelRunner b = cpu.open(spec)) {
      a.initialize(7);
      b.initialize(7);
      for (int n : INFERENCE_IMAGES) {
        float[] x = random(n * spec.inputShape().size(), 4);
        checks.add(new Check(INFERENCE_SPEC + ": logits of " + n + " images (inference in parts)",
            relativeError(logits(a, x, n), logits(b, x, n))));
      }
    }
    return checks;
  }

  /** The stack whose gradient {@link #factoredParity} sums in factored form, and its two replicas' samples. */
  static final String FACTORED_SPEC = "in12x12x3-conv3x3x8-relu-pool2-dense64-relu-dropout-dense10";
  static final int[] FACTORED_PARTS = {9, 5};

  /**
   * A gradient summed as an exchange between GPUs sums it at small batches
   * ({@link ModelRunner#factoredDense}): two replicas' parts of a batch of 14 (9 and 5 samples,
   * each dropping as in the whole batch) copied out in factored form, the rest of their gradients
   * added, their factors side by side, and the largest dense layer's weight gradient made from
   * them on {@code gpu}; against the CPU's gradient of the whole batch. Then the same gradient
   * copied out and in again, as one replica alone would: its factors' product against its own.
   */
  public static List<Check> factoredParity(Backend gpu, Backend cpu) {
    ModelSpec spec = ModelSpec.parse(FACTORED_SPEC);
    int n = Arrays.stream(FACTORED_PARTS).sum();
    int size = spec.inputShape().size();
    try (ModelRunner a = gpu.open(spec); ModelRunner b = cpu.open(spec)) {
      a.initialize(7);
      b.initialize(7);
      a.setKeepProb(0.5f);
      b.setKeepProb(0.5f);
      float[] x = random(n * size, 3);
      int[] y = labels(n, spec.numClasses(), 0);
      ModelRunner.DenseWeights d = a.factoredDense();
      int rest = a.paramCount() - d.inputs() * d.units();
      int dyAt = rest + n * d.inputs();
      float[] sum = new float[(int) ModelRunner.factoredLength(a.paramCount(), d, n)];
      float[] part = new float[sum.length];
      int first = 0;
      for (int p : FACTORED_PARTS) {
        a.computeGradients(Arrays.copyOfRange(x, first * size, (first + p) * size),
            Arrays.copyOfRange(y, first, first + p), p, 1f / n, 99, first);
        int xAt = rest + first * d.inputs();
        int dyPart = dyAt + first * d.units();
        a.copyFactoredGradientsTo(part, p, xAt, dyPart);
        for (int i = 0; i < rest; i++) {
          sum[i] += part[i];
        }
        System.arraycopy(part, xAt, sum, xAt, p * d.inputs());
        System.arraycopy(part, dyPart, sum, dyPart, p * d.units());
        first += p;
      }
      a.copyFactoredGradientsFrom(sum, n, rest, dyAt);
      float[] ga = new float[a.paramCount()];
      float[] gb = new float[b.paramCount()];
      a.copyGradientsTo(ga);
      b.computeGradients(x, y, n, 1f / n, 99);
      b.copyGradientsTo(gb);
      String what = FACTORED_SPEC + " (batch " + n + ")";
      List<Check> checks = new ArrayList<>();
      checks.add(new Check(what + ": gradients summed from two replicas' factors", relativeError(ga, gb)));
      // One replica: its own gradient out in factored form and back.
      a.computeGradients(x, y, n, 1f / n, 99);
      a.copyGradientsTo(gb);
      a.copyFactoredGradientsTo(part, n, rest, dyAt);
      a.copyFactoredGradientsFrom(part, n, rest, dyAt);
      a.copyGradientsTo(ga);
      checks.add(new Check(what + ": one replica's gradients from its factors", relativeError(ga, gb)));
      return checks;
    }
  }

  private static double relativeError(double a, double b) {
    return Double.isNaN(a) ? Double.POSITIVE_INFINITY : Math.abs(a - b) / Math.max(1e-30, Math.abs(b));
  }

  private static int[] labels(int n, int classes, int shift) {
    int[] y = new int[n];
    for (int i = 0; i < n; i++) {
      y[i] = (i * 7 + shift) % classes;
    }
    return y;
  }

  /**
   * The logits of {@code x}'s {@code n} images, read from inside a larger array (an image of large
   * values before them and one after), so that reading the wrong images shows in the logits.
   */
  private static float[] logits(ModelRunner r, float[] x, int n) {
    int size = r.spec().inputShape().size();
    float[] around = new float[x.length + 2 * size];
    Arrays.fill(around, 1e3f);
    System.arraycopy(x, 0, around, size, n * size);
    float[] out = new float[n * r.spec().numClasses()];
    r.predictLogits(around, 1, n, out);
    return out;
  }

  /**
   * The whole deep-mnist network: its logits, then 20 training steps of batch 50 with dropout 0.5
   * and {@code optimizer}, each started on both backends from the GPU's weights and optimizer
   * state: the loss of each step (the same weights and dropout masks) and the logits of a fixed
   * batch under the weights each step ends with (a wrong gradient or update shows there).
   *
   * <p>Each step starts from one state because two correct float32 backends drift apart when
   * run on their own: a near-tie taken the other way moves a gradient (above), Adam's first steps
   * move each weight by about the learning rate whichever way its gradient's sign falls, and
   * after 20 free-running steps the CPU's fast kernels and its reference differ by 1.3e-4 in the
   * losses and 3e-3 in the logits (Adam), 2e-2 and 0.24 (SGD at 0.01).
   */
  public static List<Check> networkParity(Backend gpu, Backend cpu, String optimizer) {
    return networkParity(gpu, cpu, optimizer, 20);
  }

  /** {@link #networkParity(Backend, Backend, String)} over {@code steps} steps. */
  public static List<Check> networkParity(Backend gpu, Backend cpu, String optimizer, int steps) {
    ModelSpec spec = ModelSpec.parse(ModelSpec.DEEP_MNIST);
    int n = 50;
    try (ModelRunner a = gpu.open(spec); ModelRunner b = cpu.open(spec)) {
      a.initialize(1);
      a.setKeepProb(0.5f);
      b.setKeepProb(0.5f);
      float[] probe = random(n * 784, 1000);
      float lr = optimizer.equals("adam") ? 1e-4f : 0.01f;
      Optimizer oa = Optimizer.create(optimizer, lr, a.paramCount());
      Optimizer ob = Optimizer.create(optimizer, lr, b.paramCount());
      float[] params = new float[a.paramCount()];
      double logitError = 0;
      double lossError = 0;
      double stepError = 0;
      for (int step = 0; step < steps; step++) {
        a.copyParametersTo(params);
        b.copyParametersFrom(params);
        if (oa instanceof Adam adamA && ob instanceof Adam adamB) {
          a.syncOptimizer(oa);
          for (int i = 0; i < 2; i++) {
            System.arraycopy(adamA.moments()[i], 0, adamB.moments()[i], 0, params.length);
          }
        }
        if (step == 0) {
          logitError = relativeError(logits(a, probe, n), logits(b, probe, n));
        }
        float[] x = random(n * 784, step);
        int[] y = labels(n, 10, step);
        double la = a.computeGradients(x, y, n, 1f / n, step).lossSum();
        double lb = b.computeGradients(x, y, n, 1f / n, step).lossSum();
        lossError = Math.max(lossError, relativeError(la, lb));
        a.applyGradients(oa);
        b.applyGradients(ob);
        stepError = Math.max(stepError, relativeError(probeLoss(a, probe, n), probeLoss(b, probe, n)));
      }
      String what = "deep-mnist (batch 50), " + steps + " training steps (" + optimizer + ") from the same state";
      return List.of(new Check("deep-mnist (batch 50): logits (forward)", logitError),
          new Check(what + ": loss of each step", lossError),
          new Check(what + ": loss of a fixed batch after each step", stepError));
    }
  }

  /** The mean cross-entropy of {@code n} samples of {@code x} under the labels {@link #labels} gives. */
  private static double probeLoss(ModelRunner r, float[] x, int n) {
    float[] z = logits(r, x, n);
    int classes = r.spec().numClasses();
    return SoftmaxCrossEntropy.compute(z, labels(n, classes, 0), n, classes, 1f, new float[z.length]).lossSum() / n;
  }

  /**
   * The optimizer on the device: 20 steps of {@code optimizer} over deep-mnist's parameters,
   * given the same random gradients on both backends; how far the parameters moved, and the
   * (Adam) moments after.
   */
  public static Check optimizerParity(Backend gpu, Backend cpu, String optimizer) {
    ModelSpec spec = ModelSpec.parse(ModelSpec.DEEP_MNIST);
    try (ModelRunner a = gpu.open(spec); ModelRunner b = cpu.open(spec)) {
      a.initialize(2);
      b.initialize(2);
      float[] start = new float[a.paramCount()];
      a.copyParametersTo(start);
      float lr = optimizer.equals("adam") ? 1e-4f : 0.01f;
      Optimizer oa = Optimizer.create(optimizer, lr, a.paramCount());
      Optimizer ob = Optimizer.create(optimizer, lr, b.paramCount());
      for (int step = 0; step < 20; step++) {
        float[] g = random(a.paramCount(), 500 + step);
        a.copyGradientsFrom(g);
        b.copyGradientsFrom(g);
        a.applyGradients(oa);
        b.applyGradients(ob);
      }
      float[] pa = new float[a.paramCount()];
      float[] pb = new float[b.paramCount()];
      a.copyParametersTo(pa);
      b.copyParametersTo(pb);
      for (int i = 0; i < start.length; i++) {
        pa[i] -= start[i];
        pb[i] -= start[i];
      }
      double error = relativeError(pa, pb);
      if (oa instanceof Adam adamA && ob instanceof Adam adamB) {
        a.syncOptimizer(oa);
        b.syncOptimizer(ob);
        for (int i = 0; i < 2; i++) {
          error = Math.max(error, relativeError(adamA.moments()[i], adamB.moments()[i]));
        }
      }
      return new Check("deep-mnist's parameters, 20 " + optimizer + " updates of the same gradients: their change"
          + (oa instanceof Adam ? " and the moments" : ""), error);
    }
  }

  /** Every parity check, in the order of {@code gpu-check.sh}'s table. */
  public static List<Check> allParity(Backend gpu, Backend cpu) {
    return allParity(gpu, cpu, c -> { });
  }

  /** {@link #allParity(Backend, Backend)}, handing each check to {@code done} as it completes. */
  public static List<Check> allParity(Backend gpu, Backend cpu, Consumer<Check> done) {
    List<Check> checks = new ArrayList<>();
    Consumer<List<Check>> add = l -> {
      checks.addAll(l);
      l.forEach(done);
    };
    for (Parity p : PARITY) {
      add.accept(layerParity(gpu, cpu, p));
    }
    add.accept(inferenceParity(gpu, cpu));
    add.accept(factoredParity(gpu, cpu));
    for (String optimizer : new String[] {"adam", "sgd"}) {
      add.accept(List.of(optimizerParity(gpu, cpu, optimizer)));
    }
    add.accept(networkParity(gpu, cpu, "adam"));
    add.accept(networkParity(gpu, cpu, "sgd").subList(1, 3));
    return checks;
  }

  /**
   * The GPU's matrix products against a plain loop (sums in double) on random shapes: every
   * transposition, rows above and below the wide tiles' 256, columns and depths that are not
   * multiples of the tiles or of 4, leading dimensions padded so that 16-byte loads cannot be used,
   * and a long k split over blocks; one check each, the largest error over the largest entry.
   */
  public static List<Check> productParity(CudaBackend gpu, long seed) {
    Random r = new Random(seed);
    int[][] shapes = {{300, 64, 50}, {777, 37, 33}, {256, 130, 7}, {513, 32, 200}, {256, 32, 5000}, {1000, 96, 1},
        {100, 64, 40}, {260, 200, 129}};
    List<Check> out = new ArrayList<>();
    int i = 0;
    for (int[] sh : shapes) {
      int m = sh[0];
      int n = sh[1];
      int k = sh[2];
      boolean ta = (i & 1) == 1;
      boolean tb = (i & 2) == 2;
      // Odd shapes pad their leading dimensions by 1 or 3 floats: no 16-byte loads there.
      int pad = i % 3 == 2 ? 1 + 2 * (i % 2) : 0;
      i++;
      int lda = (ta ? m : k) + pad;
      int ldb = (tb ? k : n) + pad;
      float[] a = random((ta ? k : m) * lda, r.nextLong());
      float[] b = random((tb ? n : k) * ldb, r.nextLong());
      float[] c = gpu.product(ta, tb, m, n, k, a, lda, b, ldb);
      float[] want = new float[m * n];
      for (int row = 0; row < m; row++) {
        for (int col = 0; col < n; col++) {
          double sum = 0;
          for (int q = 0; q < k; q++) {
            sum += (double) a[ta ? q * lda + row : row * lda + q] * b[tb ? col * ldb + q : q * ldb + col];
          }
          want[row * n + col] = (float) sum;
        }
      }
      out.add(new Check(String.format(Locale.ROOT, "product %s%s %d x %d, k %d, lda %d, ldb %d", ta ? "A^T" : "A",
          tb ? " B^T" : " B", m, n, k, lda, ldb), relativeError(c, want)));
    }
    return out;
  }

  /**
   * Median deep-mnist images/s on {@code backend} at batch {@code batch}: training as one replica
   * trains (the gradients stay where they are), training with the gradients copied to the host
   * and back every step (what a data-parallel step adds), and inference in batches of 1000.
   */
  public static double[] benchmark(Backend backend, int batch, int steps) {
    return benchmark(backend, batch, steps, true);
  }

  /** {@link #benchmark(Backend, int, int)}, with inference timed only when {@code infer} (else 0). */
  static double[] benchmark(Backend backend, int batch, int steps, boolean infer) {
    return benchmark(backend, batch, steps, infer, false);
  }

  /**
   * {@link #benchmark(Backend, int, int, boolean)}, and with {@code factored} a fourth figure:
   * training with each step's gradient to the host and back in factored form
   * ({@link ModelRunner#factoredDense}: the first dense layer's input and output-gradient rows
   * instead of its weight gradient, multiplied back on the device), as a data-parallel step of
   * runners on GPUs moves it at small batches (a worker whose global batch is its own: with N
   * workers each device takes N workers' rows back).
   */
  static double[] benchmark(Backend backend, int batch, int steps, boolean infer, boolean factored) {
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
      // Modes: the gradients stay; out and back whole; out and back in factored form.
      double[][] rates = new double[3][3];
      ModelRunner.DenseWeights d = factored ? r.factoredDense() : null;
      if (d != null && !d.fewerAsFactors(batch)) {
        // More floats than the gradient: no exchange factors it.
        d = null;
      }
      int rest = d == null ? 0 : r.paramCount() - d.inputs() * d.units();
      for (int rep = -1; rep < 3; rep++) {
        for (int mode = 0; mode < (d == null ? 2 : 3); mode++) {
          long t0 = System.nanoTime();
          for (int s = 0; s < steps; s++) {
            r.computeGradients(x, y, batch, 1f / batch, s);
            if (mode == 1) {
              // What a data-parallel step adds: gradients out for the allreduce, the sum back in.
              r.copyGradientsTo(grads);
              r.copyGradientsFrom(grads);
            } else if (mode == 2) {
              r.copyFactoredGradientsTo(grads, batch, rest, rest + batch * d.inputs());
              r.copyFactoredGradientsFrom(grads, batch, rest, rest + batch * d.inputs());
            }
            r.applyGradients(opt);
          }
          // The last update is queued, not done, until a copy from the device waits for it.
          r.copyParametersTo(grads);
          if (rep >= 0) {
            rates[mode][rep] = steps * (double) batch / ((System.nanoTime() - t0) / 1e9);
          }
        }
      }
      double[] train = rates[0];
      double[] throughHost = rates[1];
      float[] images = random(infer ? 10_000 * 784 : 0, 6);
      float[] logits = new float[infer ? 1000 * 10 : 0];
      double[] inference = new double[3];
      for (int rep = -1; infer && rep < 3; rep++) {
        long t0 = System.nanoTime();
        for (int s = 0; s < 10_000; s += 1000) {
          // Each batch read where it lies, as PyTorch's images[s:s + 1000] is.
          r.predictLogits(images, s, 1000, logits);
        }
        if (rep >= 0) {
          inference[rep] = 10_000 / ((System.nanoTime() - t0) / 1e9);
        }
      }
      for (double[] a : List.of(train, throughHost, inference, rates[2])) {
        Arrays.sort(a);
      }
      return new double[] {train[1], throughHost[1], inference[1], rates[2][1]};
    }
  }

  /**
   * One kernel of a profiled training step: what it is, its launches in a step, the GPU's time for
   * them in a step (microseconds, median over the steps) and, for matrix products, GFLOP/s.
   */
  public record KernelTime(String kernel, int launches, double micros, double gflops) {
  }

  /**
   * Where a deep-mnist training step's GPU time goes at batch {@code batch}: every launch of
   * {@code steps} steps (after 3 unmeasured ones) timed by events around it, summed per kernel
   * and shape in each step, in launch order (forward, backward, update). The time between the
   * kernels (uploads, the download of the metrics, the host launching) is not in it: the step's
   * time from {@link #benchmark} less these is what the GPU spends waiting. Where the GPU is
   * faster than the host launches, it reaches a kernel's first event before the kernel itself is
   * queued, so that kernel's time includes the host's launch call (a few microseconds).
   */
  public static List<KernelTime> profile(CudaBackend gpu, int batch, int steps) {
    return timeKernels(gpu, batch, steps, true);
  }

  /**
   * {@link #profile} for inference: every launch of {@code passes} forward passes of
   * {@code batch} images through deep-mnist ({@link ModelRunner#predictLogits}, after 3
   * unmeasured ones), summed per kernel and shape in each pass.
   */
  public static List<KernelTime> inferenceProfile(CudaBackend gpu, int batch, int passes) {
    return timeKernels(gpu, batch, passes, false);
  }

  private static List<KernelTime> timeKernels(CudaBackend gpu, int batch, int steps, boolean training) {
    ModelSpec spec = ModelSpec.parse(ModelSpec.DEEP_MNIST);
    Map<String, double[]> perStep = new LinkedHashMap<>();
    Map<String, int[]> launches = new HashMap<>();
    Map<String, Double> flops = new HashMap<>();
    try (ModelRunner r = gpu.open(spec); KernelProfile timer = new KernelProfile()) {
      r.initialize(1);
      r.setKeepProb(0.5f);
      Optimizer opt = Optimizer.create("adam", 1e-4f, r.paramCount());
      float[] x = random(batch * 784, 5);
      int[] y = labels(batch, 10, 0);
      float[] logits = new float[batch * 10];
      for (int s = -3; s < steps; s++) {
        if (s == 0) {
          gpu.profile(timer);
        }
        if (training) {
          r.computeGradients(x, y, batch, 1f / batch, s);
          r.applyGradients(opt);
        } else {
          r.predictLogits(x, batch, logits);
        }
        if (s < 0) {
          continue;
        }
        for (KernelProfile.Launch l : timer.take()) {
          perStep.computeIfAbsent(l.kernel(), k -> new double[steps])[s] += l.millis() * 1000;
          if (s == 0) {
            launches.computeIfAbsent(l.kernel(), k -> new int[1])[0]++;
            flops.merge(l.kernel(), l.flops(), Double::sum);
          }
        }
      }
    } finally {
      gpu.profile(null);
    }
    List<KernelTime> out = new ArrayList<>();
    for (var e : perStep.entrySet()) {
      double[] t = e.getValue().clone();
      Arrays.sort(t);
      double micros = t[t.length / 2];
      double f = flops.getOrDefault(e.getKey(), 0.0);
      out.add(new KernelTime(e.getKey(), launches.getOrDefault(e.getKey(), new int[1])[0], micros,
          f > 0 && micros > 0 ? f / micros / 1e3 : 0));
    }
    return out;
  }

  /**
   * The products on random shapes and each layer stack of {@link #PARITY} on GPU {@code ordinal}
   * in TF32 against {@code cpu},
   * printed as it completes, within {@link Precision#TF32_TOLERANCE}; true when all pass or the
   * GPU has no TF32 (which it prints).
   */
  private static boolean tf32Parity(int ordinal, Backend cpu) {
    try (CudaBackend t = CudaBackend.create(ordinal, Precision.TF32)) {
      boolean[] ok = {true};
      Consumer<Check> show = c -> {
        Check w = c.within(Precision.TF32_TOLERANCE);
        System.out.printf(Locale.ROOT, "| %s, TF32 | %.2e | %s |%n", w.what(), w.error(),
            w.ok() ? "yes (within " + Precision.TF32_TOLERANCE + ")" : "NO");
        ok[0] &= w.ok();
      };
      productParity(t, 5).forEach(show);
      for (Parity p : PARITY) {
        layerParity(t, cpu, p).forEach(show);
      }
      return ok[0];
    } catch (IllegalArgumentException e) {
      System.out.println("| (no TF32 checks: " + e.getMessage() + ") | | |");
      return true;
    }
  }

  /**
   * The parts of a run, in the order they run: the benchmark's (its rows, then the profiles), then
   * the checks. Each can run alone ({@code --part}), so that {@code gpu-check.sh} runs each in a
   * process of its own: a kernel that faults on a GPU (an illegal address) leaves the process
   * unable to use the GPU again, and the parts after it would be lost with it.
   */
  enum Part {
    /** deep-mnist's training and inference rates at batch 50 and 512 on the default route, float32. */
    ROWS("rows"),
    /**
     * The same loops without CUDA graphs ({@link CudaBackend#GRAPHS_PROPERTY}) and with each
     * inference batch sent whole ({@link CudaBackend#INFERENCE_PART_PROPERTY} 0).
     */
    EAGER("eager"),
    /**
     * The same loops with every convolution by its direct product
     * ({@link CudaBackend#WINOGRAD_PROPERTY} false): the A/B of Winograd's.
     */
    DIRECT("direct"),
    /** The same loops on the classic route (64 x 64 tiles, im2col and col2im). */
    CLASSIC("classic"),
    /** The same loops in TF32 ({@link Precision#TF32}), where the GPU has TF32 tensor cores. */
    TF32("tf32"),
    /** The fast CPU backend's row at batch 50, beside the GPU's. */
    CPU("cpu"),
    /**
     * Where a training step's GPU time goes at batch 50 and 512, and an inference batch's at 1000
     * (in parts, then whole).
     */
    PROFILE("profile"),
    /** Every check in float32 against the CPU reference, within {@link #TOLERANCE}. */
    PARITY("parity"),
    /** The products' and layers' checks in TF32, within {@link Precision#TF32_TOLERANCE}. */
    TF32_PARITY("tf32-parity");

    final String label;

    Part(String label) {
      this.label = label;
    }

    boolean benchmark() {
      return compareTo(PROFILE) <= 0;
    }

    /** Whether this part prints rows of the benchmark's table. */
    boolean row() {
      return compareTo(CPU) <= 0;
    }

    /** The part labelled {@code label}, or null. */
    static Part of(String label) {
      for (Part p : values()) {
        if (p.label.equals(label)) {
          return p;
        }
      }
      return null;
    }

    static String labels() {
      return String.join(", ", Arrays.stream(values()).map(p -> p.label).toList());
    }
  }

  /**
   * Runs the parts asked for (every part by default); see the class comment for the options and
   * the exit status.
   */
  public static void main(String[] args) {
    int ordinal = 0;
    Path results = null;
    EnumSet<Part> parts = EnumSet.allOf(Part.class);
    boolean parityOnly = false;
    boolean benchmarkOnly = false;
    for (int i = 0; i < args.length; i++) {
      if (args[i].equals("--parity-only")) {
        parityOnly = true;
      } else if (args[i].equals("--benchmark-only")) {
        benchmarkOnly = true;
      } else if (args[i].equals("--part") && i + 1 < args.length) {
        parts = EnumSet.noneOf(Part.class);
        for (String label : args[++i].split(",", -1)) {
          Part p = Part.of(label);
          if (p == null) {
            System.out.println("usage: GpuCheck: --part takes a list of " + Part.labels() + " (commas between)"
                + " but was '" + args[i] + "'");
            System.exit(2);
            return;
          }
          parts.add(p);
        }
      } else if (args[i].equals("--results") && i + 1 < args.length) {
        results = Path.of(args[++i]);
      } else if (args[i].matches("\\d{1,4}")) {
        ordinal = Integer.parseInt(args[i]);
      } else {
        System.out.println("usage: GpuCheck [GPU-NUMBER] [--results FILE] [--parity-only | --benchmark-only]"
            + " [--part PART,...]; '" + args[i] + "' is none of them (parts: " + Part.labels() + ")");
        System.exit(2);
        return;
      }
    }
    if (parityOnly && benchmarkOnly) {
      System.out.println("usage: GpuCheck: --parity-only and --benchmark-only leave nothing to run; give one of them");
      System.exit(2);
      return;
    }
    final boolean benchmarks = !parityOnly;
    final boolean checks = !benchmarkOnly;
    parts.removeIf(p -> p.benchmark() ? !benchmarks : !checks);
    // Run on the classic route, there is no other route to set beside it and no TF32 (the classic
    // kernels have none); run without graphs, no second row without them.
    if ("classic".equals(System.getProperty(CudaBackend.KERNELS_PROPERTY))) {
      parts.removeAll(List.of(Part.CLASSIC, Part.DIRECT, Part.TF32, Part.TF32_PARITY));
    }
    if ("false".equals(System.getProperty(CudaBackend.WINOGRAD_PROPERTY))) {
      parts.remove(Part.DIRECT);
    }
    if ("false".equals(System.getProperty(CudaBackend.GRAPHS_PROPERTY))) {
      parts.remove(Part.EAGER);
    }
    if (parts.isEmpty()) {
      System.out.println("usage: GpuCheck: nothing to run (the parts asked for are not run with these options)");
      System.exit(2);
      return;
    }
    CudaBackend gpu;
    try {
      gpu = CudaBackend.create(ordinal);
    } catch (IllegalStateException e) {
      System.out.println("no usable GPU: " + e.getMessage());
      System.exit(3);
      return;
    }
    boolean ok = true;
    // The checks' reference on every core: its products' rows shared among them, the same
    // results bit for bit; on one thread, deep-mnist's 40 training steps took minutes.
    try (CpuBackend cpu = CpuBackend.reference(Runtime.getRuntime().availableProcessors());
         CpuBackend fast = CpuBackend.create()) {
      Run run = new Run(ordinal, gpu, cpu, fast, results);
      run.describe();
      for (Part p : parts) {
        try {
          ok &= run.part(p);
        } catch (RuntimeException e) {
          // Printed, and the next part tried: after a fault on a GPU it will fail too, saying so.
          System.out.println("part '" + p.label + "' failed: " + e);
          ok = false;
        }
      }
    } finally {
      try {
        gpu.close();
      } catch (RuntimeException e) {
        System.out.println("closing the GPU's context failed: " + e);
        ok = false;
      }
    }
    System.exit(ok ? 0 : 1);
  }

  /** The parts of one process: the backends, and the figures so far (this process's and the results file's). */
  private static final class Run {
    private final int ordinal;
    private final CudaBackend gpu;
    private final CpuBackend cpu;
    private final CpuBackend fast;
    private final Path results;
    private final Map<String, Double> figures = new HashMap<>();
    private boolean tableOpen;
    private boolean checksOpen;

    Run(int ordinal, CudaBackend gpu, CpuBackend cpu, CpuBackend fast, Path results) {
      this.ordinal = ordinal;
      this.gpu = gpu;
      this.cpu = cpu;
      this.fast = fast;
      this.results = results;
      // What parts in earlier processes wrote (the inference and step rates the profile is set beside).
      if (results != null && Files.isReadable(results)) {
        try {
          for (String line : Files.readAllLines(results)) {
            String[] kv = line.trim().split("\\s+");
            if (kv.length == 2 && kv[1].matches("-?[0-9.]+")) {
              figures.put(kv[0], Double.parseDouble(kv[1]));
            }
          }
        } catch (IOException e) {
          throw new UncheckedIOException("cannot read " + results, e);
        }
      }
      tableOpen = figures.containsKey("rows_table");
    }

    /** The GPU and the CPU, once for the processes of a results file. */
    void describe() {
      if (!figures.containsKey("described")) {
        System.out.println("GPU: " + gpu.describe() + "; CPU: " + fast.describe());
        record("described", 1);
      }
    }

    /** Adds {@code key value} to the figures and to the results file (appended, as each part ends). */
    private void record(String key, double value) {
      figures.put(key, value);
      if (results != null) {
        try {
          Files.writeString(results, String.format(Locale.ROOT, "%s %.1f%n", key, value),
              StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        } catch (IOException e) {
          throw new UncheckedIOException("cannot write " + results, e);
        }
      }
    }

    /** The benchmark's table header, once for all the row parts of a results file. */
    private void openTable() {
      if (!tableOpen) {
        System.out.println("\n| deep-mnist | training images/s | training, gradients through the host | inference"
            + " images/s (batches of 1000) |");
        System.out.println("| --- | --- | --- | --- |");
        record("rows_table", 1);
        tableOpen = true;
      }
    }

    /** Runs part {@code p}: false when a check fails. */
    boolean part(Part p) {
      if (p.row()) {
        openTable();
      }
      switch (p) {
        case ROWS -> {
          for (int batch : new int[] {50, 512}) {
            double[] g = benchmark(gpu, batch, batch == 50 ? 200 : 40, true, true);
            System.out.printf(Locale.ROOT, "| GPU, batch %d | %.0f | %.0f | %.0f |%n", batch, g[0], g[1], g[2]);
            record("train" + batch, g[0]);
            record("host" + batch, g[1]);
            record("infer" + batch, g[2]);
            // The same steps with the first dense layer's gradient through the host as its factors,
            // as the exchange between GPUs sends it at small batches (OffHeapStep in spark-ml).
            System.out.printf(Locale.ROOT, "| GPU, batch %d, factored dense gradient | | %.0f | |%n", batch, g[3]);
            record("host" + batch + "_factored", g[3]);
          }
        }
        case EAGER -> {
          // Every step's kernels launched from the host (no CUDA graphs), and each inference batch
          // sent whole with the host waiting for it (not pipelined in parts), for the A/B of both
          // in one run: what they save is the host's time while the GPU waits.
          try (CudaBackend launched = CudaBackend.withOverlap(ordinal, false, 0)) {
            for (int batch : new int[] {50, 512}) {
              double[] g = benchmark(launched, batch, batch == 50 ? 200 : 40);
              System.out.printf(Locale.ROOT, "| GPU, batch %d, no CUDA graphs, inference in one part | %.0f | %.0f | %.0f"
                  + " |%n", batch, g[0], g[1], g[2]);
              record("train" + batch + "_eager", g[0]);
              record("host" + batch + "_eager", g[1]);
              record("infer" + batch + "_eager", g[2]);
            }
          }
        }
        case DIRECT -> {
          // conv2 forward and back by the direct product of its windows, as before Winograd's
          // (2.78 times the multiply-adds, no transforms), for the A/B in one run.
          try (CudaBackend d = CudaBackend.direct(ordinal)) {
            for (int batch : new int[] {50, 512}) {
              double[] g = benchmark(d, batch, batch == 50 ? 200 : 40);
              System.out.printf(Locale.ROOT, "| GPU, batch %d, no Winograd | %.0f | %.0f | %.0f |%n", batch, g[0], g[1],
                  g[2]);
              record("train" + batch + "_direct", g[0]);
              record("infer" + batch + "_direct", g[2]);
            }
          }
        }
        case CLASSIC -> {
          // The classic route (64 x 64 tiles, im2col and col2im), for the kernels' A/B in one run:
          // a second context on the same GPU, closed before the next.
          try (CudaBackend old = CudaBackend.create(ordinal, false)) {
            for (int batch : new int[] {50, 512}) {
              double[] g = benchmark(old, batch, batch == 50 ? 200 : 40);
              System.out.printf(Locale.ROOT, "| GPU, batch %d, classic kernels | %.0f | %.0f | %.0f |%n", batch, g[0],
                  g[1], g[2]);
            }
          }
        }
        case TF32 -> {
          // TF32 on the tensor cores, where the GPU has them: the rows to set beside PyTorch's with
          // TF32 allowed.
          try (CudaBackend t = CudaBackend.create(ordinal, Precision.TF32)) {
            for (int batch : new int[] {50, 512}) {
              double[] g = benchmark(t, batch, batch == 50 ? 200 : 40);
              System.out.printf(Locale.ROOT, "| GPU, batch %d, TF32 | %.0f | %.0f | %.0f |%n", batch, g[0], g[1], g[2]);
              record("train" + batch + "_tf32", g[0]);
              record("host" + batch + "_tf32", g[1]);
              record("infer" + batch + "_tf32", g[2]);
            }
          } catch (IllegalArgumentException e) {
            System.out.println("| (no TF32 rows: " + e.getMessage() + ") | | | |");
          }
        }
        case CPU -> {
          double[] c = benchmark(fast, 50, 20);
          System.out.printf(Locale.ROOT, "| CPU (%s), batch 50 | %.0f | %.0f | %.0f |%n", fast.describe(), c[0], c[1],
              c[2]);
        }
        case PROFILE -> {
          // Each beside the whole step's or batch's time from the rows' rates, where they ran.
          printProfile(50, 50, profile(gpu, 50, 50), micros(50, "train50"));
          printProfile(512, 10, profile(gpu, 512, 10), micros(512, "train512"));
          // Inference, the widest gap to PyTorch in run 2 (0.31x to 0.40x): where a batch's time goes.
          printProfile("deep-mnist inference on the GPU, a batch of 1000 (in parts)", "batch", 10,
              inferenceProfile(gpu, 1000, 10), micros(1000, "infer50"), "the whole batch, from the inference rate above",
              "kernels_infer1000");
          // The same batch sent whole, beside the rate of the row that sends it so: whether the parts
          // run the kernels less well than one batch of 1,000, and what they save besides.
          try (CudaBackend whole = CudaBackend.withOverlap(ordinal, true, 0)) {
            printProfile("deep-mnist inference on the GPU, a batch of 1000 in one part", "batch", 10,
                inferenceProfile(whole, 1000, 10), micros(1000, "infer50_eager"),
                "the whole batch, from the inference rate in one part above", "kernels_infer1000_whole");
          }
        }
        case PARITY -> {
          openChecks();
          boolean ok = true;
          // Printed as they complete: deep-mnist's training steps on the reference take minutes.
          for (Check c : productParity(gpu, 5)) {
            System.out.printf(Locale.ROOT, "| %s | %.2e | %s |%n", c.what(), c.error(), c.ok() ? "yes" : "NO");
            ok &= c.ok();
          }
          ok &= allParity(gpu, cpu, c -> System.out.printf(Locale.ROOT, "| %s | %.2e | %s |%n", c.what(), c.error(),
              c.ok() ? "yes" : "NO")).stream().allMatch(Check::ok);
          return ok;
        }
        case TF32_PARITY -> {
          openChecks();
          return tf32Parity(ordinal, cpu);
        }
        default -> throw new IllegalStateException("no such part: " + p);
      }
      return true;
    }

    /** The checks' table header, once a process. */
    private void openChecks() {
      if (!checksOpen) {
        System.out.println("\n| parity check (GPU against the CPU reference) | relative error | within 1e-4 |");
        System.out.println("| --- | --- | --- |");
        checksOpen = true;
      }
    }

    /** Microseconds for {@code images} images at the rate {@code key} (images/s), or NaN where no part measured it. */
    private double micros(int images, String key) {
      Double rate = figures.get(key);
      return rate == null || rate <= 0 ? Double.NaN : 1e6 * images / rate;
    }

    private void printProfile(int batch, int steps, List<KernelTime> kernels, double stepMicros) {
      printProfile("deep-mnist training step on the GPU, batch " + batch, "step", steps, kernels, stepMicros,
          "the whole step, from the training rate above", "kernels" + batch);
    }

    private void printProfile(String what, String unit, int steps, List<KernelTime> kernels, double micros,
                              String whole, String key) {
      System.out.println("\n| " + what + ": kernel | launches | us per " + unit
          + " (median of " + steps + ") | share | GFLOP/s |");
      System.out.println("| --- | --- | --- | --- | --- |");
      double total = kernels.stream().mapToDouble(KernelTime::micros).sum();
      int count = 0;
      for (KernelTime k : kernels) {
        count += k.launches();
        String gflops = k.gflops() > 0 ? String.format(Locale.ROOT, "%.0f", k.gflops()) : "";
        System.out.printf(Locale.ROOT, "| %s | %d | %.1f | %.1f%% | %s |%n", k.kernel(), k.launches(), k.micros(),
            100 * k.micros() / Math.max(total, 1e-9), gflops);
      }
      System.out.printf(Locale.ROOT, "| all kernels | %d | %.1f | 100%% | |%n", count, total);
      System.out.printf(Locale.ROOT, "| %s (its time less the kernels': the copies, the GPU waiting for the host)"
          + " | | %s | | |%n", whole, Double.isNaN(micros) ? "(not measured: part 'rows' did not run)"
          : String.format(Locale.ROOT, "%.1f", micros));
      record(key, total);
    }
  }
}
